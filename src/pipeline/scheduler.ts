import { ValidationFailure } from '../util/errors.js'
import { Deadline } from '../util/time.js'
import type { CheckResult } from '../report/model.js'
import type { ExecResult, SshSession } from '../ssh/client.js'
import { Guest } from '../ssh/guest.js'
import {
  AFTER_BOOT_END,
  CHECK_STAGES,
  type CheckStageName,
  type StageContext,
  type StageName
} from '../checks/stages.js'
import { CHECK_CONCURRENCY } from '../checks/run.js'
import type { ChecksConfig } from '../checks/config.js'
import { systemTimeoutMs, waitForBootEnd } from '../checks/system.js'
import { copyE2eScripts, type E2eCopies } from '../checks/e2e.js'
import type { SshWait } from './boot.js'
import type { RunState } from './run-state.js'

/**
 * The stages after the boot: the ssh stage on the wait the boot started, then the check stages.
 * Each check stage runs its checks concurrently over the one connection, and the stages themselves
 * run at once (see AFTER_BOOT_END); NVV_CHECK_CONCURRENCY=1 runs them one after another instead.
 */
export class StageScheduler {
  /** The one wait per run for the end of the boot, for the system stage and the stages after it. */
  private bootEndWait: Promise<ExecResult> | undefined
  /** The e2e scripts go over SFTP once per run, as soon as SSH works (see copyE2eScripts). */
  private e2eCopying: Promise<E2eCopies> | undefined

  constructor(
    private readonly run: RunState,
    private readonly checks: ChecksConfig
  ) {}

  /** Runs the requested stages after the boot; a failed stage stops the ones not yet started. */
  async runAll(sshWait: SshWait): Promise<void> {
    const o = this.run.o
    if (o.stages.includes('ssh')) await this.sshStage(sshWait)
    await this.checkStages(o.stages.filter((n): n is CheckStageName => isCheckStage(n)))
  }

  private async sshStage(wait: SshWait): Promise<void> {
    const { o, report, log } = this.run
    const machine = this.run.machine
    if (report.failure !== null || machine === undefined || wait.session === undefined) return
    const started = Date.now()
    const stage = this.run.stageResult('ssh', started)
    log.stageStart('ssh')
    wait.deadline.reset(o.sshTimeoutMs)
    try {
      const ssh = await wait.session
      this.run.ssh = ssh
      report.timings.sshReadyMs = ssh.readyAt - machine.startedAt
      const probe = await ssh.exec('uname -a; id', 30_000)
      const check: CheckResult = {
        name: `ssh ${o.sshUser}@guest`,
        status: probe.code === 0 ? 'passed' : 'failed',
        durationMs: probe.durationMs,
        output: (probe.stdout + probe.stderr).trim()
      }
      stage.checks.push(check)
      if (check.status === 'failed') {
        throw new ValidationFailure(
          'check-failed',
          `a command over SSH failed (exit ${probe.code})`,
          check.output
        )
      }
      stage.durationMs = Date.now() - started
      log.stageEnd('ssh', 'passed', stage.durationMs)
    } catch (err) {
      await this.run.failStage(stage, err, started)
    }
  }

  private async checkStages(names: CheckStageName[]): Promise<void> {
    const session = this.run.ssh
    if (CHECK_CONCURRENCY === 1 || session === undefined) {
      for (const name of names) await this.checkStage(name)
      return
    }
    const early = names.filter((n) => !AFTER_BOOT_END.has(n))
    const later = names.filter((n) => AFTER_BOOT_END.has(n))
    // The copies start with the early stages; a failed copy is reported by the e2e stage.
    if (later.includes('e2e') && this.checks.e2e.length > 0)
      this.e2eCopies(session).catch(() => undefined)
    const runs = early.map((n) => this.checkStage(n))
    if (later.length > 0) {
      // They start once the system stage has judged the finished boot (a degraded boot skips
      // them), or without a system stage once the boot has ended.
      const system = early.indexOf('system')
      await (system >= 0 ? runs[system] : this.bootEnd(session, this.systemBudgetMs()))
      runs.push(...later.map((n) => this.checkStage(n)))
    }
    await Promise.all(runs)
  }

  private systemBudgetMs(): number {
    return Math.min(systemTimeoutMs(this.checks), this.run.o.stageTimeoutMs)
  }

  private async checkStage(name: CheckStageName): Promise<void> {
    const { report, log, ssh, machine } = this.run
    if (report.failure !== null) return // listed as "not run: <stage> failed" at the end
    if (ssh === undefined || machine === undefined) {
      const skipped = this.run.stageResult(name, Date.now())
      skipped.status = 'skipped'
      skipped.message = 'not run: needs the ssh stage'
      return
    }
    const started = Date.now()
    const stage = this.run.stageResult(name, started)
    log.stageStart(name)
    try {
      const results = await CHECK_STAGES[name](this.stageContext(ssh))
      stage.checks.push(...results)
      stage.durationMs = Date.now() - started
      if (results.length > 0 && results.every((c) => c.status === 'skipped'))
        stage.status = 'skipped'
      throwOnFailedChecks(results)
      log.stageEnd(name, stage.status, stage.durationMs)
    } catch (err) {
      await this.run.failStage(stage, err, started)
    }
  }

  /** What a check stage is given: the one place the StageContext is built. */
  private stageContext(ssh: SshSession): StageContext {
    const o = this.run.o
    return {
      guest: new Guest(ssh, this.run.signal, o.sshUser),
      settings: o,
      checks: this.checks,
      report: this.run.report,
      signal: this.run.signal,
      deadline: new Deadline(o.stageTimeoutMs),
      bootEnd: (ms) => this.bootEnd(ssh, ms),
      e2eCopies: () => this.e2eCopies(ssh)
    }
  }

  private bootEnd(session: SshSession, ms: number): Promise<ExecResult> {
    return (this.bootEndWait ??= waitForBootEnd({ ssh: session, signal: this.run.signal }, ms))
  }

  private e2eCopies(session: SshSession): Promise<E2eCopies> {
    return (this.e2eCopying ??= copyE2eScripts(
      { ssh: session, signal: this.run.signal },
      this.checks.e2e
    ))
  }
}

function isCheckStage(name: StageName): name is CheckStageName {
  return Object.hasOwn(CHECK_STAGES, name)
}

/** A stage with failed checks fails as check-failed, naming them and citing the first. */
function throwOnFailedChecks(results: CheckResult[]): void {
  const failed = results.filter((c) => c.status === 'failed')
  if (failed.length === 0) return
  const first = failed[0]
  throw new ValidationFailure(
    'check-failed',
    `${failed.length} check${failed.length > 1 ? 's' : ''} failed: ${failed.map((c) => c.name).join(', ')}`,
    first.output,
    { check: first.name, file: first.file, line: first.line, unit: first.unit }
  )
}
