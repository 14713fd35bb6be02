/**
 * Shared pieces of the integration tests: real guests from the project's fixture builder, the
 * bundled CLI run as a user runs it, and a check that no QEMU outlived a run.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Report } from '../../src/report/model.js'

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
/** The bundled CLI; NVV_CLI points the tests at a bundle built elsewhere. */
export const CLI = process.env.NVV_CLI ?? join(ROOT, 'dist', 'cli', 'index.js')

export { buildGuest, type Arch, type Guest, type Variant } from '../support/guests.js'

export interface CliRun {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  durationMs: number
  outDir: string
  /** Unique directory the run's QEMU command line contains (its TMPDIR): finds leftovers. */
  marker: string
  report(): Report
}

/** A scratch dir per run; the CLI's work dir (and so QEMU's QMP socket path) lives under it. */
export function scratch(name: string): string {
  return mkdtempSync(join(tmpdir(), `nvv-it-${name}-`))
}

export interface CliOptions {
  env?: NodeJS.ProcessEnv
  /** Working directory (the CLI picks up tests/vm/checks.yml from it); default the repository. */
  cwd?: string
  timeoutMs?: number
  /** Called with the child right after spawn (to send signals). */
  onSpawn?: (child: ChildProcess) => void
}

export function runCli(args: string[], o: CliOptions = {}): Promise<CliRun> {
  const marker = scratch('run')
  const outDir = join(marker, 'out')
  const started = Date.now()
  const fullArgs = args.includes('--out') ? args : [...args, '--out', outDir]
  const actualOut = fullArgs[fullArgs.indexOf('--out') + 1]
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CLI, ...fullArgs], {
      env: { ...process.env, ...o.env, TMPDIR: marker },
      cwd: o.cwd ?? ROOT,
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`CLI did not finish within ${o.timeoutMs ?? 600_000} ms:\n${stderr}`))
    }, o.timeoutMs ?? 600_000)
    o.onSpawn?.(child)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolvePromise({
        code,
        signal,
        stdout,
        stderr,
        durationMs: Date.now() - started,
        outDir: actualOut,
        marker,
        report: () => JSON.parse(readFileSync(join(actualOut, 'report.json'), 'utf8')) as Report
      })
    })
  })
}

/** PIDs of QEMU processes whose command line mentions `marker` (this run's own scratch dir). */
export function qemuLeft(marker: string): number[] {
  try {
    const out = execFileSync('pgrep', ['-f', `qemu-system.*${marker}`], { encoding: 'utf8' })
    return out.split('\n').filter(Boolean).map(Number)
  } catch {
    return [] // pgrep exits 1 when nothing matches
  }
}

export function artifact(run: CliRun, name: string): string {
  return join(run.outDir, name)
}

export function hasArtifact(run: CliRun, name: string): boolean {
  return existsSync(artifact(run, name))
}
