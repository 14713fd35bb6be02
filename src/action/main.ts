import { mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as core from '@actions/core'
import { validate } from '../pipeline/validate.js'
import { writeArtifacts } from '../report/artifacts.js'
import type { Report } from '../report/model.js'
import type { CheckRunReporter } from '../github/check-run.js'
import { readRunContext, type RunContext } from '../github/context.js'
import { failureOf } from '../report/failure.js'
import { errorMessage, InputError, toFailure, ValidationFailure } from '../util/errors.js'
import { InputErrors } from '../util/input-errors.js'
import { killAllGroupsSync } from '../vm/process.js'
import { outDirFor, runIdentity, type RunIdentity } from './identity.js'
import {
  readInputs,
  readMode,
  readRollUpInputs,
  type CheckedInputs,
  type RollUpInputs
} from './inputs.js'
import { actionLogger, type ActionLogger } from './logger.js'
import { engineOptions } from '../pipeline/request.js'
import { onStopSignals } from '../pipeline/cancel.js'
import { openSshKey, type SshKey } from '../nix/sshkey.js'
import { buildVmRunner, type RunnerBuild } from './nix.js'
import { actionPerf } from './perf-cache.js'
import { actionsCacheClient } from '../nix/actions-cache.js'
import { dryRunOutputs, planDryRun, type DryRun } from './plan.js'
import { githubClientFor, publish, startActionCheckRun } from './publish.js'
import { bareReport } from '../report/model.js'
import { readReport } from './report.js'
import { runRollUp } from './rollup.js'
import { saveState, STATE_KEYS, type RunPlan, type StateWriter } from './state.js'
import { fence, plainConclusion } from './summary.js'

/** Outputs of action.yml, set by main. */
export const OUTPUT_NAMES = [
  'conclusion',
  'report-path',
  'boot-seconds',
  'accelerator',
  'artifact-id',
  'artifact-url',
  'check-run-id'
] as const
export type OutputName = (typeof OUTPUT_NAMES)[number]
const setOutput = (name: OutputName, value: string | number): void => core.setOutput(name, value)

/** The action's main step. Holds the one core.setFailed; never rejects. */
export async function run(): Promise<void> {
  try {
    await runMain()
  } catch (err) {
    core.setFailed(
      `nixos-vm-validate internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`
    )
  }
}

/** The step's failure message for bad input: one error, or every one of them in a list. */
export function inputFailure(err: unknown): string {
  if (err instanceof InputErrors && err.messages.length > 1)
    return `${err.message}\nNothing was started: fix the inputs above and run again.`
  return err instanceof InputError ? `Input error: ${err.message}` : errorMessage(err)
}

async function runMain(): Promise<void> {
  const ctx = readRunContext()
  let inputs: CheckedInputs | RollUpInputs
  try {
    // Every input (and the files and flake they name) checked at once; all errors together.
    inputs = readMode() === 'roll-up' ? readRollUpInputs() : await readInputs()
  } catch (err) {
    // Bad input: nothing has started (no VM, no check run, no artifact).
    core.setFailed(inputFailure(err))
    return
  }
  // The matrix's verdict from its legs' artifacts: nothing boots (docs/rollup.md).
  if ('mode' in inputs) {
    await runRollUp({ inputs, ctx })
    return
  }
  const id = runIdentity(inputs, ctx)
  const tempRoot = process.env.RUNNER_TEMP || tmpdir()
  const outDir = outDirFor(id, tempRoot)
  if (inputs.dryRun) return dryRun(inputs, id, ctx, outDir)

  const plan = runPlan(inputs, id, ctx.workspace, outDir)
  const save: StateWriter = saveState
  save(STATE_KEYS.plan, JSON.stringify(plan))
  await mkdir(outDir, { recursive: true })
  core.info(`${id.checkName}: artifacts in ${outDir}`)
  const client = await githubClientFor(inputs.githubToken, ctx)
  const checkRun = await beginCheckRun(client, ctx, id, save)

  // The runner cancels with SIGINT, then SIGTERM: the first stops the VM and lets the report,
  // artifact and check run be written; later ones make sure no QEMU is left.
  const controller = new AbortController()
  const stop = onStopSignals({
    signals: ['SIGINT', 'SIGTERM'],
    controller,
    first: (sig) => core.warning(`${sig}: cancelling — stopping the VM, then writing the report`),
    again: () => killAllGroupsSync()
  })
  let report: Report
  try {
    report = await validateLeg(inputs, plan, tempRoot, controller.signal, save)
    setReportOutputs(report, outDir)
    // Still under the signal handlers: a second cancel signal must not cut the reporting short.
    const artifact = await publish({
      report,
      plan,
      context: ctx,
      client,
      checkRun,
      done: { summaryWritten: false, checkRunCompleted: false, commentWritten: false },
      save,
      annotate: true
    })
    if (artifact.id !== undefined) setOutput('artifact-id', artifact.id)
    if (artifact.url !== undefined) setOutput('artifact-url', artifact.url)
    save(STATE_KEYS.mainFinished, 'true')
  } finally {
    stop()
  }

  if (report.conclusion !== 'success') core.setFailed(plainConclusion(report))
  else core.info(plainConclusion(report))
}

/** The dry-run input: the plan in the log and the summary, the outputs it can know. */
async function dryRun(
  inputs: CheckedInputs,
  id: RunIdentity,
  ctx: RunContext,
  outDir: string
): Promise<void> {
  let dry: DryRun
  try {
    dry = await planDryRun(inputs, id, ctx, outDir)
  } catch (err) {
    // An unknown configuration (Nix listed the flake's): an input error like the others.
    if (err instanceof InputError) {
      core.setFailed(inputFailure(err))
      return
    }
    throw err
  }
  core.info(dry.plan)
  for (const [name, value] of Object.entries(dryRunOutputs(dry.accelerator)))
    setOutput(name as OutputName, value)
  await core.summary
    .addRaw(`## VM validation: dry run (${id.subject}, ${id.system})\n\n${fence(dry.plan)}\n`, true)
    .write()
    .catch(() => undefined)
}

/** What the post step needs to know of this leg (saved before anything can go wrong). */
function runPlan(
  inputs: CheckedInputs,
  id: RunIdentity,
  workspace: string,
  outDir: string
): RunPlan {
  return {
    subject: id.subject,
    configuration: inputs.configuration,
    runner: inputs.vmRunner,
    system: id.system,
    emulated: id.emulated,
    outDir,
    workspace,
    startedAt: Date.now(),
    artifactName: id.artifactName,
    retentionDays: inputs.retentionDays,
    checkName: id.checkName,
    externalId: id.externalId,
    marker: id.marker,
    prComment: inputs.prComment,
    checksFile: inputs.checksFile
  }
}

/** The check run shown in progress, when a token and the commit allow one (see checkRunReporter). */
async function beginCheckRun(
  client: Awaited<ReturnType<typeof githubClientFor>>,
  ctx: RunContext,
  id: RunIdentity,
  save: StateWriter
): Promise<CheckRunReporter | undefined> {
  const checkRun = await startActionCheckRun(client, ctx, {
    name: id.checkName,
    externalId: id.externalId
  })
  if (checkRun?.id !== undefined) {
    save(STATE_KEYS.checkRunId, String(checkRun.id))
    setOutput('check-run-id', checkRun.id)
  }
  return checkRun
}

function setReportOutputs(report: Report, outDir: string): void {
  setOutput('conclusion', report.conclusion)
  setOutput('report-path', join(outDir, 'report.json'))
  setOutput(
    'boot-seconds',
    report.timings.bootMs !== undefined ? (report.timings.bootMs / 1000).toFixed(1) : ''
  )
  setOutput('accelerator', report.accelerator)
}

/** The leg's validation under the action's logger (stage starts saved for the post step). */
async function validateLeg(
  inputs: CheckedInputs,
  plan: RunPlan,
  tempRoot: string,
  signal: AbortSignal,
  save: StateWriter
): Promise<Report> {
  const logger = actionLogger((stage) =>
    save(STATE_KEYS.stage, JSON.stringify({ name: stage, startMs: Date.now() - plan.startedAt }))
  )
  let key: SshKey | undefined
  try {
    return await runValidation({ inputs, plan, tempRoot, logger, signal, save }, (k) => (key = k))
  } finally {
    logger.close()
    await key?.dispose()
  }
}

interface Leg {
  inputs: CheckedInputs
  plan: RunPlan
  tempRoot: string
  logger: ActionLogger
  signal: AbortSignal
  save: StateWriter
}

/** Build (unless vm-runner) then validate; whatever happens, a report exists in outDir. */
async function runValidation(leg: Leg, onKey: (key: SshKey) => void): Promise<Report> {
  const { inputs, plan, tempRoot, logger, signal, save } = leg
  let stage: { name: string; startMs: number } | undefined
  let built: RunnerBuild | undefined
  try {
    const checked = inputs.request.sshKey
    const key = checked !== undefined ? await openSshKey(checked, tempRoot) : undefined
    if (key !== undefined) onKey(key)
    if (inputs.vmRunner === undefined) {
      stage = { name: 'build', startMs: Date.now() - plan.startedAt }
      built = await buildLeg(leg, key)
      stage = undefined
    }
    const report = await validate(
      engineOptions(inputs.request, {
        runner: built?.runner ?? (inputs.vmRunner as string),
        sshKey: built?.sshKey ?? key?.path ?? '',
        outDir: plan.outDir,
        configuration: inputs.configuration,
        ...(built !== undefined
          ? {
              packagePath: built.packagePath,
              declared: built.declared,
              closureBytes: built.closureBytes
            }
          : {}),
        perf: actionPerf(inputs.perf, {
          subject: plan.subject,
          log: (m) => logger.info(m),
          client: actionsCacheClient()
        }),
        workRoot: tempRoot,
        logger,
        signal,
        startedAt: plan.startedAt,
        buildMs: built?.buildMs,
        onStarted: ({ pid, workDir }) => {
          save(STATE_KEYS.qemuPid, String(pid))
          save(STATE_KEYS.workDir, workDir)
        }
      })
    )
    return built !== undefined ? await built.finish(report) : report
  } catch (err) {
    // Only the build (or the key file) can get here: validate() itself never throws past a stage.
    return failedBeforeBoot(leg, err, stage)
  }
}

/** The Nix build of the configuration, within the whole run's timeout. */
async function buildLeg(leg: Leg, sshKey: SshKey | undefined): Promise<RunnerBuild> {
  const { inputs, plan, tempRoot, logger, signal } = leg
  logger.stageStart('build')
  const budget =
    inputs.timeoutMs > 0 ? AbortSignal.any([signal, AbortSignal.timeout(inputs.timeoutMs)]) : signal
  const built = await buildVmRunner(inputs, {
    logger,
    signal: budget,
    workRoot: tempRoot,
    outDir: plan.outDir,
    sshKey,
    githubToken: inputs.githubToken,
    workspace: plan.workspace
  })
  logger.stageEnd('build', 'passed', built.buildMs)
  return built
}

/** The report of a leg that failed before the VM started (the build's own, else a bare one). */
async function failedBeforeBoot(
  leg: Leg,
  err: unknown,
  stage: { name: string; startMs: number } | undefined
): Promise<Report> {
  const { inputs, plan, logger, signal } = leg
  let f = toFailure(err, stage !== undefined ? 'build-failed' : 'tool-error')
  if (signal.aborted && !(err instanceof ValidationFailure))
    f = new ValidationFailure('cancelled', 'the run was cancelled during the build')
  logger.warning(`${f.kind}: ${f.message}`)
  // A failed Nix build wrote its own report (with build.log listed).
  const written = f.kind === 'build-failed' ? await readReport(plan.outDir) : undefined
  if (written?.failure?.kind === 'build-failed') return written
  const report = bareReport({
    system: inputs.system,
    configuration: inputs.configuration,
    runner: inputs.vmRunner,
    startedAt: plan.startedAt,
    stage,
    failure: failureOf(stage?.name ?? 'setup', f)
  })
  await writeArtifacts(plan.outDir, report)
  return report
}
