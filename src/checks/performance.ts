import { formatDuration } from '../util/duration.js'
import { Deadline } from '../util/time.js'
import type { BootAnalysis, CheckResult, Report } from '../report/model.js'
import type { ChecksConfig, PerformanceBudget, PerformanceSpec } from './config.js'
import type { ExecResult } from '../ssh/client.js'
import { combined, describeExit, poll, run, trimOutput, type RunContext } from './run.js'
import {
  UNIT_TIMES_COMMAND,
  blameFromDump,
  criticalChainFromDump,
  parseUnitDump
} from './unit-times.js'

const SPAN_UNITS: [string, number][] = [
  ['month', 2_629_800_000],
  ['min', 60_000],
  ['ms', 1],
  ['us', 0.001],
  ['µs', 0.001],
  ['y', 31_557_600_000],
  ['w', 604_800_000],
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['s', 1000]
]
const SPAN_TOKEN = `\\d+(?:\\.\\d+)?(?:${SPAN_UNITS.map(([u]) => u).join('|')})`
const SPAN = `${SPAN_TOKEN}(?:\\s+${SPAN_TOKEN})*`

/** systemd's timespan ("1min 2.345s", "123ms", "1h 2min", "850us") in milliseconds. */
export function parseTimespan(text: string): number | undefined {
  const t = text.trim()
  if (!new RegExp(`^${SPAN}$`).test(t)) return undefined
  let ms = 0
  for (const m of t.matchAll(
    new RegExp(`(\\d+(?:\\.\\d+)?)(${SPAN_UNITS.map(([u]) => u).join('|')})`, 'g')
  )) {
    ms += Number(m[1]) * (SPAN_UNITS.find(([u]) => u === m[2])?.[1] ?? 0)
  }
  return Math.round(ms * 1000) / 1000
}

export interface AnalyzeTime {
  firmwareMs?: number
  loaderMs?: number
  kernelMs?: number
  initrdMs?: number
  userspaceMs?: number
  totalMs: number
}

/**
 * `systemd-analyze time`: "Startup finished in 1.2s (kernel) + 3.4s (initrd) + 10s (userspace) =
 * 14.6s", with or without initrd/firmware/loader. undefined while "Bootup is not yet finished".
 */
export function parseAnalyzeTime(text: string): AnalyzeTime | undefined {
  const line = /Startup finished in (.*?)\s*$/m.exec(text)?.[1]
  if (line === undefined) return undefined
  const out: Partial<AnalyzeTime> = {}
  for (const m of line.matchAll(
    new RegExp(`(${SPAN})\\s+\\((firmware|loader|kernel|initrd|userspace)\\)`, 'g')
  )) {
    const ms = parseTimespan(m[1])
    if (ms !== undefined) out[`${m[2] as 'kernel'}Ms`] = ms
  }
  const total = new RegExp(`=\\s*(${SPAN})\\s*$`).exec(line)?.[1]
  const totalMs =
    total !== undefined
      ? parseTimespan(total)
      : [out.firmwareMs, out.loaderMs, out.kernelMs, out.initrdMs, out.userspaceMs].reduce<number>(
          (a, b) => a + (b ?? 0),
          0
        )
  if (totalMs === undefined) return undefined
  return { ...out, totalMs }
}

/** /proc/meminfo: MemTotal − MemAvailable, in MiB. */
export function parseMemoryUsedMiB(meminfo: string): number | undefined {
  const kb = (key: string): number | undefined => {
    const m = new RegExp(`^${key}:\\s+(\\d+)\\s*kB`, 'm').exec(meminfo)
    return m !== null ? Number(m[1]) : undefined
  }
  const total = kb('MemTotal')
  const available =
    kb('MemAvailable') ??
    (() => {
      const free = kb('MemFree')
      return free === undefined ? undefined : free + (kb('Buffers') ?? 0) + (kb('Cached') ?? 0)
    })()
  if (total === undefined || available === undefined) return undefined
  return Math.round((total - available) / 1024)
}

export interface BudgetCheck {
  key: PerformanceBudget
  name: string
  /** undefined: not measured. */
  actual: number | undefined
  budget: number | undefined
  unit: 'ms' | 'MiB'
  /** Why there is no measurement. */
  missing?: string
}

/** The budget checks of a measurement: passed within budget, failed with number and budget. */
export function judgeBudgets(checks: BudgetCheck[]): {
  name: string
  key: PerformanceBudget
  status: 'passed' | 'failed' | 'skipped'
  output: string
}[] {
  const show = (v: number, unit: 'ms' | 'MiB'): string =>
    unit === 'ms' ? formatDuration(v) : `${v} MiB`
  return checks
    .filter((c) => c.budget !== undefined)
    .map((c) => {
      const budget = c.budget as number
      if (c.actual === undefined)
        return {
          name: c.name,
          key: c.key,
          status: 'skipped' as const,
          output: c.missing ?? 'not measured'
        }
      const ok = c.actual <= budget
      return {
        name: c.name,
        key: c.key,
        status: ok ? ('passed' as const) : ('failed' as const),
        output: ok
          ? `${show(c.actual, c.unit)} (budget ${show(budget, c.unit)})`
          : `${show(c.actual, c.unit)} exceeds the budget of ${show(budget, c.unit)} (by ${show(Math.round((c.actual - budget) * 1000) / 1000, c.unit)})`
      }
    })
}

const BUDGET_NAMES: Record<PerformanceBudget, string> = {
  bootTime: 'boot time',
  kernel: 'kernel time',
  initrd: 'initrd time',
  userspace: 'userspace time',
  sshReady: 'SSH ready',
  memoryUsedMiB: 'memory used'
}

export function budgetChecks(
  p: PerformanceSpec,
  boot: BootAnalysis,
  sshReadyMs: number | undefined
): BudgetCheck[] {
  const noAnalyze = 'systemd-analyze time gave no result'
  const ms = (
    key: PerformanceBudget,
    actual: number | undefined,
    budget: number | undefined,
    missing?: string
  ): BudgetCheck => ({
    key,
    name: `${BUDGET_NAMES[key]} ≤ ${budget !== undefined ? formatDuration(budget) : '?'}`,
    actual,
    budget,
    unit: 'ms',
    ...(actual === undefined ? { missing } : {})
  })
  return [
    ms('bootTime', boot.totalMs, p.bootTimeMs, noAnalyze),
    ms('kernel', boot.kernelMs, p.kernelMs, noAnalyze),
    ms(
      'initrd',
      boot.initrdMs,
      p.initrdMs,
      boot.totalMs !== undefined
        ? 'no initrd phase in systemd-analyze time (the guest boots without a systemd initrd; kernel time includes it)'
        : noAnalyze
    ),
    ms('userspace', boot.userspaceMs, p.userspaceMs, noAnalyze),
    ms('sshReady', sshReadyMs, p.sshReadyMs, 'SSH readiness was not measured in this run'),
    {
      key: 'memoryUsedMiB',
      name: `memory used ≤ ${p.memoryUsedMiB ?? '?'} MiB`,
      actual: boot.memoryUsedMiB,
      budget: p.memoryUsedMiB,
      unit: 'MiB',
      missing: 'could not read /proc/meminfo'
    }
  ]
}

const MARK_UNITS = '@@nvv-units@@'
const MARK_MEM = '@@nvv-meminfo@@'

/** systemd-analyze time, the unit timestamps and /proc/meminfo, in one guest command. */
export const EVIDENCE_COMMAND = `systemd-analyze time 2>&1; echo "${MARK_UNITS} $?"; ${UNIT_TIMES_COMMAND} 2>&1; echo ${MARK_MEM}; cat /proc/meminfo`

/**
 * The parts of EVIDENCE_COMMAND's output (empty when a part is missing) and the exit status of
 * its systemd-analyze time.
 */
export function splitEvidence(stdout: string): {
  time: string
  timeCode: number | null
  units: string
  meminfo: string
} {
  const m = new RegExp(`^${MARK_UNITS} (\\d+)\n`, 'm').exec(stdout)
  if (m === null) return { time: stdout, timeCode: null, units: '', meminfo: '' }
  const rest = stdout.slice(m.index + m[0].length)
  const [units, meminfo = ''] = rest.split(`${MARK_MEM}\n`)
  return { time: stdout.slice(0, m.index), timeCode: Number(m[1]), units, meminfo }
}

/**
 * Stage `performance`: waits (bounded) until systemd reports the boot finished, records the
 * phases, the 10 slowest units, the critical chain and the memory in use into `report.boot`
 * (always, also within budget), then checks each budget.
 */
export async function performanceStage(
  ctx: RunContext & { report: Report },
  checks: ChecksConfig
): Promise<CheckResult[]> {
  const p = checks.performance ?? { timeoutMs: 5 * 60_000, lines: {} }
  const at = (key?: PerformanceBudget): Pick<CheckResult, 'file' | 'line'> => {
    const line = key !== undefined ? (p.lines[key] ?? p.line) : p.line
    return {
      ...(p.file !== undefined ? { file: p.file } : {}),
      ...(line !== undefined ? { line } : {})
    }
  }
  const env = { ssh: ctx.ssh, signal: ctx.signal }
  const results: CheckResult[] = []
  const started = Date.now()
  const deadline = new Deadline(Math.min(p.timeoutMs, ctx.deadline.remaining()))
  // One command for everything once the boot has ended (the pipeline starts this stage then):
  // the phases, the unit timestamps (blame and critical chain are computed here, see
  // unit-times.ts) and the memory in use. Run before the end (no system stage), it polls
  // systemd-analyze time alone until the boot has finished, then asks for the rest.
  const evidenceRun = (): Promise<ExecResult> =>
    run(env, EVIDENCE_COMMAND, Math.min(60_000, Math.max(1000, deadline.remaining())))
  let evidence = await evidenceRun()
  let parts = splitEvidence(evidence.stdout)
  let timeRun: ExecResult = {
    ...evidence,
    stdout: parts.time,
    code: parts.timeCode ?? evidence.code
  }
  let parsed = parseAnalyzeTime(timeRun.stdout)
  const notYet = (r: ExecResult): boolean =>
    /not yet finished|try again later/i.test(r.stdout + r.stderr)
  if (parsed === undefined && notYet(timeRun)) {
    const timed = await poll(
      deadline,
      ctx.signal,
      async (remaining) => {
        const r = await run(
          env,
          'systemd-analyze time 2>&1',
          Math.min(60_000, Math.max(1000, remaining))
        )
        const t = parseAnalyzeTime(r.stdout)
        return { done: t !== undefined || !notYet(r), value: { r, t } }
      },
      2000
    )
    timeRun = timed.value.r
    parsed = timed.value.t
    if (parsed !== undefined) {
      evidence = await evidenceRun()
      parts = splitEvidence(evidence.stdout)
    }
  }
  const timeMs = Date.now() - started
  const boot: BootAnalysis = ctx.report.boot ?? {}
  ctx.report.boot = boot
  if (parsed !== undefined) {
    if (parsed.kernelMs !== undefined) boot.kernelMs = parsed.kernelMs
    if (parsed.initrdMs !== undefined) boot.initrdMs = parsed.initrdMs
    if (parsed.userspaceMs !== undefined) boot.userspaceMs = parsed.userspaceMs
    boot.totalMs = parsed.totalMs
    results.push({
      name: 'systemd-analyze time',
      status: 'passed',
      durationMs: timeMs,
      output: trimOutput(timeRun.stdout),
      ...at()
    })
  } else {
    const why = /not yet finished/i.test(timeRun.stdout)
      ? `the boot was still not finished after ${formatDuration(p.timeoutMs)}`
      : describeExit(timeRun)
    results.push({
      name: 'systemd-analyze time',
      status: 'failed',
      durationMs: timeMs,
      output: trimOutput(`systemd-analyze time: ${why}\n${combined(timeRun)}`),
      ...at()
    })
  }

  const extraMs = evidence.durationMs
  const { units: unitText, meminfo: memText } = parts
  const dump = parseUnitDump(unitText)
  const slowest = blameFromDump(dump)
  if (slowest.length > 0) boot.blame = slowest
  const chain = criticalChainFromDump(dump)
  if (chain !== '') boot.criticalChain = chain
  const used = parseMemoryUsedMiB(memText)
  if (used !== undefined) boot.memoryUsedMiB = used
  const why = `${describeExit(evidence)}\n${trimOutput(combined(evidence), 500)}`
  // Evidence, not verdicts: a guest without these tools is not a failed validation.
  results.push(
    slowest.length > 0
      ? {
          name: 'slowest units (blame)',
          status: 'passed',
          durationMs: extraMs,
          output: slowest.map((b) => `${formatDuration(b.ms).padStart(8)} ${b.unit}`).join('\n')
        }
      : {
          name: 'slowest units (blame)',
          status: 'skipped',
          durationMs: extraMs,
          output: `no unit start times from systemctl show: ${why}`
        },
    boot.criticalChain !== undefined
      ? {
          name: 'critical chain',
          status: 'passed',
          durationMs: extraMs,
          output: trimOutput(boot.criticalChain)
        }
      : {
          name: 'critical chain',
          status: 'skipped',
          durationMs: extraMs,
          output: `no critical chain (default target or boot marks missing): ${why}`
        },
    used !== undefined
      ? {
          name: 'memory in use',
          status: 'passed',
          durationMs: extraMs,
          output: `${used} MiB (MemTotal − MemAvailable)`
        }
      : {
          name: 'memory in use',
          status: 'skipped',
          durationMs: extraMs,
          output: `cannot read /proc/meminfo: ${why}`
        }
  )

  for (const b of judgeBudgets(budgetChecks(p, boot, ctx.report.timings.sshReadyMs))) {
    results.push({ name: b.name, status: b.status, durationMs: 0, output: b.output, ...at(b.key) })
  }
  return results
}
