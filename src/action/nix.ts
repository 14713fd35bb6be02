import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import * as core from '@actions/core'
import { actionsCacheClient } from '../nix/actions-cache.js'
import { ensureEmulation, type EmulationPlan } from '../nix/binfmt.js'
import { buildRunner, packagePathResolver, type BuildRunnerResult } from '../nix/build.js'
import { evaluateSpec, type DeclaredSpec } from '../nix/spec.js'
import {
  flakeCacheIdentity,
  localSubstituter,
  restoreStoreCache,
  saveStoreCache,
  storeCacheDir,
  storeCacheKeys,
  type CacheClient,
  type StoreCacheResult
} from '../nix/cache.js'
import { pushToCachix, resolveCachix } from '../nix/cachix.js'
import { runCommands, spawnExecutor, type Executor } from '../nix/exec.js'
import { gatherHostFacts, nixRunOptions, type HostFacts } from '../nix/facts.js'
import { parseFlakeTarget, type FlakeTarget } from '../nix/flakeref.js'
import {
  nixWorkDir,
  planNixSetup,
  setupNix,
  type NixSetupInput,
  type NixSetupPlan,
  type NixSetupResult
} from '../nix/install.js'
import { ensureKvmAccess } from '../nix/kvm.js'
import { emulationFor, nixPlanSections, type PlanSection } from '../nix/plan.js'
import { listBuildLog, writeBuildFailureReport } from '../nix/report.js'
import { createEphemeralKey } from '../nix/sshkey.js'
import type { PackagePathResolver } from '../checks/substitute.js'
import type { Report } from '../report/model.js'
import { ValidationFailure } from '../util/errors.js'
import { silentLogger, type Logger } from '../util/log.js'
import type { ActionInputs } from './inputs.js'
import { saveState, STATE_KEYS, type StateWriter } from './state.js'

/**
 * The one place where the action hands a configuration build to the Nix layer (src/nix):
 * KVM access, emulation (binfmt), Nix install and settings, Cachix, the store cache, an
 * ephemeral SSH key, `nix build`, and after the run the cache save and the Cachix push.
 */
export const NIX_SUPPORT = true

export interface RunnerBuild {
  /** Absolute path of result/bin/run-<host>-vm. */
  runner: string
  /** The key the built VM authorizes (the input's, else an ephemeral one). */
  sshKey: string
  buildMs: number
  closureBytes?: number
  /** The network stage's package evaluator (same flake, same Nix options). */
  packagePath: PackagePathResolver
  /** What the configuration declares, evaluated while it built (docs/derived-checks.md). */
  declared: Promise<DeclaredSpec>
  /** After validate(): list build.log, save the store cache, push to Cachix. Never throws. */
  finish(report: Report): Promise<Report>
}

export interface BuildContext {
  logger: Logger
  signal: AbortSignal
  /** Scratch space (RUNNER_TEMP). */
  workRoot: string
  outDir: string
  /** The SSH key from the inputs (read and checked once by the preflight), if any. */
  sshKey?: { path: string; publicLine: string }
  githubToken?: string
  workspace: string
  /** Where the post step's state goes (default: core.saveState). */
  save?: StateWriter
}

/** The flake reference and configuration, checked before anything starts (InputError). */
export function flakeTarget(inputs: ActionInputs, workspace: string): FlakeTarget {
  return parseFlakeTarget(inputs.flake, { configuration: inputs.configuration, cwd: workspace })
}

/** Throws the input error when the inputs ask for a Nix build that cannot be described. */
export function assertCanBuild(
  inputs: ActionInputs,
  workspace: string = process.env.GITHUB_WORKSPACE || process.cwd()
): void {
  if (inputs.vmRunner === undefined) flakeTarget(inputs, workspace)
}

function setupInput(inputs: ActionInputs, githubToken: string | undefined): NixSetupInput {
  return {
    installerVersion: inputs.nix.installerVersion,
    extraSubstituters: inputs.nix.extraSubstituters,
    extraTrustedPublicKeys: inputs.nix.extraTrustedPublicKeys,
    ...(githubToken !== undefined ? { githubToken } : {})
  }
}

/**
 * setupNix for the action: the file that gets the GitHub token is saved for the post step first,
 * so that however main ends, post knows what to take the token out of (removeGithubToken).
 */
export async function setupNixForRun(
  plan: NixSetupPlan,
  deps: {
    exec: Executor
    log: Logger
    signal?: AbortSignal
    save: StateWriter
    env?: NodeJS.ProcessEnv
  }
): Promise<NixSetupResult> {
  if (plan.tokenFile !== undefined)
    deps.save(STATE_KEYS.githubTokenFile, JSON.stringify(plan.tokenFile))
  return setupNix(plan, deps)
}

/** The host as the build needs it, and what the later steps take from it. */
interface PreparedHost {
  exec: Executor
  facts: HostFacts
  emulation: EmulationPlan
  workDir: string
  /** This run's extra Nix options (see nixRunOptions). */
  options: [string, string][]
}

/** KVM access, emulation, the scratch directory, Cachix, Nix installed and configured. */
async function prepareHost(inputs: ActionInputs, ctx: BuildContext): Promise<PreparedHost> {
  const { logger: log, signal } = ctx
  const exec = spawnExecutor()
  const facts = await gatherHostFacts(exec)
  await ensureKvmAccess(facts, { exec, log })
  const emulation = await ensureEmulation(emulationFor(inputs.system, facts), { exec, log })
  const workDir = nixWorkDir(facts.runnerTemp)
  await mkdir(workDir, { recursive: true })

  const n = inputs.nix
  const cachix =
    n.cachixCache !== undefined
      ? await resolveCachix(
          {
            name: n.cachixCache,
            authToken: n.cachixAuthToken,
            extraTrustedPublicKeys: n.extraTrustedPublicKeys
          },
          { workDir, uid: facts.uid }
        )
      : undefined
  if (cachix?.warning !== undefined) log.warning(cachix.warning)
  if (cachix !== undefined) await runCommands(cachix.commands, exec, log, signal)
  const setup = planNixSetup(
    {
      ...setupInput(inputs, ctx.githubToken),
      ...(cachix?.settings !== undefined ? { cachix: cachix.settings } : {}),
      emulation
    },
    facts
  )
  const nix = await setupNixForRun(setup, { exec, log, signal, save: ctx.save ?? saveState })
  for (const p of nix.path) core.addPath(p)
  for (const w of nix.warnings) log.warning(w)
  // Root without a daemon and without the nixbld group (Debian's nix-bin, containers): this
  // run's Nix commands build as root (`build-users-group =`); the host's nix.conf is not changed.
  const options = nixRunOptions(facts)
  if (options.length > 0)
    log.info(
      `Nix runs as root without a daemon and the group "${facts.buildUsers?.group ?? ''}" does not exist: this run's builds pass --option build-users-group ''`
    )
  return { exec, facts, emulation, workDir, options }
}

/** The store cache restored (cache input true), else undefined. */
async function restoreCache(
  inputs: ActionInputs,
  target: FlakeTarget,
  host: PreparedHost,
  client: CacheClient,
  log: Logger
): Promise<StoreCacheResult | undefined> {
  if (!inputs.nix.cache) return undefined
  const { exec, facts, options } = host
  const keys = storeCacheKeys({
    guest: inputs.system,
    host: facts.hostSystem,
    configuration: target.configuration,
    ...(await flakeCacheIdentity(target, { exec, log, options }))
  })
  log.info(`store cache key ${keys.key} (inputs from ${keys.inputsFrom})`)
  return restoreStoreCache({ keys, dir: storeCacheDir(facts.home), client, log })
}

/** The key the VM authorizes: the input's, else an ephemeral one in `workDir`. */
async function runKey(
  ctx: BuildContext,
  workDir: string
): Promise<{ sshKey: string; publicKey: string }> {
  if (ctx.sshKey !== undefined) return { sshKey: ctx.sshKey.path, publicKey: ctx.sshKey.publicLine }
  const key = await createEphemeralKey(workDir)
  return { sshKey: key.privateKeyPath, publicKey: key.publicKey }
}

/** buildRunner; a build-failed failure also writes its report (so build.log is listed). */
async function buildOrReport(
  inputs: ActionInputs,
  ctx: BuildContext,
  target: FlakeTarget,
  host: PreparedHost,
  restored: StoreCacheResult | undefined,
  publicKey: string
): Promise<BuildRunnerResult> {
  const { options } = host
  const startedAt = Date.now()
  try {
    return await buildRunner({
      target,
      system: inputs.system,
      sshUser: inputs.sshUser,
      sshPublicKey: publicKey,
      workDir: host.workDir,
      outDir: ctx.outDir,
      hostSystem: host.facts.hostSystem,
      emulation: host.emulation.settings,
      extraSubstituters:
        restored !== undefined && (restored.hit === 'exact' || restored.hit === 'partial')
          ? [localSubstituter(restored.dir)]
          : [],
      ...(options.length > 0 ? { options } : {}),
      onLine: (l) => core.info(l),
      signal: ctx.signal,
      timeoutMs: inputs.timeoutMs > 0 ? inputs.timeoutMs : undefined
    })
  } catch (err) {
    if (err instanceof ValidationFailure && err.kind === 'build-failed') {
      // Written here so build.log is listed; the caller sees the same failure.
      await writeBuildFailureReport({
        outDir: ctx.outDir,
        system: inputs.system,
        configuration: target.configuration,
        failure: err,
        buildMs: Date.now() - startedAt,
        startedAt
      }).catch(() => undefined)
    }
    throw err
  }
}

/** RunnerBuild.finish: list build.log, save the store cache, push to Cachix on success. */
function finisher(
  inputs: ActionInputs,
  ctx: BuildContext,
  host: PreparedHost,
  restored: StoreCacheResult | undefined,
  client: CacheClient,
  storePath: string
): (report: Report) => Promise<Report> {
  const { exec, options, workDir } = host
  const log = ctx.logger
  const n = inputs.nix
  return async (report) => {
    const listed = await listBuildLog(ctx.outDir, report).catch(() => report)
    if (restored !== undefined)
      await saveStoreCache({ restored, storePath, client, exec, log, options })
    if (
      report.conclusion === 'success' &&
      n.cachixCache !== undefined &&
      n.cachixAuthToken !== undefined
    ) {
      await pushToCachix({
        name: n.cachixCache,
        authToken: n.cachixAuthToken,
        storePath,
        workDir,
        exec,
        log,
        options
      })
    }
    return listed
  }
}

/** Builds the configuration's VM runner. A failed build throws (ValidationFailure `build-failed`). */
export async function buildVmRunner(inputs: ActionInputs, ctx: BuildContext): Promise<RunnerBuild> {
  const target = flakeTarget(inputs, ctx.workspace)
  const host = await prepareHost(inputs, ctx)
  const cacheClient = actionsCacheClient()
  const restored = await restoreCache(inputs, target, host, cacheClient, ctx.logger)
  const { sshKey, publicKey } = await runKey(ctx, host.workDir)
  const options = host.options
  const declared = evaluateSpec({
    target,
    sshUser: inputs.sshUser,
    sshPublicKey: publicKey,
    hostSystem: host.facts.hostSystem ?? inputs.system,
    ...(options.length > 0 ? { options } : {}),
    signal: ctx.signal,
    exec: host.exec
  })
  declared.catch(() => undefined) // awaited (and reported) by the run
  const built = await buildOrReport(inputs, ctx, target, host, restored, publicKey)
  return {
    runner: built.runner,
    sshKey,
    buildMs: built.buildMs,
    closureBytes: built.closureBytes,
    declared,
    packagePath: packagePathResolver({
      target,
      ...(options.length > 0 ? { options } : {}),
      signal: ctx.signal
    }),
    finish: finisher(inputs, ctx, host, restored, cacheClient, built.storePath)
  }
}

/** Dry run: what would be installed and built (facts are read, nothing is changed). */
export async function nixDryRunSections(
  inputs: ActionInputs,
  outDir: string,
  workspace: string,
  githubToken: string | undefined,
  known?: { exec: Executor; facts: HostFacts }
): Promise<PlanSection[]> {
  const exec = known?.exec ?? spawnExecutor()
  const target = flakeTarget(inputs, workspace)
  const facts = known?.facts ?? (await gatherHostFacts(exec))
  const n = inputs.nix
  const options = nixRunOptions(facts)
  return nixPlanSections({
    frontEnd: 'action',
    target,
    system: inputs.system,
    sshUser: inputs.sshUser,
    facts,
    setup: setupInput(inputs, githubToken),
    ...(n.cache
      ? {
          cache: {
            keys: storeCacheKeys({
              guest: inputs.system,
              host: facts.hostSystem,
              configuration: target.configuration,
              ...(await flakeCacheIdentity(target, { exec, log: silentLogger, options }))
            }),
            dir: storeCacheDir(facts.home)
          }
        }
      : {}),
    ...(n.cachixCache !== undefined
      ? { cachix: { name: n.cachixCache, push: n.cachixAuthToken !== undefined } }
      : {}),
    workDir: join(nixWorkDir(facts.runnerTemp)),
    outDir
  })
}
