import { spawn } from 'node:child_process'
import { chmod, lstat, mkdir, mkdtemp, readlink, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { childEnv } from '../util/env.js'
import { ValidationFailure } from '../util/errors.js'
import type { Logger } from '../util/log.js'

/**
 * One process to run, as data: argv (never a shell string), optional stdin. Plans are lists of
 * these, so they can be unit-tested exactly and printed by --dry-run.
 */
export interface Command {
  argv: string[]
  /**
   * Written to stdin, for programs that read their fd 0 (`tee`). Never for a program that opens
   * `/dev/stdin`: Node's stdin pipe is a socket, and opening it fails with ENXIO (see FileWrite).
   */
  input?: string
  /**
   * Added to the inherited environment, which never carries the action's inputs or runner
   * credentials (childEnv): a secret the command needs goes here.
   */
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

/**
 * A whole file written by this process with `fs`: to a temporary name beside it, then renamed
 * over it (a reader never sees half a file). A privileged write by a non-root user goes through a
 * private 0600 temporary file and `sudo -n install -D -m MODE TEMP PATH`. Never `install
 * /dev/stdin` fed from a pipe: Node's pipes are sockets, which `open("/dev/stdin")` cannot open.
 */
export interface FileWrite {
  write: {
    path: string
    content: string
    /** Octal, as `install -m` takes it: '0600'. */
    mode: string
    /** Needs root (a file under /etc). */
    privileged: boolean
    uid: number
    /**
     * When the path is a symlink, it is not replaced: the file belongs to whatever made the link
     * (a NixOS host's /etc/nix/nix.conf). This says what to do instead; the step fails with it.
     */
    ifSymlink?: string
  }
  why: string
  optional?: boolean
  secrets?: string[]
}

/** A host step: a process to run, or a file to write. */
export type Step = Command | FileWrite

export function isFileWrite(step: Step): step is FileWrite {
  return (step as FileWrite).write !== undefined
}

export function writeFileStep(
  path: string,
  content: string,
  o: {
    mode: string
    uid: number
    privileged: boolean
    why: string
    secrets?: string[]
    ifSymlink?: string
  }
): FileWrite {
  return {
    write: {
      path,
      content,
      mode: o.mode,
      privileged: o.privileged,
      uid: o.uid,
      ...(o.ifSymlink !== undefined ? { ifSymlink: o.ifSymlink } : {})
    },
    why: o.why,
    ...(o.secrets !== undefined && o.secrets.length > 0 ? { secrets: o.secrets } : {})
  }
}

/** `sudo -n install …` for a privileged write by a non-root user (what runFileWrite runs). */
export function sudoInstallArgv(temp: string, w: FileWrite['write']): string[] {
  return ['sudo', '-n', 'install', '-D', '-m', w.mode, temp, w.path]
}

/**
 * Replaces the file at `path` with `content`: written under a temporary name beside it (removed
 * first, then created exclusively, so a link planted under that name is never followed), given
 * `mode` (the umask narrows writeFile's), then renamed over the entry itself — never a link's
 * target. A reader never sees half a file; on failure the temporary file goes.
 */
export async function replaceFile(path: string, content: string, mode: number): Promise<void> {
  const temp = `${path}.nixos-vm-validate-${process.pid}`
  try {
    await rm(temp, { force: true })
    await writeFile(temp, content, { mode, flag: 'wx' })
    await chmod(temp, mode)
    await rename(temp, path)
  } catch (err) {
    await rm(temp, { force: true }).catch(() => undefined)
    throw err
  }
}

async function symlinkTarget(path: string): Promise<string | undefined> {
  const st = await lstat(path).catch(() => undefined)
  if (st === undefined || !st.isSymbolicLink()) return undefined
  return readlink(path).catch(() => '?')
}

/**
 * Carries out a FileWrite. Direct writes (root, or a file the user owns) use fs; a privileged
 * write by another user runs `sudo -n install` through `exec` from a private temporary copy.
 * A failure is a `tool-error` naming the file and what went wrong.
 */
export async function runFileWrite(
  step: FileWrite,
  exec: Executor,
  o: { tempRoot?: string; signal?: AbortSignal } = {}
): Promise<void> {
  const w = step.write
  const target = await symlinkTarget(w.path)
  if (target !== undefined) {
    throw new ValidationFailure(
      'tool-error',
      `${step.why}: ${w.path} is a symlink (to ${target}), managed by something else; not replacing it.${w.ifSymlink !== undefined ? ` ${w.ifSymlink}` : ''}`
    )
  }
  const mode = parseInt(w.mode, 8)
  if (!w.privileged || w.uid === 0) {
    try {
      await mkdir(dirname(w.path), { recursive: true })
      await replaceFile(w.path, w.content, mode)
    } catch (err) {
      throw new ValidationFailure(
        'tool-error',
        `${step.why} failed: cannot write ${w.path}: ${(err as Error).message}`
      )
    }
    return
  }
  const dir = await mkdtemp(join(o.tempRoot ?? tmpdir(), 'nvv-write-'))
  try {
    const temp = join(dir, 'content')
    await writeFile(temp, w.content, { mode: 0o600 })
    const cmd: Command = { argv: sudoInstallArgv(temp, w), why: step.why }
    const r = await exec.run(cmd, { signal: o.signal }).catch((err: unknown) => ({
      code: -1,
      signal: null,
      stdout: '',
      stderr: (err as Error).message,
      durationMs: 0
    }))
    if (r.code !== 0) {
      const tail = lastLines(r.stderr + '\n' + r.stdout, 20)
      throw new ValidationFailure(
        'tool-error',
        `${step.why} failed (${r.signal ?? `exit ${r.code}`}): ${renderCommand(cmd)}: ${lastLines(tail, 3).replace(/\n/g, ' / ')}`,
        tail,
        { command: 'sudo' }
      )
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
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

/** How a step reads in a log or a plan: quoted argv, secrets redacted, stdin summarised. */
export function renderCommand(step: Step): string {
  if (isFileWrite(step)) {
    const w = step.write
    const lines = w.content.split('\n').filter(Boolean).length
    const how =
      w.privileged && w.uid !== 0
        ? `sudo -n install -D -m ${w.mode} <private temp copy> ${shellQuote(w.path)}`
        : `write ${shellQuote(w.path)} (mode ${w.mode})`
    return `${how}  (${lines} line${lines === 1 ? '' : 's'})`
  }
  const cmd = step
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
 * The child's environment is `baseEnv` as it is at that moment (setupNix adds to PATH) without
 * INPUT_* / ACTIONS_* (childEnv), plus the command's own `env`.
 */
export function spawnExecutor(baseEnv: NodeJS.ProcessEnv = process.env): Executor {
  return {
    run(cmd, opts = {}) {
      return new Promise((resolve, reject) => {
        const started = Date.now()
        const [file, ...args] = cmd.argv
        const child = spawn(file, args, {
          cwd: opts.cwd,
          env: { ...childEnv(baseEnv), ...cmd.env },
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

/** Runs the steps in order; a failed required step stops with its command and output tail. */
export async function runCommands(
  steps: Step[],
  exec: Executor,
  log: Logger,
  signal?: AbortSignal,
  o: { tempRoot?: string } = {}
): Promise<string[]> {
  const warnings: string[] = []
  for (const step of steps) {
    log.info(`${step.why}: ${renderCommand(step)}`)
    if (isFileWrite(step)) {
      try {
        await runFileWrite(step, exec, { ...o, signal })
      } catch (err) {
        if (step.optional !== true) throw err
        const message = (err as Error).message
        warnings.push(message)
        log.warning(message)
      }
      continue
    }
    const cmd = step
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
    // The last lines go into the message itself: it is what the log, the summary and the
    // annotation show first; the excerpt keeps twenty.
    const said = lastLines(tail, 3).replace(/\n/g, ' / ')
    throw new ValidationFailure('tool-error', said !== '' ? `${message}: ${said}` : message, tail, {
      command: cmd.argv[0]
    })
  }
  return warnings
}
