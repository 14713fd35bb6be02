import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ValidationFailure, toFailure } from '../util/errors.js'
import { formatDuration } from '../util/duration.js'
import { newReport, type CheckResult, type Report, type StageResult } from '../report/model.js'
import { failureOf } from '../report/failure.js'
import { applyPerf } from '../perf/apply.js'
import { addSkippedStages, prepareOutDir, stageOrder, writeArtifacts } from '../report/artifacts.js'
import { STAGES } from '../checks/stages.js'
import type { SshSession } from '../ssh/client.js'
import { journalCommand } from '../ssh/guest.js'
import type { Machine } from '../vm/machine.js'
import type { ValidateOptions } from './options.js'

/**
 * What the phases of one validation run share: the report being filled, the run's cancellation
 * (the caller's signal or the overall timeout), the VM and the SSH session once there are, and the
 * one way a stage is recorded and failed. `close()` is the teardown every path ends with.
 */
export class RunState {
  readonly log: ValidateOptions['logger']
  readonly signal: AbortSignal
  machine: Machine | undefined
  ssh: SshSession | undefined
  /** Set by the boot phase: stops an SSH wait still running when the run ends. */
  stopSshWait: () => void = () => undefined
  private readonly overall = new AbortController()
  private readonly onAbort = (): void => this.overall.abort()
  private readonly runTimer: NodeJS.Timeout | undefined

  private constructor(
    readonly o: ValidateOptions,
    readonly t0: number,
    readonly report: Report,
    readonly workDir: string
  ) {
    this.log = o.logger
    this.signal = this.overall.signal
    o.signal?.addEventListener('abort', this.onAbort, { once: true })
    this.runTimer =
      o.timeoutMs > 0
        ? setTimeout(() => this.overall.abort(), o.timeoutMs - (Date.now() - t0))
        : undefined
  }

  /** Clears the output directory, starts the report and makes the run's scratch directory. */
  static async open(o: ValidateOptions): Promise<RunState> {
    const t0 = o.startedAt ?? Date.now()
    await prepareOutDir(o.outDir)
    const report = newReport({
      system: o.system,
      startedAt: t0,
      runner: o.runner,
      configuration: o.configuration
    })
    report.timings.buildMs = o.buildMs
    if (o.closureBytes !== undefined) report.closureBytes = o.closureBytes
    const workDir = await mkdtemp(join(o.workRoot ?? tmpdir(), 'nvv-'))
    return new RunState(o, t0, report, workDir)
  }

  /** A stage's result, added to the report as it starts. */
  stageResult(name: string, startMs: number): StageResult {
    const s: StageResult = {
      name,
      status: 'passed',
      durationMs: 0,
      startMs: startMs - this.t0,
      checks: []
    }
    this.report.stages.push(s)
    return s
  }

  /** Records a stage's failure in the report and captures the evidence of the moment. */
  async failStage(stage: StageResult, err: unknown, started: number): Promise<void> {
    let f = toFailure(err)
    // A stage cut short (cancelled, out of time) still reports the checks it finished.
    const partial = f.details.results
    if (Array.isArray(partial) && stage.checks.length === 0)
      stage.checks.push(...(partial as CheckResult[]))
    if (f.kind === 'tool-error' && this.signal.aborted) f = cancelledFailure(this.o, this.t0)
    stage.status = 'failed'
    stage.durationMs = Date.now() - started
    stage.message = f.message
    const failure = failureOf(stage.name, f)
    const machine = this.machine
    if (machine !== undefined && machine.startedAt > 0)
      failure.atMs = Date.now() - machine.startedAt
    // Stages that run at once may both fail: the report names the earliest in stage order.
    const report = this.report
    const first = report.failure === null
    if (first || stageOrder(stage.name, STAGES) < stageOrder(report.failure?.stage ?? '', STAGES)) {
      report.failure = failure
    }
    this.log.stageEnd(stage.name, 'failed', stage.durationMs)
    this.log.warning(`${stage.name} failed (${f.kind}): ${f.message}`)
    if (machine !== undefined)
      await captureFailureEvidence(machine, this.ssh, this.o.outDir, f, first)
  }

  /** A failure outside any stage (bad checks file, accelerator choice): an input error, no VM ran. */
  failSetup(err: unknown): void {
    const f = toFailure(err)
    this.report.failure = failureOf(this.report.stages.at(-1)?.name ?? 'setup', f)
    this.log.warning(`${f.kind}: ${f.message}`)
  }

  /** Teardown on every path: the VM stopped, scratch removed, the report concluded and written. */
  async close(): Promise<Report> {
    clearTimeout(this.runTimer)
    this.o.signal?.removeEventListener('abort', this.onAbort)
    this.stopSshWait() // an SSH wait still running (the boot failed) must not outlive the run
    if (this.machine !== undefined) await this.stopMachine(this.machine)
    await rm(this.workDir, { recursive: true, force: true }).catch(() => undefined)
    const report = this.report
    addSkippedStages(report, this.o.stages, STAGES)
    report.conclusion = report.failure === null ? 'success' : 'failure'
    // A retried boot never passes silently: the report says the leg was flaky.
    if (report.bootAttempts !== undefined) report.flaky = report.conclusion === 'success'
    report.timings.totalMs = Date.now() - this.t0
    if (this.o.perf !== undefined) await applyPerf(report, this.o.perf, this.log)
    await writeArtifacts(this.o.outDir, report)
    return report
  }

  private async stopMachine(machine: Machine): Promise<void> {
    const outDir = this.o.outDir
    const shot = await machine.screenshot(join(outDir, 'screenshot-final.png'))
    if (shot === undefined) this.log.debug('no final screenshot (no display or QEMU gone)')
    this.ssh?.close()
    // QMP quit, no ACPI power-off first: the disk is this run's own and is thrown away, and a
    // guest shutdown under emulation made every run wait 1.5 s more for nothing it reports.
    await machine.stop(0)
    const stderr = machine.stderrTail(200)
    if (stderr !== '') await writeFile(join(outDir, 'qemu-stderr.log'), stderr + '\n')
  }
}

function cancelledFailure(o: ValidateOptions, t0: number): ValidationFailure {
  const byTimeout = o.timeoutMs > 0 && Date.now() - t0 >= o.timeoutMs - 50
  return byTimeout
    ? new ValidationFailure(
        'stage-timeout',
        `the run exceeded its overall timeout of ${formatDuration(o.timeoutMs)}`
      )
    : new ValidationFailure('cancelled', 'the run was cancelled')
}

/** At the moment of a failure: a screenshot and, when SSH works, the journal. */
async function captureFailureEvidence(
  machine: Machine,
  ssh: SshSession | undefined,
  outDir: string,
  f: ValidationFailure,
  screenshot: boolean
): Promise<void> {
  // The screen at the first failure; a later failure adds its unit's journal and a fresher journal.
  if (screenshot) await machine.screenshot(join(outDir, 'screenshot-failure.png'))
  // Straight over the session, not the Guest's verbs: those stop at cancellation, and a
  // cancelled run's journal is evidence too.
  if (ssh === undefined || ssh.closed) return
  const journal = await ssh.exec(journalCommand({ tail: 20000 }), 60_000)
  if (journal.stdout !== '') await writeFile(join(outDir, 'journal.txt'), journal.stdout)
  const unit = (f.details as { unit?: string }).unit
  if (unit !== undefined) {
    const own = await ssh.exec(journalCommand({ unit, tail: 500, monotonic: false }), 30_000)
    await writeFile(join(outDir, `journal-${unit.replace(/[^\w.@-]/g, '_')}.txt`), own.stdout)
  }
}
