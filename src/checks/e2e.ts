import { writeFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { errorMessage } from '../util/errors.js'
import { formatDuration } from '../util/duration.js'
import type { CheckResult } from '../report/model.js'
import { shellQuote } from '../ssh/client.js'
import type { ChecksConfig, E2eSpec } from './config.js'
import {
  asUser,
  describeExit,
  noSection,
  run,
  runChecks,
  type CheckEnv,
  type CheckOutcome,
  type RunContext
} from './run.js'

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
export function e2eCommand(
  remotePath: string,
  timeoutMs: number,
  user: string | undefined,
  sshUser: string
): string {
  const q = shellQuote(remotePath)
  const secs = Math.max(1, Math.floor(timeoutMs / 1000))
  return asUser(
    `if command -v timeout >/dev/null 2>&1; then exec timeout -k 5 ${secs} ${q} 2>&1; else exec ${q} 2>&1; fi`,
    user,
    sshUser
  )
}

/** Where the scripts went in the guest: one temp dir, a numbered subdir per script. */
export interface E2eCopies {
  /** Remote path per script (index in the e2e section), or why it could not be copied. */
  scripts: ({ remote: string } | { error: string })[]
}

/**
 * Makes one temp dir in the guest and copies every e2e script into its own subdir over SFTP
 * (`<dir>/<n>/<name>`, so scripts of the same name do not clash). The pipeline starts this as
 * soon as SSH works, while the boot is still running, so the copies cost the finished system
 * nothing; the stage itself only runs them.
 */
export async function copyE2eScripts(
  env: Pick<CheckEnv, 'ssh' | 'signal'>,
  specs: E2eSpec[]
): Promise<E2eCopies> {
  const subdirs = specs.map((_, i) => `"$d/${i + 1}"`).join(' ')
  const mk = await run(
    env,
    `d=$(mktemp -d "\${TMPDIR:-/tmp}/nvv-e2e.XXXXXX") && mkdir ${subdirs} && chmod 755 "$d" ${subdirs} && echo "$d"`,
    30_000
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
        await env.ssh.putFile(spec.path, remote, 0o755)
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
  const r = await run(
    env,
    e2eRunCommand(
      e2eCommand(copy.remote, Math.max(1000, budget - 10_000), spec.user, env.sshUser),
      copy.remote
    ),
    budget
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
  checks: ChecksConfig
): Promise<CheckResult[]> {
  if (checks.e2e.length === 0) return noSection('e2e', 'e2e section', checks)
  const copies = ctx.copies?.() ?? copyE2eScripts(ctx, checks.e2e)
  return runChecks(
    ctx,
    checks.e2e.map((e, i) => ({
      name: `${e.script}${e.user !== undefined ? ` (as ${e.user})` : ''}`,
      timeoutMs: e.timeoutMs,
      file: e.file,
      line: e.line,
      run: async (env) => runScript(env, e, (await copies).scripts[i], ctx.outDir)
    }))
  )
}
