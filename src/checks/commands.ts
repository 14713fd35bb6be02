import type { CheckResult } from '../report/model.js'
import type { ChecksConfig, CommandSpec } from './config.js'
import {
  asUser,
  combined,
  describeExit,
  noSection,
  run,
  runChecks,
  type CheckEnv,
  type CheckOutcome,
  type RunContext
} from './run.js'

/** Passes when the command exits 0 and, if given, `expect` matches stdout + stderr (multi-line). */
export function judgeCommand(
  spec: Pick<CommandSpec, 'expect'>,
  code: number | null,
  output: string
): { ok: boolean; why?: string } {
  if (code !== 0) return { ok: false }
  if (spec.expect !== undefined && !new RegExp(spec.expect, 'm').test(output)) {
    return { ok: false, why: `output does not match /${spec.expect}/` }
  }
  return { ok: true }
}

export async function runCommand(env: CheckEnv, spec: CommandSpec): Promise<CheckOutcome> {
  const r = await run(env, asUser(spec.run, spec.user, env.sshUser), env.deadline.remaining())
  const out = combined(r)
  const verdict = judgeCommand(spec, r.code, out)
  const header = `$ ${spec.run}${spec.user !== undefined ? `   (as ${spec.user})` : ''}`
  if (verdict.ok) return { status: 'passed', output: `${header}\n${out}` }
  const why = verdict.why ?? describeExit(r, spec.timeoutMs)
  return { status: 'failed', output: `${header}\n${why}\n${out}` }
}

/** Stage `packages`: the packages section, then the commands section (one pool). */
export async function packagesStage(ctx: RunContext, checks: ChecksConfig): Promise<CheckResult[]> {
  const all = [...checks.packages, ...checks.commands]
  if (all.length === 0) return noSection('packages', 'packages or commands section', checks)
  return runChecks(
    ctx,
    all.map((c) => ({
      name: c.name,
      timeoutMs: c.timeoutMs,
      file: c.file,
      line: c.line,
      run: (env) => runCommand(env, c)
    }))
  )
}
