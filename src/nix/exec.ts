import { spawn } from 'node:child_process'
import { ValidationFailure } from '../util/errors.js'
import type { Logger } from '../util/log.js'

/**
 * One process to run, as data: argv (never a shell string), optional stdin. Plans are lists of
 * these, so they can be unit-tested exactly and printed by --dry-run.
 */
export interface Command {
  argv: string[]
  /** Written to stdin (file contents for `install /dev/stdin`, `tee`). */
  input?: string
  /** Added to the inherited environment. */
  env?: Record<string, string>
  /** What it is for: the log line and the dry-run plan. */
  why: string
  /** A failure is logged and the setup goes on (e.g. udev in a container). */
  optional?: boolean
  /** Values never shown (tokens): replaced by *** wherever the command is printed. */
  secrets?: string[]
}

export interface ExecResult {
  code: number | null
  signal: NodeJS.Signals | null
  /** Output, capped to its last MAX_CAPTURE bytes (a build log can be large). */
  stdout: string
  stderr: string
  durationMs: number
}

export interface ExecOptions {
  /** Each complete output line, as it arrives. */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void
  signal?: AbortSignal
  timeoutMs?: number
  cwd?: string
}

/** Runs commands. The real one spawns processes; tests pass a recorder. */
export interface Executor {
  run(cmd: Command, opts?: ExecOptions): Promise<ExecResult>
}

const MAX_CAPTURE = 512 * 1024
const KILL_GRACE_MS = 5_000

/** Prefixes `sudo -n` unless we are root already (act containers run as root and have no sudo). */
export function asRoot(argv: string[], uid: number): string[] {
  return uid === 0 ? argv : ['sudo', '-n', ...argv]
}

/** `install -D -m MODE /dev/stdin PATH`: writes a whole file from stdin, creating parent dirs. */
export function writeFileCommand(
  path: string,
  content: string,
  o: { mode: string; uid: number; privileged: boolean; why: string; secrets?: string[] }
): Command {
  const argv = ['install', '-D', '-m', o.mode, '/dev/stdin', path]
  return {
    argv: o.privileged ? asRoot(argv, o.uid) : argv,
    input: content,
    why: o.why,
    ...(o.secrets !== undefined && o.secrets.length > 0 ? { secrets: o.secrets } : {})
  }
}

export function redact(text: string, secrets: readonly string[] = []): string {
  let out = text
  for (const s of secrets) if (s !== '') out = out.split(s).join('***')
  return out
}

function shellQuote(arg: string): string {
  if (/^[\w@%+=:,./-]+$/.test(arg)) return arg
  return `'${arg.replace(/'/g, `'\\''`)}'`
}

/** How a command reads in a log or a plan: quoted argv, secrets redacted, stdin summarised. */
export function renderCommand(cmd: Command): string {
  const line = cmd.argv.map(shellQuote).join(' ')
  const stdin =
    cmd.input !== undefined
      ? ` <<< (${cmd.input.split('\n').filter(Boolean).length} lines on stdin)`
      : ''
  const env = Object.keys(cmd.env ?? {})
    .map((k) => `${k}=*** `)
    .join('')
  return redact(env + line + stdin, cmd.secrets)
}

/** Keeps the last `max` characters of what is appended. */
class Tail {
  private text = ''
  constructor(private readonly max: number) {}
  push(s: string): void {
    this.text += s
    if (this.text.length > 2 * this.max) this.text = this.text.slice(-this.max)
  }
  toString(): string {
    return this.text.length > this.max ? this.text.slice(-this.max) : this.text
  }
}

/**
 * Spawns with an argument array in its own process group, so a timeout or an abort stops the
 * whole tree (nix build runs builders as children): SIGTERM, then SIGKILL after a grace period.
 */
export function spawnExecutor(baseEnv: NodeJS.ProcessEnv = process.env): Executor {
  return {
    run(cmd, opts = {}) {
      return new Promise((resolve, reject) => {
        const started = Date.now()
        const [file, ...args] = cmd.argv
        const child = spawn(file, args, {
          cwd: opts.cwd,
          env: { ...baseEnv, ...cmd.env },
          stdio: [cmd.input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'],
          detached: true
        })
        const out = { stdout: new Tail(MAX_CAPTURE), stderr: new Tail(MAX_CAPTURE) }
        const partial = { stdout: '', stderr: '' }
        let killTimer: NodeJS.Timeout | undefined
        const stop = (): void => {
          if (child.pid === undefined || child.exitCode !== null) return
          const kill = (sig: NodeJS.Signals): void => {
            try {
              process.kill(-(child.pid as number), sig)
            } catch {
              child.kill(sig)
            }
          }
          kill('SIGTERM')
          killTimer = setTimeout(() => kill('SIGKILL'), KILL_GRACE_MS)
          killTimer.unref()
        }
        const timer = opts.timeoutMs !== undefined ? setTimeout(stop, opts.timeoutMs) : undefined
        opts.signal?.addEventListener('abort', stop, { once: true })
        if (opts.signal?.aborted === true) stop()
        for (const stream of ['stdout', 'stderr'] as const) {
          const pipe = child[stream]
          if (pipe === null) continue
          pipe.setEncoding('utf8')
          pipe.on('data', (chunk: string) => {
            out[stream].push(chunk)
            if (opts.onLine === undefined) return
            const lines = (partial[stream] + chunk).split('\n')
            partial[stream] = lines.pop() ?? ''
            for (const l of lines) opts.onLine(l.replace(/\r$/, ''), stream)
          })
        }
        if (cmd.input !== undefined && child.stdin !== null) {
          child.stdin.on('error', () => undefined) // the process may exit without reading
          child.stdin.end(cmd.input)
        }
        child.on('error', (err) => {
          clearTimeout(timer)
          opts.signal?.removeEventListener('abort', stop)
          reject(new Error(`cannot run ${file}: ${err.message}`))
        })
        child.on('close', (code, signal) => {
          clearTimeout(timer)
          clearTimeout(killTimer)
          opts.signal?.removeEventListener('abort', stop)
          for (const stream of ['stdout', 'stderr'] as const) {
            if (partial[stream] !== '') opts.onLine?.(partial[stream], stream)
          }
          resolve({
            code,
            signal,
            stdout: out.stdout.toString(),
            stderr: out.stderr.toString(),
            durationMs: Date.now() - started
          })
        })
      })
    }
  }
}

/** The last non-empty lines of a command's output, for error messages. */
export function lastLines(text: string, n: number): string {
  return text
    .split('\n')
    .map((l) => l.trimEnd())
    .filter(Boolean)
    .slice(-n)
    .join('\n')
}

/** Runs the commands in order; a failed required command stops with the output tail. */
export async function runCommands(
  commands: Command[],
  exec: Executor,
  log: Logger,
  signal?: AbortSignal
): Promise<string[]> {
  const warnings: string[] = []
  for (const cmd of commands) {
    log.info(`${cmd.why}: ${renderCommand(cmd)}`)
    const r = await exec
      .run(cmd, { signal, onLine: (line) => log.debug(line) })
      .catch((err: unknown) => ({
        code: -1,
        signal: null,
        stdout: '',
        stderr: (err as Error).message,
        durationMs: 0
      }))
    if (r.code === 0) continue
    const tail = lastLines(r.stderr + '\n' + r.stdout, 20)
    const message = `${cmd.why} failed (${r.signal ?? `exit ${r.code}`}): ${renderCommand(cmd)}`
    if (cmd.optional === true) {
      warnings.push(`${message}: ${lastLines(tail, 1)}`)
      log.warning(`${message}: ${lastLines(tail, 1)}`)
      continue
    }
    throw new ValidationFailure('tool-error', message, tail, { command: cmd.argv[0] })
  }
  return warnings
}
