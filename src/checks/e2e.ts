import { accessSync, constants, realpathSync, statSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { basename, isAbsolute, join, relative, resolve } from 'node:path'
import { errorMessage } from '../util/errors.js'
import { formatDuration } from '../util/duration.js'
import type { CheckResult } from '../report/model.js'
import { shellQuote, type SshSession } from '../ssh/client.js'
import { Guest, describeExit } from '../ssh/guest.js'
import type { ChecksFile, E2eSection, E2eSpec } from './model.js'
import type { Node } from 'yaml'
import { USER_NAME, type SectionContext, type SectionParser } from './reader.js'
import {
  noSection,
  origin,
  runChecks,
  type CheckEnv,
  type CheckOutcome,
  type RunContext
} from './run.js'
import { runContext, type E2eCopies, type StageUnit } from './unit.js'

export type { E2eCopies }

/** Artifact name of an e2e script's full output. */
export function e2eLogName(script: string): string {
  return `e2e-${script.replace(/^\.?\//, '').replace(/[^\w.-]+/g, '_')}.log`
}

/**
 * The script line an error names: bash "NAME: line 12: …", dash/busybox "NAME: 12: …".
 * The last such line wins (the one that ended the script).
 */
export function scriptErrorLine(output: string, scriptName: string): number | undefined {
  const name = scriptName.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  const re = new RegExp(`(?:^|/)${name}: (?:line )?(\\d+): `, 'gm')
  let line: number | undefined
  for (const m of output.matchAll(re)) line = Number(m[1])
  return line
}

/** Runs the copied script as `user`, bounded on the guest too (timeout -k), stderr merged. */
export function e2eCommand(remotePath: string, timeoutMs: number, user: Guest): string {
  const q = shellQuote(remotePath)
  const secs = Math.max(1, Math.floor(timeoutMs / 1000))
  return user.command(
    `if command -v timeout >/dev/null 2>&1; then exec timeout -k 5 ${secs} ${q} 2>&1; else exec ${q} 2>&1; fi`
  )
}

/**
 * Makes one temp dir in the guest and copies every e2e script into its own subdir over SFTP
 * (`<dir>/<n>/<name>`, so scripts of the same name do not clash). The pipeline starts this as
 * soon as SSH works, while the boot is still running, so the copies cost the finished system
 * nothing; the stage itself only runs them.
 */
export function copyE2eScripts(
  env: { ssh: SshSession; signal: AbortSignal },
  specs: E2eSpec[]
): Promise<E2eCopies> {
  return copyScripts(new Guest(env.ssh, env.signal, env.ssh.target.user), specs)
}

async function copyScripts(guest: Guest, specs: E2eSpec[]): Promise<E2eCopies> {
  const subdirs = specs.map((_, i) => `"$d/${i + 1}"`).join(' ')
  const mk = await guest.run(
    `d=$(mktemp -d "\${TMPDIR:-/tmp}/nvv-e2e.XXXXXX") && mkdir ${subdirs} && chmod 755 "$d" ${subdirs} && echo "$d"`,
    { timeoutMs: 30_000 }
  )
  const dir = mk.stdout.trim()
  if (mk.code !== 0 || dir === '') {
    const error = `cannot create a temp dir in the guest: ${describeExit(mk)}\n${mk.stderr}`
    return { scripts: specs.map(() => ({ error })) }
  }
  const scripts = await Promise.all(
    specs.map(async (spec, i) => {
      const remote = `${dir}/${i + 1}/${basename(spec.path)}`
      try {
        await guest.putFile(spec.path, remote, 0o755)
        return { remote }
      } catch (err) {
        return { error: `cannot copy ${spec.script} to the guest (SFTP): ${errorMessage(err)}` }
      }
    })
  )
  return { scripts }
}

/**
 * The e2e command for a copied script: runs it (e2eCommand), then removes its subdir and, once
 * the last script is done, the temp dir; the script's exit status is the command's.
 */
export function e2eRunCommand(command: string, remote: string): string {
  const sub = remote.slice(0, remote.lastIndexOf('/'))
  const top = sub.slice(0, sub.lastIndexOf('/'))
  return `(${command}); rc=$?; rm -rf ${shellQuote(sub)}; rmdir ${shellQuote(top)} 2>/dev/null; exit $rc`
}

async function runScript(
  env: CheckEnv,
  spec: E2eSpec,
  copy: E2eCopies['scripts'][number],
  outDir: string
): Promise<CheckOutcome> {
  if ('error' in copy) return { status: 'failed', output: copy.error }
  const budget = env.deadline.remaining()
  // The guest-side timeout fires first and says so (exit 124); the SSH timeout is the backstop.
  const r = await env.guest.run(
    e2eRunCommand(
      e2eCommand(copy.remote, Math.max(1000, budget - 10_000), env.guest.asUser(spec.user)),
      copy.remote
    ),
    { timeoutMs: budget }
  )
  const output = r.stdout + r.stderr
  await writeFile(join(outDir, e2eLogName(spec.script)), output).catch(() => undefined)
  const who = spec.user !== undefined ? ` as ${spec.user}` : ''
  if (r.code === 0) return { status: 'passed', output: `${spec.script}${who}: ok\n${output}` }
  // Annotate the script line that failed when the shell named one, else the declaration.
  const line = scriptErrorLine(output, basename(spec.path))
  const where = line !== undefined ? { file: spec.script, line } : {}
  const why = r.code === 124 ? `timed out after ${formatDuration(budget)}` : describeExit(r, budget)
  return { status: 'failed', output: `${spec.script}${who}: ${why}\n${output}`, ...where }
}

/**
 * Stage `e2e`: each script, copied over SFTP to its own temp dir (by `copies`, which the pipeline
 * started while the boot ran, or now), run as its user.
 */
export async function e2eStage(
  ctx: RunContext & { outDir: string; copies?: () => Promise<E2eCopies> },
  checks: ChecksFile & E2eSection
): Promise<CheckResult[]> {
  if (checks.e2e.length === 0) return noSection('e2e', 'e2e section', checks)
  const copies = ctx.copies?.() ?? copyScripts(ctx.guest, checks.e2e)
  return runChecks(
    ctx,
    checks.e2e.map((e, i) => ({
      name: `${e.script}${e.user !== undefined ? ` (as ${e.user})` : ''}`,
      timeoutMs: e.timeoutMs,
      ...origin(e),
      run: async (env) => runScript(env, e, (await copies).scripts[i], ctx.outDir)
    }))
  )
}

/**
 * Why an e2e script path is refused, if it is: outside the repository root (`..`, an absolute
 * path, or — when the file must exist — a symlink that leads out), or not a readable regular file.
 */
function scriptProblem(
  script: string,
  abs: string,
  root: string,
  mustExist: boolean
): string | undefined {
  const inside = (path: string, dir: string): boolean => {
    const rel = relative(dir, path)
    return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel)
  }
  const where = `paths are relative to the repository root ${root} and stay inside it`
  if (isAbsolute(script) || !inside(abs, root))
    return `${script}: outside the repository (${where})`
  if (!mustExist) return undefined
  let real: string
  try {
    real = realpathSync(abs)
  } catch {
    return `${script}: no such file (${where})`
  }
  if (!inside(real, realpathSync(root)))
    return `${script}: leads outside the repository (to ${real}; ${where})`
  try {
    if (!statSync(real).isFile()) return `${script}: not a regular file`
    accessSync(real, constants.R_OK)
  } catch {
    return `${script}: cannot be read`
  }
  return undefined
}

/** Per-check timeouts of this stage when the file gives none. */
export const E2E_TIMEOUTS = { e2e: 10 * 60_000 } as const

/** One `e2e` entry: {script, user, timeout}; the script must be a file of the repository. */
function parseScript(s: SectionContext, item: Node, path: string): E2eSpec | undefined {
  const r = s.r
  const m = r.map(item, path, ['script', 'user', 'timeout'], ['script'])
  if (m === undefined) return undefined
  const scriptNode = s.value(m, 'script')
  const script = m.has('script')
    ? r.str(scriptNode, `${path}.script`, undefined, 'a script path')
    : undefined
  if (script === undefined) return undefined
  const abs = resolve(s.root, script)
  // The script is copied into the guest and run there: only files of the repository.
  const problem = scriptProblem(script, abs, s.root, s.checkScripts)
  if (problem !== undefined) {
    r.error(scriptNode, `${path}.script`, problem)
    return undefined
  }
  const spec: E2eSpec = {
    ...s.at(item),
    script,
    path: abs,
    timeoutMs: s.timeoutOf(m, path, E2E_TIMEOUTS.e2e)
  }
  if (m.has('user')) spec.user = r.str(s.value(m, 'user'), `${path}.user`, USER_NAME, 'a user name')
  return spec
}

/** `e2e: [{script, user, timeout}]` */
const parseE2e: SectionParser<E2eSection> = (s, { value }, config) => {
  s.r.seq(value, 'e2e', 'scripts ({script, user, timeout})')?.forEach((item, i) => {
    const spec = parseScript(s, item, `e2e[${i}]`)
    if (spec !== undefined) config.e2e.push(spec)
  })
}

export const e2eUnit: StageUnit<'e2e', E2eSection, typeof E2E_TIMEOUTS> = {
  name: 'e2e',
  sections: { e2e: parseE2e },
  fileBase: () => ({ e2e: [] }),
  defaults: () => ({ e2e: [] }),
  timeouts: E2E_TIMEOUTS,
  afterBootEnd: true,
  run: (ctx) => e2eStage({ ...runContext(ctx, 'e2e'), copies: ctx.e2eCopies }, ctx.checks)
}
