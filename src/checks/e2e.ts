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

async function runScript(env: CheckEnv, spec: E2eSpec, outDir: string): Promise<CheckOutcome> {
  const mk = await run(
    env,
    'd=$(mktemp -d "${TMPDIR:-/tmp}/nvv-e2e.XXXXXX") && chmod 755 "$d" && echo "$d"',
    30_000
  )
  const dir = mk.stdout.trim()
  if (mk.code !== 0 || dir === '')
    return {
      status: 'failed',
      output: `cannot create a temp dir in the guest: ${describeExit(mk)}\n${mk.stderr}`
    }
  const remote = `${dir}/${basename(spec.path)}`
  try {
    try {
      await env.ssh.putFile(spec.path, remote, 0o755)
    } catch (err) {
      return {
        status: 'failed',
        output: `cannot copy ${spec.script} to the guest (SFTP): ${errorMessage(err)}`
      }
    }
    const budget = env.deadline.remaining()
    // The guest-side timeout fires first and says so (exit 124); the SSH timeout is the backstop.
    const r = await run(
      env,
      e2eCommand(remote, Math.max(1000, budget - 10_000), spec.user, env.sshUser),
      budget
    )
    const output = r.stdout + r.stderr
    await writeFile(join(outDir, e2eLogName(spec.script)), output).catch(() => undefined)
    const who = spec.user !== undefined ? ` as ${spec.user}` : ''
    if (r.code === 0) return { status: 'passed', output: `${spec.script}${who}: ok\n${output}` }
    // Annotate the script line that failed when the shell named one, else the declaration.
    const line = scriptErrorLine(output, basename(spec.path))
    const where = line !== undefined ? { file: spec.script, line } : {}
    const why =
      r.code === 124 ? `timed out after ${formatDuration(budget)}` : describeExit(r, budget)
    return { status: 'failed', output: `${spec.script}${who}: ${why}\n${output}`, ...where }
  } finally {
    await run(env, `rm -rf ${shellQuote(dir)}`, 30_000)
  }
}

/** Stage `e2e`: each script copied over SFTP to a fresh temp dir and run as its user. */
export async function e2eStage(
  ctx: RunContext & { outDir: string },
  checks: ChecksConfig
): Promise<CheckResult[]> {
  if (checks.e2e.length === 0) return noSection('e2e', 'e2e section', checks)
  return runChecks(
    ctx,
    checks.e2e.map((e) => ({
      name: `${e.script}${e.user !== undefined ? ` (as ${e.user})` : ''}`,
      timeoutMs: e.timeoutMs,
      file: e.file,
      line: e.line,
      run: (env) => runScript(env, e, ctx.outDir)
    }))
  )
}
