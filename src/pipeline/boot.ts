import { rename, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ValidationFailure, toFailure } from '../util/errors.js'
import { formatDuration } from '../util/duration.js'
import { Deadline } from '../util/time.js'
import type { BootAttempt, BootAttemptFailure, StageResult } from '../report/model.js'
import { waitForSsh, type SshSession } from '../ssh/client.js'
import { decideAccelerator, type AccelDecision } from '../vm/accel.js'
import { KvmStallError, Machine, type WaitForBootOptions } from '../vm/machine.js'
import { qemuBinaryFromRunner, readRunnerScript } from '../vm/runner.js'
import { bootRetriesFor } from './options.js'
import type { RunState } from './run-state.js'

/*
 * The boot phase: the accelerator decided, the runner started, the console watched until the login
 * prompt (or SSH, waited for alongside, answers first), KVM that stalls replaced by TCG, and a boot
 * that went silent before userspace restarted on a fresh disk (boot-retries).
 */

const KVM_WATCHDOG_MS = 20_000

/** Decides KVM or TCG before the boot stage starts; a refused choice is an input error. */
export async function chooseAccelerator(run: RunState): Promise<AccelDecision> {
  const o = run.o
  const runnerScript = await readRunnerScript(o.runner)
  const accel = await decideAccelerator({
    choice: o.accel,
    system: o.system,
    cpu: 'max',
    qemu: qemuBinaryFromRunner(runnerScript, o.system),
    workDir: run.workDir
  }).catch((err: unknown) => {
    throw new ValidationFailure('input', String((err as Error).message))
  })
  run.log.info(
    `accelerator: ${accel.accelerator} — ${accel.reason} (probe ${formatDuration(accel.probeMs)})`
  )
  run.report.acceleratorReason = accel.reason
  return accel
}

/**
 * The boot stage. Leaves the VM in run.machine (also when the boot failed, for the evidence and
 * teardown) and returns the SSH wait it started, which the ssh stage goes on with.
 */
export async function bootPhase(
  run: RunState,
  accel: AccelDecision,
  wantSsh: boolean
): Promise<SshWait> {
  const bootStart = Date.now()
  const stage = run.stageResult('boot', bootStart)
  run.log.stageStart('boot')
  const ssh = new SshWait(run, wantSsh)
  run.stopSshWait = () => ssh.stop()
  try {
    const machine = await new BootLoop(run, accel, ssh).untilUp()
    recordBoot(run, stage, machine, ssh.readyAt, bootStart)
  } catch (err) {
    await run.failStage(stage, err, bootStart)
  }
  return ssh
}

/** Booted when the console showed the login prompt, or SSH answered, whichever came first. */
function recordBoot(
  run: RunState,
  stage: StageResult,
  machine: Machine,
  sshReadyAt: number | undefined,
  bootStart: number
): void {
  const readyAt = Math.min(machine.readyAt ?? Infinity, sshReadyAt ?? Infinity, Date.now())
  run.report.timings.bootMs = readyAt - machine.startedAt
  stage.durationMs = Date.now() - bootStart
  stage.message =
    machine.readyAt !== undefined
      ? 'login prompt / multi-user target on the console'
      : 'SSH answered before the console showed a login prompt'
  run.log.stageEnd('boot', 'passed', stage.durationMs)
}

/** The SSH wait started with each VM start, against one deadline for the boot and SSH together. */
export class SshWait {
  readonly deadline: Deadline
  /** The wait for the VM started last (undefined: SSH not requested, or no VM runs). */
  session: Promise<SshSession> | undefined
  readyAt: number | undefined
  private abort = new AbortController()

  constructor(
    private readonly run: RunState,
    private readonly wanted: boolean
  ) {
    this.deadline = new Deadline(run.o.bootTimeoutMs + run.o.sshTimeoutMs)
  }

  start(m: Machine): void {
    if (!this.wanted) return
    const { o, log, signal } = this.run
    const key = readFile(o.sshKey)
    const p = key.then((privateKey) =>
      waitForSsh(
        { host: '127.0.0.1', port: m.sshPort, user: o.sshUser, privateKey },
        {
          deadline: this.deadline,
          signal: AbortSignal.any([this.abort.signal, signal]),
          abortWhen: () =>
            m.fatal ??
            (m.running ? undefined : new ValidationFailure('qemu-exited', 'the VM stopped')),
          onAttempt: (n, d) => {
            log.debug(`ssh attempt ${n}: ${d.lastError ?? 'ok'} (banner ${d.bannerSeen ?? 'none'})`)
            if (n % 20 === 0)
              log.waiting(`ssh: attempt ${n}, banner ${d.bannerSeen ?? 'not seen yet'}`)
          }
        }
      )
    )
    p.then(
      (session) => (this.readyAt = session.readyAt),
      () => undefined
    )
    this.session = p
  }

  /** Abandons the wait for a VM about to be stopped; a later start() waits anew. */
  cancel(): void {
    this.abort.abort()
    this.abort = new AbortController()
  }

  /** Before a fresh boot: no wait, and the whole boot-and-SSH budget again. */
  reset(): void {
    this.deadline.reset(this.run.o.bootTimeoutMs + this.run.o.sshTimeoutMs)
    this.session = undefined
  }

  /** At the end of the run: a wait still running must not outlive it. */
  stop(): void {
    this.abort.abort()
  }
}

/** Starts of the VM until one boots, a failure is not retried, or the retries are spent. */
class BootLoop {
  private accel: AccelDecision
  /** Every start of the VM once the boot was retried (report.bootAttempts); empty until then. */
  private readonly attempts: BootAttempt[] = []

  constructor(
    private readonly run: RunState,
    private readonly decided: AccelDecision,
    private readonly ssh: SshWait
  ) {
    this.accel = decided
  }

  async untilUp(): Promise<Machine> {
    const t0 = this.run.t0
    for (let attempt = 1; ; attempt++) {
      try {
        const machine = await this.bootOnce()
        if (this.attempts.length > 0)
          this.attempts.push(bootAttempt(attempt, machine, t0, null, 'console.log'))
        return machine
      } catch (err) {
        await this.retryOrThrow(attempt, err)
      }
    }
  }

  private async bootOnce(): Promise<Machine> {
    const machine = await this.startMachine()
    try {
      await machine.waitForBoot(
        this.waitOptions(this.run.o.accel === 'auto' ? KVM_WATCHDOG_MS : undefined)
      )
      return machine
    } catch (err) {
      if (!(err instanceof KvmStallError)) throw err
      return this.fallBackToTcg(machine, err)
    }
  }

  /** KVM passed the probe but this guest makes no progress under it: start over under TCG. */
  private async fallBackToTcg(machine: Machine, err: KvmStallError): Promise<Machine> {
    const { log, report } = this.run
    log.warning(`${err.message}; restarting the guest under TCG`)
    this.ssh.cancel()
    await machine.stop(0)
    report.acceleratorReason = `KVM probe passed but the guest stalled under KVM (${err.message}); fell back to TCG`
    this.accel = { ...this.decided, accelerator: 'tcg' }
    const next = await this.startMachine()
    await next.waitForBoot(this.waitOptions(undefined))
    return next
  }

  private waitOptions(kvmWatchdogMs: number | undefined): WaitForBootOptions {
    const o = this.run.o
    return {
      deadline: new Deadline(o.bootTimeoutMs),
      silenceMs: o.silenceTimeoutMs,
      signal: this.run.signal,
      alsoReady: this.ssh.session,
      kvmWatchdogMs
    }
  }

  /** Throws `err` unless the boot is retried; a retried boot leaves no VM running. */
  private async retryOrThrow(attempt: number, err: unknown): Promise<void> {
    const { o, t0, signal } = this.run
    const m = this.run.machine
    const retries = bootRetriesFor(o.bootRetries, m?.accelerator ?? this.accel.accelerator)
    const retry = shouldRetryBoot({
      failure: err,
      userspaceSeen: m?.console.userspaceAt !== undefined,
      retriesDone: attempt - 1,
      retries,
      cancelled: signal.aborted
    })
    if (m === undefined || !retry) {
      if (this.attempts.length > 0 && m !== undefined)
        this.attempts.push(
          bootAttempt(attempt, m, t0, attemptFailure(err, m, o.silenceTimeoutMs), 'console.log')
        )
      throw err
    }
    await this.restart(attempt, retries, m, err)
  }

  /**
   * A silence before userspace (a transient emulator hang): this VM is stopped, its console kept
   * as its own artifact, and a fresh one boots on a fresh disk overlay.
   */
  private async restart(attempt: number, retries: number, m: Machine, err: unknown): Promise<void> {
    const { o, t0, log, report } = this.run
    const consoleLog = `console-attempt-${attempt}.log`
    const record = bootAttempt(
      attempt,
      m,
      t0,
      attemptFailure(err, m, o.silenceTimeoutMs),
      consoleLog
    )
    log.warning(
      `boot attempt ${attempt} went silent before userspace (${(err as Error).message.split(';')[0]}); ` +
        `restarting the guest on a fresh disk (retry ${attempt} of ${retries}, boot-retries)`
    )
    await m.screenshot(join(o.outDir, `screenshot-attempt-${attempt}.png`))
    this.ssh.cancel()
    await m.stop(0)
    await rename(join(o.outDir, 'console.log'), join(o.outDir, consoleLog)).catch((e: unknown) =>
      log.warning(`could not keep ${consoleLog}: ${String(e)}`)
    )
    this.attempts.push(record)
    report.bootAttempts = this.attempts
    this.ssh.reset()
    this.run.machine = undefined
  }

  /** Starts the runner under the current accelerator, and the SSH wait for it. */
  private async startMachine(): Promise<Machine> {
    const { o, log, report, workDir } = this.run
    const machine = new Machine({
      runner: o.runner,
      system: o.system,
      accelerator: this.accel.accelerator,
      workDir,
      consoleLog: join(o.outDir, 'console.log'),
      guestSshPort: o.guestSshPort,
      cpu: o.cpu,
      env: o.env,
      logger: log
    })
    await machine.start()
    this.run.machine = machine
    report.accelerator = machine.accelerator
    report.timings.preflightMs = machine.startedAt - (o.startedAt ?? machine.startedAt)
    if (machine.pid !== undefined) o.onStarted?.({ pid: machine.pid, workDir })
    log.info(
      `started ${o.runner} (pid ${machine.pid ?? '?'}, ${machine.accelerator}, ssh forward 127.0.0.1:${machine.sshPort})`
    )
    this.ssh.start(machine)
    return machine
  }
}

/**
 * Whether a failed boot attempt is the transient hang that boot-retries restarts: a boot-timeout
 * for silence (the console stopped for the silence limit; not the boot deadline) while the console
 * had not yet shown userspace starting (ConsoleMonitor.userspaceAt: init, NixOS stage 1/2, systemd).
 * A panic, emergency mode, QEMU exiting, the deadline and a silence after userspace started are
 * real faults of the guest and never retried.
 */
export function isRetryableBootFailure(failure: unknown, userspaceSeen: boolean): boolean {
  return (
    failure instanceof ValidationFailure &&
    failure.kind === 'boot-timeout' &&
    (failure.details as { reason?: unknown }).reason === 'silence' &&
    !userspaceSeen
  )
}

/** The retry decision of the boot stage: a retryable failure, retries left, and not cancelled. */
export function shouldRetryBoot(o: {
  failure: unknown
  userspaceSeen: boolean
  /** Restarts already made. */
  retriesDone: number
  /** Restarts allowed (bootRetriesFor). */
  retries: number
  cancelled: boolean
}): boolean {
  return (
    !o.cancelled && o.retriesDone < o.retries && isRetryableBootFailure(o.failure, o.userspaceSeen)
  )
}

function bootAttempt(
  attempt: number,
  m: Machine,
  t0: number,
  failure: BootAttemptFailure | null,
  consoleLog: string
): BootAttempt {
  return {
    attempt,
    startedAtMs: m.startedAt - t0,
    durationMs: Date.now() - m.startedAt,
    accelerator: m.accelerator,
    userspaceSeen: m.console.userspaceAt !== undefined,
    failure,
    consoleLog
  }
}

function attemptFailure(err: unknown, m: Machine, silenceMs: number): BootAttemptFailure {
  const f = toFailure(err)
  const reason = (f.details as { reason?: unknown }).reason
  const out: BootAttemptFailure = { kind: f.kind, message: f.message, excerpt: f.excerpt }
  if (typeof reason === 'string') out.reason = reason
  if (reason === 'silence') {
    out.silenceMs = silenceMs
    out.lastOutputAtMs = (m.console.lastOutputAt ?? m.startedAt) - m.startedAt
    const last = m.console.tail(1)[0]
    if (last !== undefined) out.lastLine = last
  }
  return out
}
