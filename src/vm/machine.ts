import { spawn, type ChildProcess } from 'node:child_process'
import { CappedLog } from './capped-log.js'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ValidationFailure } from '../util/errors.js'
import { formatDuration } from '../util/duration.js'
import type { Logger } from '../util/log.js'
import { Deadline, sleep } from '../util/time.js'
import { ConsoleMonitor, type ConsoleEvent } from './console.js'
import {
  installExitHook,
  isAlive,
  killGroup,
  trackGroup,
  untrackGroup,
  freePort
} from './process.js'
import { buildQemuOpts, buildRunnerEnv } from './qemu-opts.js'
import { QmpClient } from './qmp.js'
import type { Accelerator, GuestSystem } from './system.js'

export interface MachineOptions {
  runner: string
  system: GuestSystem
  accelerator: Accelerator
  /** Per-run scratch dir: disk image, VM TMPDIR, QMP socket, pid file. */
  workDir: string
  /** Raw serial console goes here. */
  consoleLog: string
  guestSshPort: number
  cpu?: string
  env?: NodeJS.ProcessEnv
  logger: Logger
}

export interface WaitForBootOptions {
  deadline: Deadline
  /** Fail as boot-timeout when the console stays silent this long. */
  silenceMs: number
  signal?: AbortSignal
  /** Extra condition that also proves the boot (SSH answered). */
  alsoReady?: Promise<unknown>
  /** Under KVM: give up on KVM when the console is still empty after this long. */
  kvmWatchdogMs?: number
}

export class KvmStallError extends Error {}

/**
 * One VM started from a runner script that follows the NixOS runner contract. Owns the QEMU
 * process group, the console and QMP; `stop()` always leaves no process behind.
 */
export class Machine {
  readonly console: ConsoleMonitor
  readonly hostSshPort: Promise<number>
  startedAt = 0
  readyAt: number | undefined
  accelerator: Accelerator
  /** Set once QEMU is gone; the reason it went. */
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined
  private child: ChildProcess | undefined
  private qmp: QmpClient | undefined
  private consoleFile: CappedLog | undefined
  private stderr = ''
  private stopping = false
  private failure: ValidationFailure | undefined
  private readyEvent: ConsoleEvent | undefined
  private readonly waiters = new Set<() => void>()
  private readonly closed: Promise<void>
  private markClosed!: () => void
  private port = 0

  constructor(private readonly opts: MachineOptions) {
    this.accelerator = opts.accelerator
    this.console = new ConsoleMonitor((e) => this.onConsoleEvent(e))
    this.hostSshPort = freePort().then((p) => (this.port = p))
    this.closed = new Promise((resolve) => (this.markClosed = resolve))
  }

  get pid(): number | undefined {
    return this.child?.pid
  }

  get sshPort(): number {
    return this.port
  }

  /** The first fatal thing seen (panic, emergency, QEMU gone), if any. */
  get fatal(): ValidationFailure | undefined {
    return this.failure
  }

  get running(): boolean {
    return this.child !== undefined && this.exit === undefined
  }

  async start(): Promise<void> {
    const { workDir, logger } = this.opts
    const tmpDir = join(workDir, 'tmp')
    await mkdir(tmpDir, { recursive: true })
    const port = await this.hostSshPort
    const qmpSocket = join(workDir, 'qmp.sock')
    const baseEnv = this.opts.env ?? process.env
    const qemuOpts = buildQemuOpts({
      system: this.opts.system,
      accel: this.accelerator,
      qmpSocket,
      cpu: this.opts.cpu,
      userOpts: baseEnv.QEMU_OPTS
    })
    // The runner and QEMU get the environment without the action's inputs and tokens.
    const env = buildRunnerEnv({
      base: baseEnv,
      diskImage: join(workDir, 'disk.qcow2'),
      tmpDir,
      hostSshPort: port,
      guestSshPort: this.opts.guestSshPort,
      qemuOpts,
      userNetOpts: baseEnv.QEMU_NET_OPTS,
      userKernelParams: baseEnv.QEMU_KERNEL_PARAMS
    })
    logger.debug(`runner env: QEMU_OPTS=${env.QEMU_OPTS} QEMU_NET_OPTS=${env.QEMU_NET_OPTS}`)
    this.consoleFile = new CappedLog(this.opts.consoleLog)
    installExitHook()
    this.startedAt = Date.now()
    const child = spawn(this.opts.runner, [], {
      env,
      cwd: workDir,
      detached: true, // own process group: teardown signals the runner and QEMU together
      stdio: ['pipe', 'pipe', 'pipe']
    })
    this.child = child
    child.on('error', (err) => {
      this.stderr += `cannot start runner: ${err.message}\n`
    })
    if (child.pid !== undefined) {
      trackGroup(child.pid)
      await writeFile(join(workDir, 'qemu.pid'), `${child.pid}\n`)
    }
    child.stdout?.on('data', (d: Buffer) => {
      this.consoleFile?.write(d)
      this.console.push(d)
      this.wake()
    })
    child.stderr?.on('data', (d: Buffer) => {
      this.stderr += d.toString()
      if (this.stderr.length > 64 * 1024) this.stderr = this.stderr.slice(-32 * 1024)
    })
    // 'close' comes after stdout is drained, so a panic line is seen before QEMU's exit.
    child.on('close', (code, signal) => this.onClose(code, signal))
    try {
      this.qmp = await QmpClient.connect(qmpSocket, 15_000, () => this.exit === undefined)
      const kvm = await this.qmp.execute<{ enabled: boolean }>('query-kvm').catch(() => undefined)
      if (kvm !== undefined) this.accelerator = kvm.enabled ? 'kvm' : 'tcg'
    } catch (err) {
      if (this.exit === undefined)
        logger.warning(`QMP unavailable (no screenshots, hard stop only): ${String(err)}`)
    }
  }

  private onConsoleEvent(event: ConsoleEvent): void {
    if (event.kind === 'ready') {
      this.readyEvent ??= event
      this.readyAt ??= Date.now()
      this.wake()
      return
    }
    if (this.failure !== undefined || this.stopping) return
    if (event.kind === 'kernel-panic') {
      // Let the panic trace arrive (or QEMU exit on -no-reboot) before cutting the excerpt.
      void Promise.race([sleep(1500), this.closed]).then(() =>
        this.fail(
          new ValidationFailure(
            'kernel-panic',
            `the guest kernel panicked: ${event.text.trim()}`,
            this.console.excerpt(event)
          )
        )
      )
      return
    }
    this.fail(
      new ValidationFailure(
        'emergency-mode',
        `the guest entered emergency mode: ${event.text.trim()}`,
        this.console.excerpt(event)
      )
    )
  }

  private onClose(code: number | null, signal: NodeJS.Signals | null): void {
    this.exit = { code, signal }
    this.console.end()
    void this.consoleFile?.end()
    this.qmp?.close()
    if (this.child?.pid !== undefined) untrackGroup(this.child.pid)
    this.markClosed()
    if (!this.stopping && this.failure === undefined) {
      // A panic already seen is finalized by its own handler (it awaits `closed`).
      const panicPending = this.console.lines.some((l) => /Kernel panic - not syncing/.test(l))
      if (!panicPending) {
        const how = signal !== null ? `signal ${signal}` : `exit code ${code}`
        const stderr = this.stderr.trim().split('\n').slice(-15).join('\n')
        const tail = this.console.tail(20).join('\n')
        this.fail(
          new ValidationFailure(
            'qemu-exited',
            `QEMU exited unexpectedly (${how})${stderr !== '' ? `: ${stderr.split('\n').slice(-1)[0]}` : ''}`,
            [
              stderr !== '' ? `QEMU/runner stderr:\n${stderr}` : '',
              tail !== '' ? `console:\n${tail}` : ''
            ]
              .filter(Boolean)
              .join('\n\n')
          )
        )
      }
    }
    this.wake()
  }

  private fail(failure: ValidationFailure): void {
    if (this.failure !== undefined) return
    this.failure = failure
    this.wake()
  }

  private wake(): void {
    for (const w of this.waiters) w()
  }

  /** Resolves on the next console/process event or after `ms`. */
  private nextEvent(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t)
        this.waiters.delete(done)
        signal?.removeEventListener('abort', done)
        resolve()
      }
      const t = setTimeout(done, ms)
      this.waiters.add(done)
      signal?.addEventListener('abort', done, { once: true })
    })
  }

  /**
   * Waits for the login prompt / multi-user target on the console (or `alsoReady`). Fails fast on a
   * panic, emergency mode or QEMU exit; fails as boot-timeout on silence or at the deadline.
   */
  async waitForBoot(o: WaitForBootOptions): Promise<void> {
    let otherReady = false
    o.alsoReady?.then(
      () => {
        otherReady = true
        this.wake()
      },
      () => undefined
    )
    let lastReport = 0
    for (;;) {
      if (this.failure !== undefined) throw this.failure
      if (this.readyEvent !== undefined || otherReady) return
      if (o.signal?.aborted)
        throw new ValidationFailure('cancelled', 'cancelled while waiting for the guest to boot')
      const now = Date.now()
      const lastOutput = this.console.lastOutputAt ?? this.startedAt
      // Under KVM a guest reaches userspace in seconds; silence before it is KVM failing this
      // guest (nothing at all, or the firmware's lines and then nothing), not a slow boot.
      if (
        o.kvmWatchdogMs !== undefined &&
        this.accelerator === 'kvm' &&
        this.console.userspaceAt === undefined &&
        now - lastOutput >= o.kvmWatchdogMs
      ) {
        throw new KvmStallError(
          `${this.console.bytes === 0 ? 'no console output' : `the console stopped after ${this.console.lineCount} lines`} for ${formatDuration(o.kvmWatchdogMs)} before userspace under KVM`
        )
      }
      if (now - lastOutput >= o.silenceMs) throw this.timeoutFailure('silence', o.silenceMs)
      if (o.deadline.expired()) throw this.timeoutFailure('deadline', now - this.startedAt)
      if (now - lastReport >= 5000) {
        lastReport = now
        const last = this.console.tail(1)[0]
        this.opts.logger.waiting(
          `boot: waiting for the login prompt (${formatDuration(now - this.startedAt)}, ${this.accelerator}, ` +
            `console ${this.console.lineCount} lines${last !== undefined ? `, last: ${JSON.stringify(last.slice(0, 100))}` : ''})`
        )
      }
      await this.nextEvent(Math.min(500, Math.max(1, o.deadline.remaining())), o.signal)
    }
  }

  private timeoutFailure(why: 'silence' | 'deadline', ms: number): ValidationFailure {
    const tail = this.console.tail(30).join('\n')
    const excerpt =
      tail === '' ? '(the serial console stayed empty: the guest printed nothing)' : tail
    const tcg =
      this.accelerator === 'tcg'
        ? ' The guest runs under TCG (software emulation), which is several times slower than KVM; raise the boot timeout (boot-timeout) if it was still making progress.'
        : ''
    if (why === 'silence') {
      return new ValidationFailure(
        'boot-timeout',
        `no console output for ${formatDuration(ms)} (silence limit); the guest printed ${this.console.bytes} bytes in total.${tcg}`,
        excerpt,
        { reason: 'silence' }
      )
    }
    return new ValidationFailure(
      'boot-timeout',
      `the guest did not reach the login prompt within ${formatDuration(ms)}.${tcg}`,
      excerpt,
      { reason: 'deadline' }
    )
  }

  async qmpStatus(): Promise<string | undefined> {
    const s = await this.qmp
      ?.execute<{ status: string }>('query-status', undefined, 3000)
      .catch(() => undefined)
    return s?.status
  }

  /** PNG of the guest's display via QMP screendump; undefined when there is none. */
  async screenshot(path: string): Promise<string | undefined> {
    if (this.qmp === undefined || this.qmp.closed || this.exit !== undefined) return undefined
    try {
      await this.qmp.execute('screendump', { filename: path, format: 'png' }, 10_000)
      return path
    } catch (err) {
      this.opts.logger.warning(`screenshot ${path} failed: ${String(err)}`)
      return undefined
    }
  }

  /**
   * Teardown: ACPI power-off, then QMP quit, then SIGTERM and SIGKILL to the process group, each with
   * a deadline. Never throws; afterwards no process of this machine is left.
   */
  async stop(powerdownMs = 5000): Promise<void> {
    this.stopping = true
    const child = this.child
    if (child?.pid === undefined || this.exit !== undefined) return this.cleanup()
    const pid = child.pid
    const gone = (ms: number): Promise<boolean> =>
      Promise.race([this.closed.then(() => true), sleep(ms).then(() => this.exit !== undefined)])
    if (this.qmp !== undefined && !this.qmp.closed && powerdownMs > 0) {
      await this.qmp.execute('system_powerdown', undefined, 2000).catch(() => undefined)
      if (await gone(powerdownMs)) return this.cleanup()
    }
    if (this.qmp !== undefined && !this.qmp.closed) {
      await this.qmp.execute('quit', undefined, 2000).catch(() => undefined)
      if (await gone(3000)) return this.cleanup()
    }
    killGroup(pid, 'SIGTERM')
    if (await gone(3000)) return this.cleanup()
    killGroup(pid, 'SIGKILL')
    await gone(5000)
    if (isAlive(pid)) this.opts.logger.warning(`QEMU process ${pid} survived SIGKILL`)
    return this.cleanup()
  }

  private async cleanup(): Promise<void> {
    this.qmp?.close()
    if (this.child?.pid !== undefined) {
      killGroup(this.child.pid, 'SIGKILL') // stragglers of the group, if any
      untrackGroup(this.child.pid)
    }
    await this.consoleFile?.end()
    await rm(join(this.opts.workDir, 'disk.qcow2'), { force: true })
    await rm(join(this.opts.workDir, 'qemu.pid'), { force: true })
  }

  /** QEMU's own stderr (runner messages, QEMU warnings), trimmed. */
  stderrTail(lines = 20): string {
    return this.stderr.trim().split('\n').slice(-lines).join('\n')
  }
}
