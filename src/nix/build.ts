import { createWriteStream } from 'node:fs'
import { mkdir, readdir, readlink } from 'node:fs/promises'
import { join } from 'node:path'
import { ValidationFailure } from '../util/errors.js'
import type { GuestSystem } from '../vm/system.js'
import { hostSystem as currentHostSystem } from '../vm/system.js'
import { spawnExecutor, type ExecResult, type Executor } from './exec.js'
import { nixBuildArgv, packagePathArgv } from './expr.js'
import { STORE_PATH, memoResolver, type PackagePathResolver } from '../checks/substitute.js'
import type { FlakeTarget } from './flakeref.js'
import { summarizeNixError } from './errors.js'
import { closureInfoCommand, parseClosureInfo } from './cache.js'

export interface BuildRunnerInput {
  target: FlakeTarget
  /** The guest system (for messages; the configuration decides what is built). */
  system: GuestSystem
  sshUser: string
  /** Authorized for `sshUser` in the VM (the run's ephemeral key). */
  sshPublicKey: string
  /** `<workDir>/result` becomes the out-link (a GC root while the run lasts). */
  workDir: string
  /** `<outDir>/build.log`: the whole build log, an artifact. */
  outDir: string
  hostSystem?: GuestSystem
  /** EmulationPlan.settings of an emulated build. */
  emulation?: [string, string][]
  /** e.g. localSubstituter(<restored cache dir>). */
  extraSubstituters?: string[]
  options?: [string, string][]
  showTrace?: boolean
  /** Each log line (the action streams them into a log group, the CLI into its progress lines). */
  onLine?: (line: string) => void
  signal?: AbortSignal
  timeoutMs?: number
  exec?: Executor
  nix?: string
}

export interface BuildRunnerResult {
  /** `<store path>/bin/run-<host>-vm`. */
  runner: string
  storePath: string
  drvPath?: string
  outLink: string
  logFile: string
  buildMs: number
  /** NAR bytes of the runner's closure (undefined when `nix path-info` could not say). */
  closureBytes?: number
  argv: string[]
}

/** `bin/run-<name>-vm` of a built VM (the NixOS runner contract). */
export async function findRunner(storePath: string): Promise<string | undefined> {
  const names = await readdir(join(storePath, 'bin')).catch(() => [] as string[])
  const runner = names.filter((n) => /^run-.+-vm$/.test(n)).sort()[0]
  return runner !== undefined ? join(storePath, 'bin', runner) : undefined
}

/** The output path from `nix build --json` (Nix 2.8 has no --print-out-paths). */
export function parseBuildJson(stdout: string): { storePath?: string; drvPath?: string } {
  try {
    const parsed = JSON.parse(stdout) as { drvPath?: string; outputs?: Record<string, string> }[]
    const first = parsed[0]
    return { storePath: first?.outputs?.out, drvPath: first?.drvPath }
  } catch {
    return {}
  }
}

/** The build's stderr, streamed to build.log and `onLine`; what it printed, its lines, its time. */
async function runLogged(
  i: BuildRunnerInput,
  argv: string[],
  logFile: string
): Promise<{ result: ExecResult; logged: string[]; buildMs: number }> {
  const log = createWriteStream(logFile, { flags: 'w' })
  const logged: string[] = []
  const started = Date.now()
  const exec = i.exec ?? spawnExecutor()
  let result
  try {
    result = await exec.run(
      { argv, why: `build ${i.target.display}` },
      {
        signal: i.signal,
        timeoutMs: i.timeoutMs,
        onLine: (line, stream) => {
          if (stream !== 'stderr') return
          log.write(line + '\n')
          logged.push(line)
          i.onLine?.(line)
        }
      }
    )
  } catch (err) {
    throw new ValidationFailure('tool-error', `cannot run nix: ${(err as Error).message}`)
  } finally {
    await new Promise<void>((resolve) => log.end(resolve))
  }
  return { result, logged, buildMs: Date.now() - started }
}

/** A failed `nix build`: stopped (a timeout), or Nix's error with its position in the repository. */
function buildFailure(
  i: BuildRunnerInput,
  result: ExecResult,
  logged: string[],
  buildMs: number,
  logFile: string
): ValidationFailure {
  if (result.signal !== null) {
    return new ValidationFailure(
      'stage-timeout',
      `nix build was stopped (${result.signal}) after ${Math.round(buildMs / 1000)} s`,
      lastLog(logged)
    )
  }
  const roots = [i.target.localDir, i.target.repoRoot].filter((r): r is string => r !== undefined)
  const s = summarizeNixError(logged.join('\n'), {
    roots,
    repoRoot: i.target.repoRoot ?? i.target.localDir ?? process.cwd()
  })
  const where =
    s.where === 'repo' && s.file !== undefined
      ? ` (${s.file}${s.line !== undefined ? `:${s.line}` : ''})`
      : ''
  return new ValidationFailure(
    'build-failed',
    `nix build of ${i.target.display} failed${where}: ${s.message}`,
    s.excerpt,
    {
      ...(s.where === 'repo' ? { file: s.file, line: s.line, column: s.column } : {}),
      logFile
    }
  )
}

/** The closure's NAR bytes (`nix path-info --json --recursive`), for the performance history. */
async function closureSize(i: BuildRunnerInput, storePath: string): Promise<number | undefined> {
  const exec = i.exec ?? spawnExecutor()
  const r = await exec
    .run(closureInfoCommand(storePath, i.nix ?? 'nix', i.options ?? []), {
      timeoutMs: 60_000,
      ...(i.signal !== undefined ? { signal: i.signal } : {})
    })
    .catch(() => undefined)
  if (r?.code !== 0) return undefined
  const paths = parseClosureInfo(r.stdout)
  return paths.length > 0 ? paths.reduce((a, p) => a + p.narSize, 0) : undefined
}

/** The built store path (from --json, else the out-link) and its runner. */
async function builtRunner(
  i: BuildRunnerInput,
  stdout: string,
  outLink: string
): Promise<{ runner: string; storePath: string; drvPath?: string }> {
  const parsed = parseBuildJson(stdout)
  const storePath = parsed.storePath ?? (await readlink(outLink).catch(() => undefined))
  if (storePath === undefined) {
    throw new ValidationFailure(
      'tool-error',
      'nix build succeeded but printed no output path and left no result link',
      stdout
    )
  }
  const runner = await findRunner(storePath)
  if (runner === undefined) {
    throw new ValidationFailure(
      'build-failed',
      `${storePath} has no bin/run-*-vm: is nixosConfigurations.${i.target.configuration}.config.system.build.vm a NixOS VM?`
    )
  }
  return { runner, storePath, ...(parsed.drvPath !== undefined ? { drvPath: parsed.drvPath } : {}) }
}

/**
 * Builds the user's configuration's `system.build.vm`, extended with our module (SSH with the
 * run's key, no graphics, the host's QEMU when emulated), and finds its runner. The log streams
 * to `onLine` and to `<outDir>/build.log`. A failure is a `build-failed` ValidationFailure with
 * the last error lines and, when Nix names a file of the user's repository, `details.file` and
 * `details.line` (repository-relative).
 */
export async function buildRunner(i: BuildRunnerInput): Promise<BuildRunnerResult> {
  const host = i.hostSystem ?? currentHostSystem()
  if (host === undefined)
    throw new ValidationFailure('tool-error', `unsupported host architecture ${process.arch}`)
  await mkdir(i.workDir, { recursive: true })
  await mkdir(i.outDir, { recursive: true })
  const outLink = join(i.workDir, 'result')
  const logFile = join(i.outDir, 'build.log')
  const argv = nixBuildArgv({
    target: i.target,
    sshUser: i.sshUser,
    sshPublicKey: i.sshPublicKey,
    hostSystem: host,
    outLink,
    ...(i.emulation !== undefined ? { emulation: i.emulation } : {}),
    ...(i.extraSubstituters !== undefined ? { extraSubstituters: i.extraSubstituters } : {}),
    ...(i.options !== undefined ? { options: i.options } : {}),
    ...(i.showTrace !== undefined ? { showTrace: i.showTrace } : {}),
    ...(i.nix !== undefined ? { nix: i.nix } : {})
  })
  const { result, logged, buildMs } = await runLogged(i, argv, logFile)
  if (i.signal?.aborted === true)
    throw new ValidationFailure('cancelled', 'the build was cancelled')
  if (result.code !== 0) throw buildFailure(i, result, logged, buildMs, logFile)
  const built = await builtRunner(i, result.stdout, outLink)
  const closureBytes = await closureSize(i, built.storePath)
  return {
    ...built,
    outLink,
    logFile,
    buildMs,
    ...(closureBytes !== undefined ? { closureBytes } : {}),
    argv
  }
}

/**
 * The network stage's evaluator: `nixosConfigurations.<c>.pkgs.<attribute>`'s store path, from the
 * same flake and Nix as the build (evaluation only). Memoized; the error names the attribute and
 * carries Nix's own last lines.
 */
export function packagePathResolver(i: {
  target: FlakeTarget
  options?: [string, string][]
  nix?: string
  signal?: AbortSignal
  exec?: Executor
}): PackagePathResolver {
  const exec = i.exec ?? spawnExecutor()
  return memoResolver(async (attribute) => {
    const argv = packagePathArgv({
      target: i.target,
      attribute,
      ...(i.options !== undefined ? { options: i.options } : {}),
      ...(i.nix !== undefined ? { nix: i.nix } : {})
    })
    const what = `nixosConfigurations.${i.target.configuration}.pkgs.${attribute}`
    const r = await exec.run(
      { argv, why: `evaluate ${what}` },
      { signal: i.signal, timeoutMs: 5 * 60_000 }
    )
    let path: unknown
    try {
      path = r.code === 0 ? JSON.parse(r.stdout) : undefined
    } catch {
      path = undefined
    }
    if (typeof path === 'string' && STORE_PATH.test(path)) return path
    const errors = nixErrorLines(r.stderr)
    throw new Error(
      `cannot evaluate ${what} (to realise it in the VM): ${r.code === 0 ? `not a store path: ${r.stdout.trim()}` : errors || `exit ${r.code ?? r.signal ?? '?'}`}`
    )
  })
}

/** The last lines of Nix's stderr that are not warnings: what an evaluation error says. */
export function nixErrorLines(stderr: string, n = 3): string {
  return stderr
    .split('\n')
    .filter((l) => l.trim() !== '' && !/^warning: /.test(l))
    .slice(-n)
    .join('\n')
}

function lastLog(lines: string[]): string {
  return lines
    .filter((l) => l.trim() !== '')
    .slice(-30)
    .join('\n')
}
