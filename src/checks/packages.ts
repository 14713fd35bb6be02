import type { Node } from 'yaml'
import { randomBytes } from 'node:crypto'
import type { CheckResult } from '../report/model.js'
import { formatDuration } from '../util/duration.js'
import { shellQuote, type ExecResult } from '../ssh/client.js'
import { combined, describeExit } from '../ssh/guest.js'
import type { ChecksFile, PackagesSection, CommandSpec } from './model.js'
import { USER_NAME, type SectionContext, type SectionParser } from './reader.js'
import {
  noSection,
  origin,
  runChecks,
  type CheckEnv,
  type CheckOutcome,
  type RunContext
} from './run.js'
import { runContext, type StageUnit } from './unit.js'

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

function header(spec: CommandSpec): string {
  return `$ ${spec.run}${spec.user !== undefined ? `   (as ${spec.user})` : ''}`
}

export async function runCommand(env: CheckEnv, spec: CommandSpec): Promise<CheckOutcome> {
  const r = await env.guest.asUser(spec.user).run(spec.run, { timeoutMs: env.deadline.remaining() })
  const out = combined(r)
  const verdict = judgeCommand(spec, r.code, out)
  if (verdict.ok) return { status: 'passed', output: `${header(spec)}\n${out}` }
  const why = verdict.why ?? describeExit(r, spec.timeoutMs)
  return { status: 'failed', output: `${header(spec)}\n${why}\n${out}` }
}

/**
 * One guest script for several commands of the same user, run in one login shell (one runuser, one
 * profile) runs them one after another, each in its own `sh -c` with stdin closed, bounded by
 * timeout(1) when the guest has it, stderr merged, and followed by a marker line with its exit
 * status and start/end times (ns, `date +%s%N`; where date has no %N they are ignored
 * and the check keeps the time awaited). Under emulation every
 * login shell costs the guest a few hundred ms of the CPU the boot needs.
 */
export function batchScript(specs: CommandSpec[], mark: string): string {
  const lines = [
    'nvv_t() { date +%s%N 2>/dev/null; }',
    'if command -v timeout >/dev/null 2>&1; then nvv_to="timeout -k 5"; else nvv_to=; fi'
  ]
  specs.forEach((s, i) => {
    const secs = Math.max(1, Math.floor(s.timeoutMs / 1000))
    const bound = `\${nvv_to:+$nvv_to ${secs}}`
    lines.push(
      `nvv_s=$(nvv_t); ${bound} sh -c ${shellQuote(s.run)} </dev/null 2>&1; nvv_rc=$?; echo; echo "${mark} ${i} $nvv_rc $nvv_s $(nvv_t)"`
    )
  })
  return lines.join('\n')
}

export interface BatchPart {
  code: number
  output: string
  durationMs?: number
}

/** The parts of batchCommand's output, by index (undefined: the batch ended before it). */
export function parseBatch(stdout: string, mark: string, count: number): (BatchPart | undefined)[] {
  const parts: (BatchPart | undefined)[] = new Array(count).fill(undefined)
  const re = new RegExp(`^${mark} (\\d+) (\\d+) ?(\\S*) ?(\\S*)$`, 'gm')
  let from = 0
  for (const m of stdout.matchAll(re)) {
    const i = Number(m[1])
    const output = stdout.slice(from, m.index).replace(/^\n/, '').trimEnd()
    from = m.index + m[0].length + 1
    if (i >= count) continue
    const ns =
      /^\d+$/.test(m[3]) && /^\d+$/.test(m[4]) ? Number(BigInt(m[4]) - BigInt(m[3])) : undefined
    parts[i] = {
      code: Number(m[2]),
      output,
      ...(ns !== undefined && ns >= 0 ? { durationMs: Math.round(ns / 1e6) } : {})
    }
  }
  return parts
}

/** A batched command's outcome: its part of the batch, or why the batch did not get to it. */
export function batchOutcome(
  spec: CommandSpec,
  part: BatchPart | undefined,
  batch: ExecResult
): CheckOutcome {
  if (part === undefined) {
    const why = batch.timedOut
      ? `not finished when the batch of commands timed out after ${formatDuration(batch.durationMs)}`
      : `the commands' shell ended before this one (${describeExit(batch)})`
    return { status: 'failed', output: `${header(spec)}\n${why}\n${combined(batch)}`.trimEnd() }
  }
  const at = part.durationMs !== undefined ? { durationMs: part.durationMs } : {}
  const verdict = judgeCommand(spec, part.code, part.output)
  if (verdict.ok) return { status: 'passed', output: `${header(spec)}\n${part.output}`, ...at }
  const why =
    verdict.why ??
    (part.code === 124
      ? `timed out after ${formatDuration(spec.timeoutMs)}`
      : describeExit({ ...batch, code: part.code, timedOut: false, signal: undefined }))
  return { status: 'failed', output: `${header(spec)}\n${why}\n${part.output}`, ...at }
}

/**
 * Stage `packages`: the packages section, then the commands section (one pool). The commands of
 * one user run as one batch (batchCommand); users' batches, and a user's single command, run
 * concurrently.
 */
export async function packagesStage(
  ctx: RunContext,
  checks: ChecksFile & PackagesSection
): Promise<CheckResult[]> {
  const all = [...checks.packages, ...checks.commands]
  if (all.length === 0) return noSection('packages', 'packages or commands section', checks)
  const groups = new Map<string | undefined, CommandSpec[]>()
  for (const c of all) {
    const group = groups.get(c.user)
    if (group === undefined) groups.set(c.user, [c])
    else group.push(c)
  }
  const batches = new Map<
    string | undefined,
    Promise<{ r: ExecResult; parts: (BatchPart | undefined)[] }>
  >()
  const batched = (env: CheckEnv, spec: CommandSpec): Promise<CheckOutcome> => {
    const specs = groups.get(spec.user) ?? [spec]
    let b = batches.get(spec.user)
    if (b === undefined) {
      const mark = `@@nvv-${randomBytes(6).toString('hex')}@@`
      const total = specs.reduce((sum, s) => sum + s.timeoutMs + 5000, 0)
      b = env.guest
        .asUser(spec.user)
        .run(batchScript(specs, mark), { timeoutMs: Math.min(total, ctx.deadline.remaining()) })
        .then((r) => ({ r, parts: parseBatch(r.stdout, mark, specs.length) }))
      batches.set(spec.user, b)
    }
    return b.then(({ r, parts }) => batchOutcome(spec, parts[specs.indexOf(spec)], r))
  }
  return runChecks(
    ctx,
    all.map((c) => ({
      name: c.name,
      timeoutMs: c.timeoutMs,
      ...origin(c),
      run: (env) => ((groups.get(c.user)?.length ?? 1) > 1 ? batched(env, c) : runCommand(env, c))
    }))
  )
}

/** Per-check timeouts of this stage when the file gives none. */
export const PACKAGES_TIMEOUTS = { command: 60_000 } as const

const COMMAND_KEYS = ['name', 'run', 'expect', 'user', 'timeout']

/** One command entry: {name, run, expect, user, timeout}; undefined when name or run is bad. */
function parseCommand(s: SectionContext, item: Node, path: string): CommandSpec | undefined {
  const r = s.r
  const m = r.map(item, path, COMMAND_KEYS, ['name', 'run'])
  if (m === undefined) return undefined
  const name = m.has('name') ? r.str(s.value(m, 'name'), `${path}.name`) : undefined
  const run = m.has('run')
    ? r.str(s.value(m, 'run'), `${path}.run`, undefined, 'a shell command')
    : undefined
  const spec: CommandSpec = {
    ...s.at(item),
    name: name ?? '',
    run: run ?? '',
    timeoutMs: s.timeoutOf(m, path, PACKAGES_TIMEOUTS.command)
  }
  const expect = m.get('expect')
  if (expect !== undefined) spec.expect = r.regex(expect.value, `${path}.expect`)
  if (m.has('user')) spec.user = r.str(s.value(m, 'user'), `${path}.user`, USER_NAME, 'a user name')
  return name !== undefined && run !== undefined ? spec : undefined
}

/** `packages:` and `commands:`, the same list of commands. */
function commandList(section: 'packages' | 'commands'): SectionParser<PackagesSection> {
  return (s, { value }, config) => {
    s.r.seq(value, section, 'commands ({name, run, expect, user, timeout})')?.forEach((item, i) => {
      const spec = parseCommand(s, item, `${section}[${i}]`)
      if (spec !== undefined) config[section].push(spec)
    })
  }
}

export const packagesUnit: StageUnit<'packages', PackagesSection, typeof PACKAGES_TIMEOUTS> = {
  name: 'packages',
  sections: { packages: commandList('packages'), commands: commandList('commands') },
  fileBase: () => ({ packages: [], commands: [] }),
  // A guest says its name: the one thing every configuration has (the ssh stage already proved
  // a login works).
  defaults: () => ({
    packages: [],
    commands: [
      { name: 'hostname', run: 'hostname', expect: '\\S', timeoutMs: PACKAGES_TIMEOUTS.command }
    ]
  }),
  timeouts: PACKAGES_TIMEOUTS,
  afterBootEnd: false,
  run: (ctx) => packagesStage(runContext(ctx, 'packages'), ctx.checks)
}
