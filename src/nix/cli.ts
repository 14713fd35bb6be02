import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Report } from '../report/model.js'
import { InputError, ValidationFailure } from '../util/errors.js'
import type { Logger } from '../util/log.js'
import type { GuestSystem } from '../vm/system.js'
import { buildRunner, packagePathResolver } from './build.js'
import { evaluateSpec, type DeclaredSpec } from './spec.js'
import { ARTIFACT_PATTERN } from '../report/artifacts.js'
import type { PackagePathResolver } from '../checks/substitute.js'
import { spawnExecutor } from './exec.js'
import { findOnPath, gatherHostFacts, nixRunOptions, type HostFacts } from './facts.js'
import { parseFlakeTarget, type FlakeTarget } from './flakeref.js'
import { emulationFor, nixPlanSections, type PlanSection } from './plan.js'
import { writeBuildFailureReport } from './report.js'
import { createEphemeralKey } from './sshkey.js'

/**
 * The CLI's `--flake`: build with the Nix found on PATH (nothing installed or configured), then
 * the caller validates the runner with the key this run authorized.
 */

/** Input checks for --flake (exit 2): the reference and, unless only planning, nix on PATH. */
export function checkFlakeInput(o: {
  flake: string
  cwd?: string
  requireNix: boolean
}): FlakeTarget {
  const target = parseFlakeTarget(o.flake, { cwd: o.cwd })
  if (o.requireNix && findOnPath('nix') === undefined) {
    throw new InputError(
      '--flake needs Nix, and nix is not on PATH (install Nix, or build the runner yourself and pass --runner)'
    )
  }
  return target
}

/** The Nix part of --dry-run: read-only facts of this machine. */
export async function cliFlakePlanSections(o: {
  target: FlakeTarget
  system: GuestSystem
  sshUser: string
  outDir: string
}): Promise<PlanSection[]> {
  const facts = await gatherHostFacts(spawnExecutor())
  return nixPlanSections({
    frontEnd: 'cli',
    ...o,
    facts,
    workDir: join(tmpdir(), 'nvv-flake-XXXXXX')
  })
}

export interface CliBuild {
  runner: string
  /** Private key that logs into the VM: the ephemeral one, or --ssh-key. */
  sshKey: string
  storePath: string
  buildMs: number
  closureBytes?: number
  /** The network stage's package evaluator (same flake, same Nix options). */
  packagePath: PackagePathResolver
  /** What the configuration declares, evaluated while it built (docs/derived-checks.md). */
  declared: Promise<DeclaredSpec>
  /** Removes the work dir (ephemeral key, result link). */
  cleanup(): Promise<void>
}

/**
 * The files of an earlier run, removed before the build so a failed build's report lists only its
 * own (validate() clears the same names, except build.log, when it starts).
 */
const STALE = (name: string): boolean => name === 'build.log' || ARTIFACT_PATTERN.test(name)

async function clearStaleArtifacts(outDir: string): Promise<void> {
  await mkdir(outDir, { recursive: true })
  for (const name of await readdir(outDir))
    if (STALE(name)) await rm(join(outDir, name), { force: true })
}

/** Lines worth a progress line; the rest of the build log goes to --verbose and build.log. */
const PROGRESS = /^(building '|copying path|these \d+ (derivations|paths)|this derivation|error)/

interface CliBuildInput {
  target: FlakeTarget
  system: GuestSystem
  sshUser: string
  /** --ssh-key, read and parsed by the preflight. */
  sshKey?: { path: string; publicLine: string }
  outDir: string
  logger: Logger
  signal?: AbortSignal
  startedAt: number
}

/**
 * Builds the flake's VM runner. Without --ssh-key a fresh ed25519 pair is generated and its
 * public half authorized in the VM; with --ssh-key, that key's public half is. A failed build
 * writes the report (build-failed, file and line) and returns it.
 */
export async function buildForCli(
  o: CliBuildInput
): Promise<{ build: CliBuild } | { report: Report }> {
  await clearStaleArtifacts(o.outDir)
  const workDir = await mkdtemp(join(process.env.RUNNER_TEMP ?? tmpdir(), 'nvv-flake-'))
  const cleanup = (): Promise<void> => rm(workDir, { recursive: true, force: true })
  try {
    const key =
      o.sshKey !== undefined
        ? { privateKeyPath: o.sshKey.path, publicKey: o.sshKey.publicLine }
        : await createEphemeralKey(workDir)
    const facts = await gatherHostFacts(spawnExecutor())
    const emulation = emulationFor(o.system, facts)
    const options = nixRunOptions(facts)
    logHostFacts(o, facts, emulation, options)
    o.logger.stageStart('build')
    const started = Date.now()
    const declared = evaluateSpec({
      target: o.target,
      sshUser: o.sshUser,
      sshPublicKey: key.publicKey,
      hostSystem: facts.hostSystem ?? o.system,
      ...(options.length > 0 ? { options } : {}),
      signal: o.signal
    })
    declared.catch(() => undefined) // awaited (and reported) by the run
    try {
      const built = await buildRunner({
        target: o.target,
        system: o.system,
        sshUser: o.sshUser,
        sshPublicKey: key.publicKey,
        workDir,
        outDir: o.outDir,
        hostSystem: facts.hostSystem,
        ...(emulation.state === 'ready' ? { emulation: emulation.settings } : {}),
        ...(options.length > 0 ? { options } : {}),
        signal: o.signal,
        onLine: (line) =>
          PROGRESS.test(line) ? o.logger.info(`nix: ${line}`) : o.logger.debug(`nix: ${line}`)
      })
      o.logger.stageEnd('build', 'passed', built.buildMs)
      o.logger.info(`runner ${built.runner}`)
      const packagePath = packagePathResolver({
        target: o.target,
        ...(options.length > 0 ? { options } : {}),
        signal: o.signal
      })
      const { runner, storePath, buildMs, closureBytes } = built
      return {
        build: {
          runner,
          sshKey: key.privateKeyPath,
          storePath,
          buildMs,
          closureBytes,
          packagePath,
          declared,
          cleanup
        }
      }
    } catch (err) {
      if (!(err instanceof ValidationFailure)) throw err
      const report = await buildFailed(o, err, Date.now() - started)
      await cleanup()
      return { report }
    }
  } catch (err) {
    await cleanup()
    throw err
  }
}

/** What the build will be like on this machine: emulation, the build-users-group workaround. */
function logHostFacts(
  o: CliBuildInput,
  facts: HostFacts,
  emulation: ReturnType<typeof emulationFor>,
  options: [string, string][]
): void {
  if (emulation.state !== 'native')
    o.logger.info(`${o.system} on ${facts.hostSystem}: ${emulation.reason}`)
  if (emulation.state === 'register') {
    o.logger.warning(
      `no usable binfmt entry for ${o.system}: only substituted ${o.system} paths will be available (see --dry-run)`
    )
  }
  if (options.length > 0)
    o.logger.info(
      `Nix runs as root without a daemon and the group "${facts.buildUsers?.group ?? ''}" does not exist: building with --option build-users-group ''`
    )
}

/** A failed build: logged, and its report (build-failed, file and line) written. */
async function buildFailed(
  o: CliBuildInput,
  err: ValidationFailure,
  buildMs: number
): Promise<Report> {
  o.logger.stageEnd('build', 'failed', buildMs)
  o.logger.warning(`build failed (${err.kind}): ${err.message}`)
  return writeBuildFailureReport({
    outDir: o.outDir,
    system: o.system,
    configuration: o.target.configuration,
    failure: err,
    buildMs,
    startedAt: o.startedAt
  })
}
