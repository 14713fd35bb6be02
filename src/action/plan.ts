import { existsSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { spawnExecutor, type Executor } from '../nix/exec.js'
import { gatherHostFacts, nixRunOptions, type HostFacts } from '../nix/facts.js'
import { planKvmAccess } from '../nix/kvm.js'
import { checkConfigurationExists, type ConfigurationCheck } from '../pipeline/configurations.js'
import { kvmUsable, plannedAccelerator, renderPlan } from '../pipeline/plan.js'
import { errorMessage } from '../util/errors.js'
import type { Accelerator } from '../vm/system.js'
import type { RunContext } from '../github/context.js'
import type { ActionInputs } from './inputs.js'
import type { RunIdentity } from './identity.js'
import { flakeTarget, nixDryRunSections } from './nix.js'

function onPath(bin: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir !== '' && existsSync(join(dir, bin))) return join(dir, bin)
  }
  return undefined
}

/** The extra plan sections of the action: what would be installed, built and reported. */
export function actionPlanSections(
  inputs: ActionInputs,
  id: RunIdentity,
  ctx: RunContext,
  outDir: string,
  env: NodeJS.ProcessEnv = process.env
): { title: string; lines: string[] }[] {
  const n = inputs.nix
  const install: string[] = []
  const build: string[] = []
  if (inputs.vmRunner !== undefined) {
    install.push('nothing: "vm-runner" is given, Nix is not used')
    build.push(`nothing: prebuilt runner ${inputs.vmRunner}`)
  } else {
    const nix = onPath('nix', env)
    install.push(
      nix !== undefined
        ? `Nix: already installed (${nix})`
        : `Nix ${n.installerVersion}${ctx.act ? ' (act: no systemd, single-user install)' : ''}`
    )
    install.push(
      `substituters: https://cache.nixos.org${n.extraSubstituters.map((s) => ` ${s}`).join('')}`
    )
    if (n.extraTrustedPublicKeys.length > 0)
      install.push(`extra trusted public keys: ${n.extraTrustedPublicKeys.join(' ')}`)
    if (n.cachixCache !== undefined)
      install.push(
        `Cachix cache ${n.cachixCache} (${n.cachixAuthToken !== undefined ? 'pull and push' : 'pull only'})`
      )
    install.push(
      `Actions cache of the VM closure: ${n.cache ? `on (key names ${inputs.system})` : 'off'}`
    )
    build.push(
      `${inputs.flake}#nixosConfigurations.${inputs.configuration ?? '?'}.config.system.build.vm for ${inputs.system}`
    )
  }
  const report: string[] = [
    `job summary (stage table, failing checks, console excerpt, timeline) → GITHUB_STEP_SUMMARY`,
    `artifact "${id.artifactName}" (${inputs.retentionDays !== undefined ? `${inputs.retentionDays} days` : 'repository retention'})${env.ACTIONS_RUNTIME_TOKEN ? '' : ' — SKIPPED here: no ACTIONS_RUNTIME_TOKEN (act without --artifact-server-path?)'}`,
    checkRunLine(inputs, id, ctx),
    inputs.prComment
      ? ctx.prNumber !== undefined
        ? `sticky comment on PR #${ctx.prNumber}, marker ${id.marker}`
        : 'PR comment requested, but this event is not a pull request: none'
      : 'no PR comment (pr-comment: false)',
    'outputs: conclusion, report-path, boot-seconds, accelerator, artifact-id, artifact-url, check-run-id (this dry run sets conclusion=skipped and accelerator, the others empty)',
    `report.json: ${join(outDir, 'report.json')}`
  ]
  return [
    { title: 'Install (Nix)', lines: install },
    { title: 'Build', lines: build },
    {
      title: 'Boot and check',
      lines: [
        `see "VM" and "Stages" below; boot timeout ${inputs.bootTimeoutMs / 1000}s, overall ${inputs.timeoutMs > 0 ? `${inputs.timeoutMs / 1000}s` : 'none'}, ssh user ${inputs.sshUser}`
      ]
    },
    { title: 'Report', lines: report }
  ]
}

function checkRunLine(inputs: ActionInputs, id: RunIdentity, ctx: RunContext): string {
  if (ctx.act) return 'no check run (act: a local run has no commit on GitHub to attach it to)'
  if (inputs.githubToken === undefined) return 'no check run (no github-token)'
  if (ctx.headSha === undefined || ctx.owner === undefined)
    return 'no check run (no repository or commit in the environment)'
  return `check run "${id.checkName}" on ${ctx.headSha.slice(0, 12)} (external_id ${id.externalId})`
}

/** The outputs a dry run sets: what it can know without booting; the rest empty. */
export function dryRunOutputs(accelerator: Accelerator): Record<string, string> {
  return {
    conclusion: 'skipped',
    'report-path': '',
    'boot-seconds': '',
    accelerator,
    'artifact-id': '',
    'artifact-url': '',
    'check-run-id': ''
  }
}

export interface DryRun {
  plan: string
  /** The accelerator the real run would try first (the `accelerator` output of the dry run). */
  accelerator: Accelerator
  configuration?: ConfigurationCheck
}

/**
 * The dry run: reads the machine (changes nothing), checks that the configuration exists when
 * Nix is here (an unknown one throws InputError naming the ones that do), and renders the plan:
 * renderPlan's VM and stages, the Nix layer's install/build sections when a configuration is
 * built, and the reporting.
 */
export async function planDryRun(
  inputs: ActionInputs,
  id: RunIdentity,
  ctx: RunContext,
  outDir: string,
  o: { exec?: Executor; facts?: HostFacts } = {}
): Promise<DryRun> {
  let sections = actionPlanSections(inputs, id, ctx, outDir)
  // /dev/kvm as the real run will find it: the Nix path opens it with a udev rule when it can.
  let kvm = kvmUsable()
  let configuration: ConfigurationCheck | undefined
  if (inputs.vmRunner === undefined) {
    const exec = o.exec ?? spawnExecutor()
    let facts = o.facts
    let factsError: unknown
    if (facts === undefined) {
      try {
        facts = await gatherHostFacts(exec)
      } catch (err) {
        factsError = err
      }
    }
    if (facts !== undefined) {
      const kvmPlan = planKvmAccess(facts)
      kvm = kvmPlan.state === 'ok' || kvmPlan.state === 'fix'
      configuration = await checkConfigurationExists(flakeTarget(inputs, ctx.workspace), {
        exec,
        nix: facts.nix?.path,
        options: nixRunOptions(facts),
        what: 'input "configuration"'
      })
      try {
        const nix = await nixDryRunSections(inputs, outDir, ctx.workspace, inputs.githubToken, {
          exec,
          facts
        })
        sections = [
          ...nix,
          ...sections.filter((s) => s.title !== 'Install (Nix)' && s.title !== 'Build')
        ]
      } catch (err) {
        factsError = err
      }
    }
    if (factsError !== undefined)
      sections.push({
        title: 'Nix',
        lines: [`could not read the machine's Nix facts: ${errorMessage(factsError)}`]
      })
    sections.unshift({
      title: 'Configuration',
      lines: [
        configuration === undefined
          ? "not checked: the machine's Nix facts could not be read"
          : configuration.status === 'found'
            ? `nixosConfigurations.${inputs.configuration ?? '?'} exists in ${inputs.flake} (it has: ${configuration.names.join(', ')}; ${configuration.command})`
            : `not checked: ${configuration.reason}`
      ]
    })
  }
  const accelerator = plannedAccelerator(inputs.accel, inputs.system, { kvm })
  const plan = renderPlan({
    runner: inputs.vmRunner,
    flake:
      inputs.vmRunner === undefined ? `${inputs.flake}#${inputs.configuration ?? '?'}` : undefined,
    system: inputs.system,
    stages: inputs.stages,
    accel: inputs.accel,
    ...(inputs.bootRetries !== undefined ? { bootRetries: inputs.bootRetries } : {}),
    checksFile: inputs.checksFile,
    outDir,
    kvm,
    sections
  })
  return { plan, accelerator, ...(configuration !== undefined ? { configuration } : {}) }
}
