import { mkdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import * as core from '@actions/core'
import { validate } from '../pipeline/validate.js'
import { writeArtifacts } from '../report/artifacts.js'
import type { Report } from '../report/model.js'
import { startCheckRun } from '../github/check-run.js'
import { GitHubApiError } from '../github/client.js'
import { readRunContext, runUrl } from '../github/context.js'
import { errorMessage, InputError, toFailure, ValidationFailure } from '../util/errors.js'
import { InputErrors } from '../util/input-errors.js'
import { killAllGroupsSync } from '../vm/process.js'
import { runIdentity, type RunIdentity } from './identity.js'
import { materializeSshKey, readInputs, type ActionInputs } from './inputs.js'
import { actionLogger } from './logger.js'
import { buildVmRunner, type RunnerBuild } from './nix.js'
import { dryRunOutputs, planDryRun, type DryRun } from './plan.js'
import { githubClientFor, publish } from './publish.js'
import { bareReport, readReport } from './report.js'
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

/** Engine budgets the action does not expose as inputs (the CLI's defaults). */
const SILENCE_TIMEOUT_MS = 2 * 60_000
const SSH_TIMEOUT_MS = 3 * 60_000
const STAGE_TIMEOUT_MS = 10 * 60_000

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

/**
 * Where a leg's files go: one directory under RUNNER_TEMP/nixos-vm-validate/out, named after its
 * artifact through a form no input can move elsewhere — anything but letters, digits, `.`, `_`
 * and `-` becomes `_`, and so does a leading dot (`..` would make it the work directory, whose
 * key and netrc the upload would then take).
 */
export function outDirFor(id: RunIdentity, tempRoot: string): string {
  const base = join(tempRoot, 'nixos-vm-validate', 'out')
  const name = id.artifactName.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\./, '_') || '_'
  const dir = join(base, name)
  if (dirname(dir) !== base) throw new Error(`output directory ${dir} is not inside ${base}`)
  return dir
}

async function runMain(): Promise<void> {
  const ctx = readRunContext()
  let inputs: ActionInputs
  try {
    // Every input (and the files and flake they name) checked at once; all errors together.
    inputs = await readInputs()
  } catch (err) {
    // Bad input: nothing has started (no VM, no check run, no artifact).
    core.setFailed(inputFailure(err))
    return
  }
  const id = runIdentity(inputs, ctx)
  const tempRoot = process.env.RUNNER_TEMP || tmpdir()
  const outDir = outDirFor(id, tempRoot)

  if (inputs.dryRun) {
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
      .addRaw(
        `## VM validation: dry run (${id.subject}, ${id.system})\n\n${fence(dry.plan)}\n`,
        true
      )
      .write()
      .catch(() => undefined)
    return
  }

  const startedAt = Date.now()
  const save: StateWriter = saveState
  const plan: RunPlan = {
    subject: id.subject,
    configuration: inputs.configuration,
    runner: inputs.vmRunner,
    system: id.system,
    emulated: id.emulated,
    outDir,
    workspace: ctx.workspace,
    startedAt,
    artifactName: id.artifactName,
    retentionDays: inputs.retentionDays,
    checkName: id.checkName,
    externalId: id.externalId,
    marker: id.marker,
    prComment: inputs.prComment,
    checksFile: inputs.checksFile
  }
  save(STATE_KEYS.plan, JSON.stringify(plan))
  await mkdir(outDir, { recursive: true })
  core.info(`${id.checkName}: artifacts in ${outDir}`)

  const client = await githubClientFor(inputs.githubToken, ctx)
  let checkRunId: number | undefined
  if (
    client !== undefined &&
    ctx.owner !== undefined &&
    ctx.repo !== undefined &&
    ctx.headSha !== undefined
  ) {
    try {
      checkRunId = await startCheckRun(client, {
        owner: ctx.owner,
        repo: ctx.repo,
        headSha: ctx.headSha,
        name: id.checkName,
        externalId: id.externalId,
        detailsUrl: runUrl(ctx)
      })
      save(STATE_KEYS.checkRunId, String(checkRunId))
      setOutput('check-run-id', checkRunId)
      core.info(`check run ${checkRunId} "${id.checkName}" in progress on ${ctx.headSha}`)
    } catch (err) {
      core.warning(
        err instanceof GitHubApiError
          ? err.message
          : `creating the check run failed: ${errorMessage(err)}`
      )
    }
  }

  // The runner cancels with SIGINT, then SIGTERM: the first stops the VM and lets the report,
  // artifact and check run be written; later ones make sure no QEMU is left.
  const controller = new AbortController()
  const onSignal = (sig: NodeJS.Signals): void => {
    if (!controller.signal.aborted) {
      core.warning(`${sig}: cancelling — stopping the VM, then writing the report`)
      controller.abort()
    } else killAllGroupsSync()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)

  const logger = actionLogger((stage) =>
    save(STATE_KEYS.stage, JSON.stringify({ name: stage, startMs: Date.now() - startedAt }))
  )
  let keyDir: string | undefined
  let report: Report
  try {
    try {
      report = await runValidation(
        inputs,
        plan,
        tempRoot,
        logger,
        controller.signal,
        save,
        (d) => (keyDir = d)
      )
    } finally {
      logger.close()
      if (keyDir !== undefined)
        await rm(keyDir, { recursive: true, force: true }).catch(() => undefined)
    }
    setOutput('conclusion', report.conclusion)
    setOutput('report-path', join(outDir, 'report.json'))
    setOutput(
      'boot-seconds',
      report.timings.bootMs !== undefined ? (report.timings.bootMs / 1000).toFixed(1) : ''
    )
    setOutput('accelerator', report.accelerator)

    // Still under the signal handlers: a second cancel signal must not cut the reporting short.
    const artifact = await publish({
      report,
      plan,
      context: ctx,
      client,
      checkRunId,
      done: { summaryWritten: false, checkRunCompleted: false, commentWritten: false },
      save,
      annotate: true
    })
    if (artifact.id !== undefined) setOutput('artifact-id', artifact.id)
    if (artifact.url !== undefined) setOutput('artifact-url', artifact.url)
    save(STATE_KEYS.mainFinished, 'true')
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }

  if (report.conclusion !== 'success') core.setFailed(plainConclusion(report))
  else core.info(plainConclusion(report))
}

/** Build (unless vm-runner) then validate; whatever happens, a report exists in outDir. */
async function runValidation(
  inputs: ActionInputs,
  plan: RunPlan,
  tempRoot: string,
  logger: ReturnType<typeof actionLogger>,
  signal: AbortSignal,
  save: StateWriter,
  onKeyDir: (dir: string) => void
): Promise<Report> {
  let stage: { name: string; startMs: number } | undefined
  let built: RunnerBuild | undefined
  try {
    const key = await materializeSshKey(inputs.sshKey, tempRoot)
    if (key.dir !== undefined) onKeyDir(key.dir)
    let runner = inputs.vmRunner
    let sshKey = key.path
    let buildMs: number | undefined
    if (runner === undefined) {
      stage = { name: 'build', startMs: Date.now() - plan.startedAt }
      logger.stageStart('build')
      const budget =
        inputs.timeoutMs > 0
          ? AbortSignal.any([signal, AbortSignal.timeout(inputs.timeoutMs)])
          : signal
      built = await buildVmRunner(inputs, {
        logger,
        signal: budget,
        workRoot: tempRoot,
        outDir: plan.outDir,
        sshKeyPath: key.path,
        githubToken: inputs.githubToken,
        workspace: plan.workspace
      })
      logger.stageEnd('build', 'passed', built.buildMs)
      runner = built.runner
      sshKey = built.sshKey
      buildMs = built.buildMs
      stage = undefined
    }
    const report = await validate({
      runner,
      system: inputs.system,
      sshKey: sshKey ?? '',
      sshUser: inputs.sshUser,
      guestSshPort: 22,
      stages: inputs.stages,
      outDir: plan.outDir,
      bootTimeoutMs: inputs.bootTimeoutMs,
      silenceTimeoutMs: SILENCE_TIMEOUT_MS,
      sshTimeoutMs: SSH_TIMEOUT_MS,
      stageTimeoutMs: STAGE_TIMEOUT_MS,
      timeoutMs: inputs.timeoutMs,
      accel: inputs.accel,
      bootRetries: inputs.bootRetries,
      checksFile: inputs.checksFile,
      configuration: inputs.configuration,
      ...(built !== undefined ? { packagePath: built.packagePath } : {}),
      workRoot: tempRoot,
      logger,
      signal,
      startedAt: plan.startedAt,
      buildMs,
      onStarted: ({ pid, workDir }) => {
        save(STATE_KEYS.qemuPid, String(pid))
        save(STATE_KEYS.workDir, workDir)
      }
    })
    return built !== undefined ? await built.finish(report) : report
  } catch (err) {
    // Only the build (or the key file) can get here: validate() itself never throws past a stage.
    let f = toFailure(err, stage !== undefined ? 'build-failed' : 'tool-error')
    if (signal.aborted && !(err instanceof ValidationFailure))
      f = new ValidationFailure('cancelled', 'the run was cancelled during the build')
    logger.warning(`${f.kind}: ${f.message}`)
    // A failed Nix build wrote its own report (with build.log listed).
    const written = f.kind === 'build-failed' ? await readReport(plan.outDir) : undefined
    if (written?.failure?.kind === 'build-failed') return written
    const d = f.details as { file?: string; line?: number }
    const report = bareReport({
      system: inputs.system,
      configuration: inputs.configuration,
      runner: inputs.vmRunner,
      startedAt: plan.startedAt,
      stage,
      failure: {
        stage: stage?.name ?? 'setup',
        kind: f.kind,
        message: f.message,
        excerpt: f.excerpt,
        ...(d.file !== undefined ? { file: d.file } : {}),
        ...(d.line !== undefined ? { line: d.line } : {})
      }
    })
    await writeArtifacts(plan.outDir, report)
    return report
  }
}
