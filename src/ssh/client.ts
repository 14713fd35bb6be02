import { StringDecoder } from 'node:string_decoder'
import { Client, type ClientChannel, type ConnectConfig, type SFTPWrapper } from 'ssh2'
import { ValidationFailure } from '../util/errors.js'
import { formatDuration } from '../util/duration.js'
import type { Deadline } from '../util/time.js'

export interface SshTarget {
  host: string
  port: number
  user: string
  privateKey: Buffer
}

export interface SshWaitOptions {
  deadline: Deadline
  /** Handshake + auth budget of one attempt (TCG guests are slow at key exchange); default 60 s. */
  attemptTimeoutMs?: number
  /**
   * How long one attempt waits for the SSH banner. QEMU's user-mode forwarder accepts the TCP
   * connection at once and then holds it while the guest has no listener, so a fresh attempt
   * after a while finds sshd sooner than one old attempt. Default 15 s: a slow emulated sshd can
   * take seconds to send its banner.
   */
  bannerTimeoutMs?: number
  /** Attempts in flight at once; default 4 (below sshd's MaxStartups). */
  maxParallel?: number
  signal?: AbortSignal
  /** Rejects when waiting is pointless (QEMU gone, guest panicked). */
  abortWhen?: () => Error | undefined
  onAttempt?: (attempt: number, diag: SshDiagnostics) => void
  /** Auth rejections tolerated before ssh-auth (keys can land shortly after sshd starts). */
  authRetries?: number
}

/** What the attempts saw: tells "nothing listens" from "sshd answers but refuses us". */
export interface SshDiagnostics {
  attempts: number
  tcpConnected: number
  bannerSeen: string | undefined
  authRejected: number
  lastError: string | undefined
}

export interface ExecResult {
  command: string
  code: number | null
  signal: string | undefined
  stdout: string
  stderr: string
  durationMs: number
  timedOut: boolean
}

/**
 * Pacing of the attempts. QEMU's user-mode forwarder accepts every TCP connection at once; what
 * happens next tells the guest's state:
 * - before the guest has an address, the connection hangs: its SYN is lost and QEMU's TCP resends
 *   it seconds later. One attempt at a time, dropped after a short banner wait (growing, in case
 *   sshd is merely slow) and replaced at once, reaches sshd within that wait of the guest's network
 *   coming up. More attempts at once measured slower, not faster (`npm run bench`, A): their
 *   delayed SYNs all land on sshd as it starts, and every one costs the guest a fork and re-exec;
 * - once the guest's kernel answers, a closed port resets the connection within a second: cheap
 *   for the guest, so a new attempt every 200 ms finds sshd right after it listens;
 * - an attempt that sshd accepted costs the guest a fork and re-exec: under slow emulation, many
 *   short attempts would keep sshd too busy to answer, so then one a second, with a long wait.
 */
export function attemptPacing(
  attempt: number,
  state: { networkSeen: boolean; lastEndedFast: boolean },
  bannerTimeoutMs = 15_000,
  maxParallel = 4
): { intervalMs: number; bannerTimeoutMs: number; maxLive: number } {
  if (!state.networkSeen) {
    return {
      intervalMs: 100,
      bannerTimeoutMs: Math.min(bannerTimeoutMs, 1200 + 50 * attempt),
      maxLive: 1
    }
  }
  return { intervalMs: state.lastEndedFast ? 200 : 1000, bannerTimeoutMs, maxLive: maxParallel }
}

class AttemptError extends Error {
  constructor(
    message: string,
    readonly auth: boolean
  ) {
    super(message)
  }
}

interface Attempt {
  promise: Promise<Client>
  cancel: () => void
}

function attempt(
  target: SshTarget,
  timeoutMs: number,
  bannerTimeoutMs: number,
  diag: SshDiagnostics
): Attempt {
  const client = new Client()
  let cancel: () => void = () => undefined
  const promise = new Promise<Client>((resolve, reject) => {
    let settled = false
    let banner = false
    const settle = (err?: Error): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      clearTimeout(bannerTimer)
      if (err === undefined) {
        resolve(client)
        return
      }
      client.removeAllListeners('ready')
      client.on('error', () => undefined)
      client.end()
      client.destroy()
      reject(err)
    }
    cancel = () => settle(new AttemptError('cancelled', false))
    const timer = setTimeout(
      () => settle(new AttemptError(`no SSH session within ${formatDuration(timeoutMs)}`, false)),
      timeoutMs
    )
    const bannerTimer = setTimeout(() => {
      if (!banner)
        settle(new AttemptError(`no SSH banner within ${formatDuration(bannerTimeoutMs)}`, false))
    }, bannerTimeoutMs)
    const config: ConnectConfig = {
      host: target.host,
      port: target.port,
      username: target.user,
      privateKey: target.privateKey,
      readyTimeout: timeoutMs,
      keepaliveInterval: 10_000,
      keepaliveCountMax: 6,
      // The guest's host key is new on every build; the loopback forward is ours.
      hostVerifier: () => true,
      debug: (line: string) => {
        const m = /Remote ident: '([^']*)'/.exec(line)
        if (m !== null) {
          diag.bannerSeen = m[1]
          banner = true
        }
      }
    }
    client.on('ready', () => settle())
    client.on('error', (err: Error & { level?: string }) => {
      settle(new AttemptError(err.message, err.level === 'client-authentication'))
    })
    client.on('close', () =>
      settle(new AttemptError('connection closed before the SSH session was ready', false))
    )
    client.connect(config)
    // ssh2 creates the socket synchronously in connect(); count TCP-level success.
    const sock = (client as unknown as { _sock?: { once: (e: string, f: () => void) => void } })
      ._sock
    sock?.once('connect', () => diag.tcpConnected++)
  })
  return { promise, cancel }
}

/** What the wait for SSH knows between attempts. */
interface WaitState {
  diag: SshDiagnostics
  live: Set<Attempt>
  won?: Client
  authFailure?: ValidationFailure
  /** Ends the current nap early (an attempt settled). */
  wake: () => void
  nextLaunch: number
  lastEndedFast: boolean
  networkSeen: boolean
}

/**
 * Waits until an SSH session is established, with a clock deadline and per-attempt timeouts.
 * Attempts overlap: QEMU's user-mode forwarder accepts every TCP connection at once and then holds
 * it silently until the guest answers, so a single attempt would sit in a dead connection while
 * sshd comes up. The first attempt that authenticates wins; the others are closed.
 * Fails as `ssh-auth` when sshd answers but rejects the key, else `ssh-unreachable`.
 */
export async function waitForSsh(target: SshTarget, o: SshWaitOptions): Promise<SshSession> {
  const st: WaitState = {
    diag: {
      attempts: 0,
      tcpConnected: 0,
      bannerSeen: undefined,
      authRejected: 0,
      lastError: undefined
    },
    live: new Set<Attempt>(),
    wake: () => undefined,
    nextLaunch: 0,
    lastEndedFast: false,
    networkSeen: false
  }
  try {
    for (;;) {
      if (st.won !== undefined) return new SshSession(st.won, target)
      if (st.authFailure !== undefined) throw st.authFailure
      const stop = o.abortWhen?.()
      if (stop !== undefined) throw stop
      if (o.signal?.aborted)
        throw new ValidationFailure('cancelled', 'cancelled while waiting for SSH')
      if (o.deadline.expired()) throw unreachable(target, st.diag)
      const pace = attemptPacing(
        st.diag.attempts + 1,
        { networkSeen: st.networkSeen, lastEndedFast: st.lastEndedFast },
        o.bannerTimeoutMs,
        o.maxParallel ?? 4
      )
      if (st.live.size < pace.maxLive && Date.now() >= st.nextLaunch) launch(target, o, st, pace)
      await nap(st, o)
    }
  } finally {
    for (const a of st.live) a.cancel()
    st.live.clear()
  }
}

/** Starts one attempt; its outcome updates `st` and wakes the wait. */
function launch(
  target: SshTarget,
  o: SshWaitOptions,
  st: WaitState,
  pace: { intervalMs: number; bannerTimeoutMs: number }
): void {
  st.diag.attempts++
  const perAttempt = Math.max(1000, Math.min(o.attemptTimeoutMs ?? 60_000, o.deadline.remaining()))
  const a = attempt(target, perAttempt, pace.bannerTimeoutMs, st.diag)
  st.live.add(a)
  const launchedAt = Date.now()
  st.nextLaunch = launchedAt + pace.intervalMs
  a.promise.then(
    (client) => {
      st.live.delete(a)
      if (st.won === undefined) st.won = client
      else client.end()
      st.wake()
    },
    (err: AttemptError) => {
      st.live.delete(a)
      attemptFailed(target, o, st, err, launchedAt)
      o.onAttempt?.(st.diag.attempts, st.diag)
      st.wake()
    }
  )
}

function attemptFailed(
  target: SshTarget,
  o: SshWaitOptions,
  st: WaitState,
  err: AttemptError,
  launchedAt: number
): void {
  const diag = st.diag
  // A reset within a second: the guest's kernel answered, nothing listens yet.
  st.lastEndedFast = Date.now() - launchedAt < 1000 && !err.auth
  if (st.lastEndedFast || diag.bannerSeen !== undefined) st.networkSeen = true
  if (st.lastEndedFast) st.nextLaunch = Math.min(st.nextLaunch, Date.now() + 200)
  if (err.message !== 'cancelled') diag.lastError = err.message
  if (!err.auth) return
  diag.authRejected++
  if (diag.authRejected > (o.authRetries ?? 3)) {
    st.authFailure = new ValidationFailure(
      'ssh-auth',
      `sshd on the guest answered (${diag.bannerSeen ?? 'banner seen'}) but rejected user "${target.user}" with the given key ${diag.authRejected} times`,
      diagnosticsText(target, diag),
      { ...diag }
    )
  }
}

/** Waits until the next launch is due (at most 500 ms), an attempt settles, or the run aborts. */
function nap(st: WaitState, o: SshWaitOptions): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(t)
      o.signal?.removeEventListener('abort', done)
      resolve()
    }
    const t = setTimeout(
      done,
      Math.max(10, Math.min(st.nextLaunch - Date.now(), o.deadline.remaining(), 500))
    )
    st.wake = done
    o.signal?.addEventListener('abort', done, { once: true })
  })
}

function diagnosticsText(target: SshTarget, d: SshDiagnostics): string {
  return [
    `target: ${target.user}@${target.host}:${target.port} (QEMU user-net forward to the guest)`,
    `attempts: ${d.attempts}; TCP connections accepted: ${d.tcpConnected}`,
    `SSH banner seen: ${d.bannerSeen ?? 'never'}`,
    `authentication rejections: ${d.authRejected}`,
    `last error: ${d.lastError ?? 'none'}`
  ].join('\n')
}

function unreachable(target: SshTarget, d: SshDiagnostics): ValidationFailure {
  const why =
    d.bannerSeen !== undefined
      ? `sshd answered (${d.bannerSeen}) but no session could be set up`
      : d.tcpConnected > 0
        ? 'QEMU accepted the forwarded TCP connections but no SSH banner came back: nothing answered on the guest port (sshd not running or not started yet, wrong port, or firewall)'
        : 'no TCP connection to the forwarded port could be made'
  return new ValidationFailure(
    'ssh-unreachable',
    `SSH did not become reachable after ${d.attempts} attempts: ${why}`,
    diagnosticsText(target, d),
    { ...d }
  )
}

/** One SSH connection; commands run concurrently on their own channels, each with a timeout. */
export class SshSession {
  private sftpClient: Promise<SFTPWrapper> | undefined
  closed = false
  /** When the session was authenticated. */
  readonly readyAt = Date.now()

  constructor(
    private readonly client: Client,
    readonly target: SshTarget
  ) {
    client.on('close', () => (this.closed = true))
    client.on('error', () => undefined)
  }

  /**
   * Channels open at once. sshd refuses more than MaxSessions (default 10) per connection, and SFTP
   * keeps one open: commands beyond this wait for a free channel, so any number of checks may call
   * `exec` at the same time.
   */
  static readonly MAX_CHANNELS = 8
  private active = 0
  private readonly waiting: (() => void)[] = []

  private async acquire(): Promise<void> {
    if (this.active < SshSession.MAX_CHANNELS) {
      this.active++
      return
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve))
  }

  private release(): void {
    const next = this.waiting.shift()
    if (next !== undefined) next()
    else this.active--
  }

  /** Runs `command` on its own channel; `timeoutMs` includes any wait for a free channel. */
  async exec(command: string, timeoutMs: number, stdin?: string): Promise<ExecResult> {
    const started = Date.now()
    await this.acquire()
    try {
      return await this.execNow(command, started, timeoutMs - (Date.now() - started), stdin)
    } finally {
      this.release()
    }
  }

  private execNow(
    command: string,
    started: number,
    timeoutMs: number,
    stdin?: string
  ): Promise<ExecResult> {
    return new Promise((resolve) => {
      let stdout = ''
      let stderr = ''
      let timedOut = false
      let settled = false
      let channel: ClientChannel | undefined
      const finish = (code: number | null, signal: string | undefined): void => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        resolve({
          command,
          code,
          signal,
          stdout,
          stderr,
          durationMs: Date.now() - started,
          timedOut
        })
      }
      const timer = setTimeout(
        () => {
          timedOut = true
          try {
            channel?.signal('KILL')
          } catch {
            // channel may already be gone
          }
          channel?.close()
          finish(null, 'timeout')
        },
        Math.max(0, timeoutMs)
      )
      if (timeoutMs <= 0) {
        // The whole budget went waiting for a channel.
        timedOut = true
        finish(null, 'timeout')
        return
      }
      if (this.closed) {
        stderr = 'SSH connection is closed'
        finish(null, 'closed')
        return
      }
      this.client.exec(command, (err, ch) => {
        if (err !== undefined && err !== null) {
          stderr = `cannot open an SSH channel: ${err.message}`
          finish(null, 'channel')
          return
        }
        channel = ch
        // One decoder per stream: a UTF-8 character split across two packets stays one character
        // (decoding each chunk alone turned it into U+FFFD, and `expect:` missed).
        const outText = new StringDecoder('utf8')
        const errText = new StringDecoder('utf8')
        ch.on('data', (d: Buffer) => (stdout = capped(stdout + outText.write(d))))
        ch.stderr.on('data', (d: Buffer) => (stderr = capped(stderr + errText.write(d))))
        ch.on('exit', (code: number | null, signal?: string) => {
          if (typeof code === 'number') this.lastExit.set(ch, code)
          if (signal !== undefined) this.lastSignal.set(ch, signal)
        })
        ch.on('close', () => {
          stdout = capped(stdout + outText.end())
          stderr = capped(stderr + errText.end())
          finish(this.lastExit.get(ch) ?? null, this.lastSignal.get(ch))
        })
        if (stdin !== undefined) ch.end(stdin)
        else ch.end()
      })
    })
  }

  private readonly lastExit = new WeakMap<ClientChannel, number>()
  private readonly lastSignal = new WeakMap<ClientChannel, string>()

  private sftp(): Promise<SFTPWrapper> {
    this.sftpClient ??= new Promise((resolve, reject) =>
      this.client.sftp((err, sftp) => (err ? reject(err) : resolve(sftp)))
    )
    return this.sftpClient
  }

  /** Copies a file into the guest over SFTP. */
  async putFile(localPath: string, remotePath: string, mode = 0o755): Promise<void> {
    const sftp = await this.sftp()
    await new Promise<void>((resolve, reject) =>
      sftp.fastPut(localPath, remotePath, { mode }, (err) => (err ? reject(err) : resolve()))
    )
  }

  close(): void {
    this.closed = true
    this.client.end()
  }
}

const MAX_OUTPUT = 1024 * 1024
function capped(s: string): string {
  return s.length > MAX_OUTPUT ? s.slice(-MAX_OUTPUT) : s
}

/** Quotes a word for a POSIX shell on the guest. */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`
}
