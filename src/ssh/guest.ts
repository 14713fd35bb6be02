import { formatDuration } from '../util/duration.js'
import { Deadline, sleep } from '../util/time.js'
import { shellQuote, type ExecResult, type SshSession } from './client.js'

/**
 * The guest as the stages see it, in the spirit of the NixOS test driver's Machine: verbs over the
 * one SSH session (run, succeed, asUser, systemctlShow, journal, waitUntil), each bounded by a
 * timeout and the run's abort signal. The command strings are built by the exported functions
 * below, so tests can check exactly what reaches the guest.
 */
export class Guest {
  /**
   * `sshUser`: the SSH login user (running as another user goes through runuser/su as root, or
   * sudo). `login`: set by asUser — every command then runs in that user's login shell.
   */
  constructor(
    readonly session: Pick<SshSession, 'exec' | 'putFile' | 'closed'>,
    readonly signal: AbortSignal,
    readonly sshUser: string,
    private readonly login?: { user: string | undefined }
  ) {}

  get closed(): boolean {
    return this.session.closed
  }

  /** The command as this guest sends it (wrapped in the user's login shell after asUser). */
  command(command: string): string {
    return this.login === undefined
      ? command
      : asUserCommand(command, this.login.user, this.sshUser)
  }

  /**
   * Runs a command, bounded by `timeoutMs` and the run's abort signal (an aborted command is left
   * to die with the connection at teardown).
   */
  async run(command: string, o: { timeoutMs: number }): Promise<ExecResult> {
    const sent = this.command(command)
    if (this.signal.aborted) return aborted(sent)
    let onAbort: () => void = () => undefined
    const abort = new Promise<ExecResult>((resolve) => {
      onAbort = () => resolve(aborted(sent))
      this.signal.addEventListener('abort', onAbort, { once: true })
    })
    try {
      return await Promise.race([this.session.exec(sent, Math.max(1, o.timeoutMs)), abort])
    } finally {
      this.signal.removeEventListener('abort', onAbort)
    }
  }

  /** Runs a command that must succeed: its stdout, else an error with how it ended and its output. */
  async succeed(command: string, o: { timeoutMs: number }): Promise<string> {
    const r = await this.run(command, o)
    if (r.code === 0) return r.stdout
    throw new Error(`${command}: ${describeExit(r, o.timeoutMs)}\n${combined(r)}`.trimEnd())
  }

  /**
   * The same guest, every command in a login shell of `user` (the user's PATH: NixOS per-user
   * profiles, Home Manager) from the user's home; undefined: a login shell of the SSH user.
   */
  asUser(user: string | undefined): Guest {
    return new Guest(this.session, this.signal, this.sshUser, { user })
  }

  /** `systemctl show -p …` of system units, or of one user's units, with the manager's state. */
  async systemctlShow(
    units: string[],
    props: string[],
    o: { user?: string; timeoutMs: number }
  ): Promise<{ result: ExecResult; states: Map<string, Record<string, string>> }> {
    const result = await this.run(systemctlShowCommand(units, props, o.user, this.sshUser), o)
    return { result, states: parseUnitStates(units, result.stdout) }
  }

  /** Lines of this boot's journal (stdout and stderr of journalctl). */
  async journal(q: JournalQuery, o: { timeoutMs: number }): Promise<string> {
    return combined(await this.run(journalCommand(q), o))
  }

  /**
   * Repeats `attempt` until it says done; attempts get what is left of `deadline`. At the deadline
   * (or when the run is cancelled) throws WaitTimeout carrying the last attempt's value and output.
   */
  async waitUntil<T>(
    attempt: (remainingMs: number) => Promise<Attempt<T>>,
    deadline: Deadline,
    intervalMs = 1000
  ): Promise<T> {
    for (;;) {
      const r = await attempt(deadline.remaining())
      if (r.done) return r.value
      if (deadline.expired() || this.signal.aborted) throw new WaitTimeout(r)
      await sleep(Math.min(intervalMs, deadline.remaining()), this.signal)
      if (deadline.expired() || this.signal.aborted) throw new WaitTimeout(r)
    }
  }

  /** Copies a host file into the guest over SFTP. */
  putFile(localPath: string, remotePath: string, mode = 0o755): Promise<void> {
    return this.session.putFile(localPath, remotePath, mode)
  }
}

/** One attempt of waitUntil: done or not, what it found, and what the guest said. */
export interface Attempt<T> {
  done: boolean
  value: T
  output?: string
}

/** waitUntil ran out of time (or the run was cancelled); `last` is the last attempt's value. */
export class WaitTimeout<T> extends Error {
  readonly last: T
  constructor(attempt: Attempt<T>) {
    super(`still not done when the time ran out; last attempt:\n${attempt.output ?? ''}`.trimEnd())
    this.last = attempt.value
  }
}

/** For `.catch`: the last attempt's value of a WaitTimeout (a stage judges it), else rethrows. */
export function lastAttempt<T>(err: unknown): T {
  if (err instanceof WaitTimeout) return err.last as T
  throw err
}

function aborted(command: string): ExecResult {
  return {
    command,
    code: null,
    signal: 'cancelled',
    stdout: '',
    stderr: 'cancelled',
    durationMs: 0,
    timedOut: false
  }
}

/**
 * `command` as `user`, in a login shell from the user's home. As root: runuser (util-linux, also
 * on NixOS), else su; as another SSH user: sudo -n. Without `user`, or as the SSH user itself: a
 * login shell of the SSH user.
 */
export function asUserCommand(command: string, user: string | undefined, sshUser: string): string {
  const body = shellQuote(`cd "$HOME" 2>/dev/null || cd /\n${command}`)
  if (user === undefined || user === sshUser) return `sh -lc ${body}`
  const u = shellQuote(user)
  if (sshUser !== 'root') return `sudo -n -H -u ${u} -- sh -lc ${body}`
  return `if command -v runuser >/dev/null 2>&1; then exec runuser -u ${u} -- sh -lc ${body}; else exec su -s /bin/sh ${u} -c ${shellQuote(`exec sh -lc ${body}`)}; fi`
}

/**
 * The guest command behind systemctlShow: one `systemctl show` for system units, followed by the
 * manager's state as `SystemState=`. A user's units: the user manager runs only while the user
 * has a session (or lingers), so it is started as a login would, then asked over its private
 * socket (no D-Bus user session needed).
 */
export function systemctlShowCommand(
  units: string[],
  props: string[],
  user: string | undefined,
  sshUser: string
): string {
  const p = props.map((x) => `-p ${x}`).join(' ')
  const u = units.map(shellQuote).join(' ')
  if (user === undefined)
    return `systemctl show ${p} ${u}; echo "SystemState=$(systemctl is-system-running 2>/dev/null)"`
  const q = shellQuote(user)
  return [
    `uid=$(id -u ${q}) || exit 3`,
    `systemctl start "user@$uid.service" >/dev/null 2>&1 || true`,
    asUserCommand(
      `XDG_RUNTIME_DIR=/run/user/$(id -u); export XDG_RUNTIME_DIR; systemctl --user show ${p} ${u}; echo "SystemState=$(systemctl --user is-system-running 2>/dev/null)"`,
      user,
      sshUser
    )
  ].join('\n')
}

/** KEY=VALUE lines of `systemctl show -p …` (plus SystemState=) into a record. */
export function parseUnitState(text: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const line of text.split('\n')) {
    const m = /^(\w+)=(.*)$/.exec(line.trim())
    if (m !== null) out[m[1]] = m[2]
  }
  return out
}

/**
 * systemctlShowCommand's output, by unit. One unit: all its lines. Several: blocks come in
 * argument order (an alias such as sshd.service answers for its unit, so order, not Id, says
 * whose block it is); a count that does not match gives an empty map (ask one by one instead).
 */
export function parseUnitStates(
  units: string[],
  text: string
): Map<string, Record<string, string>> {
  if (units.length === 1) return new Map([[units[0], parseUnitState(text)]])
  const system = /^SystemState=(.*)$/m.exec(text)?.[1]
  const blocks = text
    .replace(/^SystemState=.*$/m, '')
    .split(/\n\s*\n/)
    .map((b) => b.trim())
    .filter((b) => b !== '')
  const out = new Map<string, Record<string, string>>()
  if (blocks.length !== units.length) return out
  units.forEach((u, i) => {
    const state = parseUnitState(blocks[i])
    if (system !== undefined) state.SystemState = system
    out.set(u, state)
  })
  return out
}

/** Journal lines shown per unit by default. */
export const JOURNAL_LINES = 20

/**
 * What journal() reads of this boot: a unit's (`user`: that user's unit) or everything; the last
 * `lines` (journalctl -n) or the last `tail` lines of the whole output; short-monotonic unless
 * `monotonic` is false.
 */
export interface JournalQuery {
  unit?: string
  user?: string
  lines?: number
  tail?: number
  monotonic?: boolean
}

export function journalCommand(q: JournalQuery): string {
  const who =
    q.unit === undefined
      ? ''
      : q.user === undefined
        ? ` -u ${shellQuote(q.unit)}`
        : ` --user-unit ${shellQuote(q.unit)} _UID=$(id -u ${shellQuote(q.user)})`
  const format = q.monotonic === false ? '' : ' -o short-monotonic'
  if (q.tail !== undefined)
    return `journalctl -b --no-pager${who}${format} 2>&1 | tail -n ${q.tail}`
  return `journalctl -b${who} -n ${q.lines ?? JOURNAL_LINES} --no-pager${format} 2>&1`
}

/** "exit 1" / "timed out after 30s" / "killed by SIGKILL": how a command ended. */
export function describeExit(r: ExecResult, timeoutMs?: number): string {
  if (r.timedOut) return `timed out after ${formatDuration(timeoutMs ?? r.durationMs)}`
  if (r.signal === 'cancelled') return 'cancelled'
  if (r.signal === 'closed' || r.signal === 'channel')
    return r.stderr.trim() || 'SSH channel failed'
  if (r.code === null)
    return r.signal !== undefined ? `killed by SIG${r.signal}` : 'ended without an exit status'
  return `exit ${r.code}${r.code === 127 ? ' (command not found)' : r.code === 126 ? ' (not executable)' : ''}`
}

/** stdout then stderr, each trimmed, for a check's output. */
export function combined(r: ExecResult): string {
  return [r.stdout.trimEnd(), r.stderr.trimEnd()].filter((s) => s !== '').join('\n')
}
