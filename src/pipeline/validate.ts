import { mkdir, mkdtemp, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ValidationFailure, toFailure } from '../util/errors.js'
import { formatDuration } from '../util/duration.js'
import { Deadline } from '../util/time.js'
import {
  STAGES,
  newReport,
  type BootAttempt,
  type BootAttemptFailure,
  type CheckResult,
  type Failure,
  type Report,
  type StageName,
  type StageResult
} from '../report/model.js'
import { renderJunit, renderSummary } from '../report/render.js'
import { SshSession, shellQuote, waitForSsh, type ExecResult } from '../ssh/client.js'
import { decideAccelerator, qemuBinaryFromRunner, type AccelDecision } from '../vm/accel.js'
import { KvmStallError, Machine } from '../vm/machine.js'
import { bootRetriesFor, type ValidateOptions } from './options.js'
import {
  AFTER_BOOT_END,
  CHECK_STAGES,
  type CheckStageName,
  type StageContext
} from '../checks/stages.js'
import { CHECK_CONCURRENCY } from '../checks/run.js'
import { DEFAULT_TIMEOUTS } from '../checks/schema.js'
import { waitForBootEnd } from '../checks/system.js'
import { copyE2eScripts, type E2eCopies } from '../checks/e2e.js'
import { loadChecks } from '../checks/config.js'

/** Files a run writes into --out; stale ones from an earlier run are removed first. */
const ARTIFACT_PATTERN =
  /^(report\.json|console\.log|console-attempt-\d+\.log|junit\.xml|summary\.md|journal.*\.txt|screenshot-.*\.png|qemu-stderr\.log|e2e-.*\.log)$/

const KVM_WATCHDOG_MS = 20_000

/**
 * One validation run: boot → ssh → check stages → teardown. Never throws past a stage: every
 * failure is classified into the report, and teardown (screenshot, QEMU stopped, artifacts written)
 * runs on every path.
 */
export async function validate(o: ValidateOptions): Promise<Report> {
  const t0 = o.startedAt ?? Date.now()
  const log = o.logger
  await prepareOutDir(o.outDir)
  const report = newReport({
    system: o.system,
    startedAt: t0,
    runner: o.runner,
    configuration: o.configuration
  })
  report.timings.buildMs = o.buildMs
  const workDir = await mkdtemp(join(o.workRoot ?? tmpdir(), 'nvv-'))
  let machine: Machine | undefined
  let ssh: SshSession | undefined
  const overall = new AbortController()
  const onAbort = (): void => overall.abort()
  o.signal?.addEventListener('abort', onAbort, { once: true })
  const runTimer =
    o.timeoutMs > 0 ? setTimeout(() => overall.abort(), o.timeoutMs - (Date.now() - t0)) : undefined
  const signal = overall.signal
  let sshAbort = new AbortController()
  const stageResult = (name: string, startMs: number): StageResult => {
    const s: StageResult = {
      name,
      status: 'passed',
      durationMs: 0,
      startMs: startMs - t0,
      checks: []
    }
    report.stages.push(s)
    return s
  }
  const failStage = async (stage: StageResult, err: unknown, started: number): Promise<void> => {
    let f = toFailure(err)
    // A stage cut short (cancelled, out of time) still reports the checks it finished.
    const partial = f.details.results
    if (Array.isArray(partial) && stage.checks.length === 0)
      stage.checks.push(...(partial as CheckResult[]))
    if (f.kind === 'tool-error' && signal.aborted) f = cancelledFailure(o, t0)
    stage.status = 'failed'
    stage.durationMs = Date.now() - started
    stage.message = f.message
    const failure = failureOf(stage.name, f)
    if (machine !== undefined && machine.startedAt > 0)
      failure.atMs = Date.now() - machine.startedAt
    // Stages that run at once may both fail: the report names the earliest in stage order.
    const first = report.failure === null
    if (first || stageOrder(stage.name) < stageOrder(report.failure?.stage ?? '')) {
      report.failure = failure
    }
    log.stageEnd(stage.name, 'failed', stage.durationMs)
    log.warning(`${stage.name} failed (${f.kind}): ${f.message}`)
    if (machine !== undefined) await captureFailureEvidence(machine, ssh, o.outDir, f, first)
  }

  try {
    const checks = await loadChecks(o.checksFile, o.stages)
    const requested = new Set<StageName>(o.stages)
    // Package paths are evaluated on the host while the VM boots; the network stage awaits them.
    if (requested.has('network') && o.packagePath !== undefined)
      for (const s of checks.network?.substitute ?? [])
        if (s.package !== undefined) o.packagePath(s.package).catch(() => undefined)
    const runnerScript = await readFile(o.runner, 'utf8').catch(() => '')
    const accel = await decideAccelerator({
      choice: o.accel,
      system: o.system,
      cpu: 'max',
      qemu: qemuBinaryFromRunner(runnerScript, o.system),
      workDir
    }).catch((err: unknown) => {
      throw new ValidationFailure('input', String((err as Error).message))
    })
    log.info(
      `accelerator: ${accel.accelerator} — ${accel.reason} (probe ${formatDuration(accel.probeMs)})`
    )
    report.acceleratorReason = accel.reason

    // boot
    const bootStart = Date.now()
    const boot = stageResult('boot', bootStart)
    log.stageStart('boot')
    let sshWait: Promise<SshSession> | undefined
    let sshReadyAt: number | undefined
    const sshDeadline = new Deadline(o.bootTimeoutMs + o.sshTimeoutMs)
    const startSshWait = (m: Machine): Promise<SshSession> => {
      const key = readFile(o.sshKey)
      const p = key.then((privateKey) =>
        waitForSsh(
          { host: '127.0.0.1', port: m.sshPort, user: o.sshUser, privateKey },
          {
            deadline: sshDeadline,
            signal: AbortSignal.any([sshAbort.signal, signal]),
            abortWhen: () =>
              m.fatal ??
              (m.running ? undefined : new ValidationFailure('qemu-exited', 'the VM stopped')),
            onAttempt: (n, d) => {
              log.debug(
                `ssh attempt ${n}: ${d.lastError ?? 'ok'} (banner ${d.bannerSeen ?? 'none'})`
              )
              if (n % 20 === 0)
                log.waiting(`ssh: attempt ${n}, banner ${d.bannerSeen ?? 'not seen yet'}`)
            }
          }
        )
      )
      p.then(
        (session) => (sshReadyAt = session.readyAt),
        () => undefined
      )
      return p
    }
    // Every start of the VM once the boot was retried (report.bootAttempts); empty until then.
    const attempts: BootAttempt[] = []
    let bootAccel = accel
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          machine = await startMachine(o, workDir, bootAccel, report, log)
          if (requested.has('ssh')) sshWait = startSshWait(machine)
          try {
            await machine.waitForBoot({
              deadline: new Deadline(o.bootTimeoutMs),
              silenceMs: o.silenceTimeoutMs,
              signal,
              alsoReady: sshWait,
              kvmWatchdogMs: o.accel === 'auto' ? KVM_WATCHDOG_MS : undefined
            })
          } catch (err) {
            if (!(err instanceof KvmStallError)) throw err
            // KVM passed the probe but this guest makes no progress under it: start over under TCG.
            log.warning(`${err.message}; restarting the guest under TCG`)
            sshAbort.abort()
            await machine.stop(0)
            sshAbort = new AbortController()
            report.acceleratorReason = `KVM probe passed but the guest printed nothing within ${formatDuration(KVM_WATCHDOG_MS)} under KVM; fell back to TCG`
            bootAccel = { ...accel, accelerator: 'tcg' }
            machine = await startMachine(o, workDir, bootAccel, report, log)
            if (requested.has('ssh')) sshWait = startSshWait(machine)
            await machine.waitForBoot({
              deadline: new Deadline(o.bootTimeoutMs),
              silenceMs: o.silenceTimeoutMs,
              signal,
              alsoReady: sshWait
            })
          }
          if (attempts.length > 0)
            attempts.push(bootAttempt(attempt, machine, t0, null, 'console.log'))
          break
        } catch (err) {
          const m = machine
          const retries = bootRetriesFor(o.bootRetries, m?.accelerator ?? bootAccel.accelerator)
          if (
            m === undefined ||
            !shouldRetryBoot({
              failure: err,
              userspaceSeen: m.console.userspaceAt !== undefined,
              retriesDone: attempt - 1,
              retries,
              cancelled: signal.aborted
            })
          ) {
            if (attempts.length > 0 && m !== undefined)
              attempts.push(
                bootAttempt(
                  attempt,
                  m,
                  t0,
                  attemptFailure(err, m, o.silenceTimeoutMs),
                  'console.log'
                )
              )
            throw err
          }
          // A silence before userspace (a transient emulator hang): this VM is stopped, its
          // console kept as its own artifact, and a fresh one boots on a fresh disk overlay.
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
              `restarting the guest on a fresh disk (retry ${attempt} of ${retries}, --boot-retries)`
          )
          await m.screenshot(join(o.outDir, `screenshot-attempt-${attempt}.png`))
          sshAbort.abort()
          await m.stop(0)
          sshAbort = new AbortController()
          await rename(join(o.outDir, 'console.log'), join(o.outDir, consoleLog)).catch(
            (e: unknown) => log.warning(`could not keep ${consoleLog}: ${String(e)}`)
          )
          attempts.push(record)
          report.bootAttempts = attempts
          sshDeadline.reset(o.bootTimeoutMs + o.sshTimeoutMs)
          sshWait = undefined
          machine = undefined
        }
      }
      // Booted when the console showed the login prompt, or SSH answered, whichever came first.
      const readyAt = Math.min(machine.readyAt ?? Infinity, sshReadyAt ?? Infinity, Date.now())
      report.timings.bootMs = readyAt - machine.startedAt
      boot.durationMs = Date.now() - bootStart
      boot.message =
        machine.readyAt !== undefined
          ? 'login prompt / multi-user target on the console'
          : 'SSH answered before the console showed a login prompt'
      log.stageEnd('boot', 'passed', boot.durationMs)
    } catch (err) {
      await failStage(boot, err, bootStart)
    }

    // ssh
    if (
      requested.has('ssh') &&
      report.failure === null &&
      machine !== undefined &&
      sshWait !== undefined
    ) {
      const sshStart = Date.now()
      const stage = stageResult('ssh', sshStart)
      log.stageStart('ssh')
      sshDeadline.reset(o.sshTimeoutMs)
      try {
        ssh = await sshWait
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
        stage.durationMs = Date.now() - sshStart
        log.stageEnd('ssh', 'passed', stage.durationMs)
      } catch (err) {
        await failStage(stage, err, sshStart)
      }
    }

    // check stages (issue 2): each runs its checks concurrently over the one connection, and the
    // stages themselves run at once (see AFTER_BOOT_END); NVV_CHECK_CONCURRENCY=1 runs them one
    // after another instead.
    const checkStages = o.stages.filter((n): n is CheckStageName => n !== 'boot' && n !== 'ssh')
    // The one wait per run for the end of the boot, for the system stage and the stages after it.
    let bootEndWait: Promise<ExecResult> | undefined
    const bootEnd = (session: SshSession, ms: number): Promise<ExecResult> =>
      (bootEndWait ??= waitForBootEnd({ ssh: session, signal }, ms))
    // The e2e scripts go over SFTP once per run, as soon as SSH works (see copyE2eScripts).
    let e2eCopying: Promise<E2eCopies> | undefined
    const e2eCopies = (session: SshSession): Promise<E2eCopies> =>
      (e2eCopying ??= copyE2eScripts({ ssh: session, signal }, checks.e2e))
    const runCheckStage = async (name: CheckStageName): Promise<void> => {
      if (report.failure !== null) return // listed as "not run: <stage> failed" at the end
      if (ssh === undefined || machine === undefined) {
        const skipped = stageResult(name, Date.now())
        skipped.status = 'skipped'
        skipped.message = 'not run: needs the ssh stage'
        return
      }
      const session = ssh
      const started = Date.now()
      const stage = stageResult(name, started)
      log.stageStart(name)
      const ctx: StageContext = {
        ssh: session,
        machine,
        settings: o,
        checks,
        report,
        signal,
        deadline: new Deadline(o.stageTimeoutMs),
        bootEnd: (ms) => bootEnd(session, ms),
        e2eCopies: () => e2eCopies(session)
      }
      try {
        const results = await CHECK_STAGES[name](ctx)
        stage.checks.push(...results)
        stage.durationMs = Date.now() - started
        const failed = results.filter((c) => c.status === 'failed')
        if (results.length > 0 && results.every((c) => c.status === 'skipped'))
          stage.status = 'skipped'
        if (failed.length > 0) {
          const first = failed[0]
          throw new ValidationFailure(
            'check-failed',
            `${failed.length} check${failed.length > 1 ? 's' : ''} failed: ${failed.map((c) => c.name).join(', ')}`,
            first.output,
            { check: first.name, file: first.file, line: first.line, unit: first.unit }
          )
        }
        log.stageEnd(name, stage.status, stage.durationMs)
      } catch (err) {
        await failStage(stage, err, started)
      }
    }
    if (CHECK_CONCURRENCY === 1 || ssh === undefined) {
      for (const name of checkStages) await runCheckStage(name)
    } else {
      const session = ssh
      const early = checkStages.filter((n) => !AFTER_BOOT_END.has(n))
      const later = checkStages.filter((n) => AFTER_BOOT_END.has(n))
      // The copies start with the early stages; a failed copy is reported by the e2e stage.
      if (later.includes('e2e') && checks.e2e.length > 0) e2eCopies(session).catch(() => undefined)
      const runs = early.map(runCheckStage)
      if (later.length > 0) {
        // They start once the system stage has judged the finished boot (a degraded boot skips
        // them), or without a system stage once the boot has ended.
        const system = early.indexOf('system')
        await (system >= 0
          ? runs[system]
          : bootEnd(
              session,
              Math.min(checks.system?.timeoutMs ?? DEFAULT_TIMEOUTS.system, o.stageTimeoutMs)
            ))
        runs.push(...later.map(runCheckStage))
      }
      await Promise.all(runs)
    }
  } catch (err) {
    // Failures outside a stage (bad checks file, accelerator choice) are input errors: no VM ran.
    const f = toFailure(err)
    report.failure = failureOf(report.stages.at(-1)?.name ?? 'setup', f)
    log.warning(`${f.kind}: ${f.message}`)
  } finally {
    clearTimeout(runTimer)
    o.signal?.removeEventListener('abort', onAbort)
    sshAbort.abort() // an SSH wait still running (the boot failed) must not outlive the run
    if (machine !== undefined) {
      const shot = await machine.screenshot(join(o.outDir, 'screenshot-final.png'))
      if (shot === undefined) log.debug('no final screenshot (no display or QEMU gone)')
      ssh?.close()
      // QMP quit, no ACPI power-off first: the disk is this run's own and is thrown away, and a
      // guest shutdown under emulation made every run wait 1.5 s more for nothing it reports.
      await machine.stop(0)
      const stderr = machine.stderrTail(200)
      if (stderr !== '') await writeFile(join(o.outDir, 'qemu-stderr.log'), stderr + '\n')
    }
    await rm(workDir, { recursive: true, force: true }).catch(() => undefined)
    addSkippedStages(report, o.stages)
    report.conclusion = report.failure === null ? 'success' : 'failure'
    // A retried boot never passes silently: the report says the leg was flaky.
    if (report.bootAttempts !== undefined) report.flaky = report.conclusion === 'success'
    report.timings.totalMs = Date.now() - t0
    await writeArtifacts(o.outDir, report)
  }
  return report
}

async function startMachine(
  o: ValidateOptions,
  workDir: string,
  accel: AccelDecision,
  report: Report,
  log: ValidateOptions['logger']
): Promise<Machine> {
  const machine = new Machine({
    runner: o.runner,
    system: o.system,
    accelerator: accel.accelerator,
    workDir,
    consoleLog: join(o.outDir, 'console.log'),
    guestSshPort: o.guestSshPort,
    cpu: o.cpu,
    env: o.env,
    logger: log
  })
  await machine.start()
  report.accelerator = machine.accelerator
  report.timings.preflightMs = machine.startedAt - (o.startedAt ?? machine.startedAt)
  if (machine.pid !== undefined) o.onStarted?.({ pid: machine.pid, workDir })
  log.info(
    `started ${o.runner} (pid ${machine.pid ?? '?'}, ${machine.accelerator}, ssh forward 127.0.0.1:${machine.sshPort})`
  )
  return machine
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

function stageOrder(name: string): number {
  const i = (STAGES as readonly string[]).indexOf(name)
  return i < 0 ? STAGES.length : i
}

/** Every requested stage appears in the report: those that never started as skipped, with why. */
function addSkippedStages(report: Report, requested: StageName[]): void {
  const present = new Set(report.stages.map((s) => s.name))
  const why = report.failure !== null ? `not run: ${report.failure.stage} failed` : 'not run'
  for (const name of requested) {
    if (present.has(name)) continue
    report.stages.push({ name, status: 'skipped', durationMs: 0, checks: [], message: why })
  }
  report.stages.sort((a, b) => stageOrder(a.name) - stageOrder(b.name))
}

function failureOf(stage: string, f: ValidationFailure): Failure {
  const d = f.details as { check?: string; file?: string; line?: number }
  return {
    stage,
    kind: f.kind,
    message: f.message,
    excerpt: f.excerpt,
    ...(d.check !== undefined ? { check: d.check } : {}),
    ...(d.file !== undefined ? { file: d.file } : {}),
    ...(d.line !== undefined ? { line: d.line } : {})
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
  if (ssh === undefined || ssh.closed) return
  const journal = await ssh.exec(
    'journalctl -b --no-pager -o short-monotonic 2>&1 | tail -n 20000',
    60_000
  )
  if (journal.stdout !== '') await writeFile(join(outDir, 'journal.txt'), journal.stdout)
  const unit = (f.details as { unit?: string }).unit
  if (unit !== undefined) {
    const own = await ssh.exec(
      `journalctl -b --no-pager -u ${shellQuote(unit)} 2>&1 | tail -n 500`,
      30_000
    )
    await writeFile(join(outDir, `journal-${unit.replace(/[^\w.@-]/g, '_')}.txt`), own.stdout)
  }
}

async function prepareOutDir(outDir: string): Promise<void> {
  await mkdir(outDir, { recursive: true })
  for (const name of await readdir(outDir)) {
    if (ARTIFACT_PATTERN.test(name)) await rm(join(outDir, name), { force: true })
  }
}

/** report.json, junit.xml and summary.md: written on every path, from the one report model. */
export async function writeArtifacts(outDir: string, report: Report): Promise<void> {
  await mkdir(outDir, { recursive: true })
  const present = (await readdir(outDir)).filter((n) => ARTIFACT_PATTERN.test(n))
  report.artifacts = [...new Set([...present, 'report.json', 'junit.xml', 'summary.md'])].sort()
  await writeFile(join(outDir, 'report.json'), JSON.stringify(report, null, 2) + '\n')
  await writeFile(join(outDir, 'junit.xml'), renderJunit(report))
  await writeFile(join(outDir, 'summary.md'), renderSummary(report))
}
