import { formatDuration } from '../util/duration.js'
import { Deadline } from '../util/time.js'
import type { BootAnalysis, CheckResult, Report, Responsiveness } from '../report/model.js'
import type { ChecksFile, PerformanceSection, PerformanceBudget, PerformanceSpec } from './model.js'
import type { ExecResult } from '../ssh/client.js'
import { combined, describeExit, lastAttempt, type Guest } from '../ssh/guest.js'
import type { SectionParser } from './reader.js'
import { trimOutput, type RunContext } from './run.js'
import { runContext, type StageUnit } from './unit.js'
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

/** What the stage measured: the evidence command's parts and systemd-analyze time. */
interface Measured {
  evidence: ExecResult
  parts: ReturnType<typeof splitEvidence>
  timeRun: ExecResult
  parsed: AnalyzeTime | undefined
}

const notYet = (r: ExecResult): boolean =>
  /not yet finished|try again later/i.test(r.stdout + r.stderr)

/**
 * One command for everything once the boot has ended (the pipeline starts this stage then): the
 * phases, the unit timestamps (blame and critical chain are computed here, see unit-times.ts) and
 * the memory in use. Run before the end (no system stage), it polls systemd-analyze time alone
 * until the boot has finished, then asks for the rest.
 */
async function measure(guest: Guest, deadline: Deadline): Promise<Measured> {
  const evidenceRun = (): Promise<ExecResult> =>
    guest.run(EVIDENCE_COMMAND, {
      timeoutMs: Math.min(60_000, Math.max(1000, deadline.remaining()))
    })
  let evidence = await evidenceRun()
  let parts = splitEvidence(evidence.stdout)
  const first: ExecResult = {
    ...evidence,
    stdout: parts.time,
    code: parts.timeCode ?? evidence.code
  }
  const firstParsed = parseAnalyzeTime(first.stdout)
  if (firstParsed !== undefined || !notYet(first))
    return { evidence, parts, timeRun: first, parsed: firstParsed }
  const timed = await guest
    .waitUntil(
      async (remaining) => {
        const r = await guest.run('systemd-analyze time 2>&1', {
          timeoutMs: Math.min(60_000, Math.max(1000, remaining))
        })
        const t = parseAnalyzeTime(r.stdout)
        return { done: t !== undefined || !notYet(r), value: { r, t }, output: combined(r) }
      },
      deadline,
      2000
    )
    .catch(lastAttempt<{ r: ExecResult; t: AnalyzeTime | undefined }>)
  if (timed.t !== undefined) {
    evidence = await evidenceRun()
    parts = splitEvidence(evidence.stdout)
  }
  return { evidence, parts, timeRun: timed.r, parsed: timed.t }
}

/** The systemd-analyze time check; records the phases into `boot`. */
function timeResult(
  m: Measured,
  boot: BootAnalysis,
  timeMs: number,
  timeoutMs: number
): Omit<CheckResult, 'file' | 'line'> {
  const { parsed, timeRun } = m
  if (parsed !== undefined) {
    if (parsed.kernelMs !== undefined) boot.kernelMs = parsed.kernelMs
    if (parsed.initrdMs !== undefined) boot.initrdMs = parsed.initrdMs
    if (parsed.userspaceMs !== undefined) boot.userspaceMs = parsed.userspaceMs
    boot.totalMs = parsed.totalMs
    return {
      name: 'systemd-analyze time',
      status: 'passed',
      durationMs: timeMs,
      output: trimOutput(timeRun.stdout)
    }
  }
  const why = /not yet finished/i.test(timeRun.stdout)
    ? `the boot was still not finished after ${formatDuration(timeoutMs)}`
    : describeExit(timeRun)
  return {
    name: 'systemd-analyze time',
    status: 'failed',
    durationMs: timeMs,
    output: trimOutput(`systemd-analyze time: ${why}\n${combined(timeRun)}`)
  }
}

/** One evidence result: passed with what was found, or skipped saying why not. */
function evidenceResult(
  name: string,
  durationMs: number,
  found: string | undefined,
  missing: string
): CheckResult {
  return found !== undefined
    ? { name, status: 'passed', durationMs, output: found }
    : { name, status: 'skipped', durationMs, output: missing }
}

/**
 * Blame, critical chain and memory in use, recorded into `boot`. Evidence, not verdicts: a guest
 * without these tools is not a failed validation.
 */
function evidenceResults(m: Measured, boot: BootAnalysis): CheckResult[] {
  const extraMs = m.evidence.durationMs
  const dump = parseUnitDump(m.parts.units)
  const slowest = blameFromDump(dump)
  if (slowest.length > 0) boot.blame = slowest
  const chain = criticalChainFromDump(dump)
  if (chain !== '') boot.criticalChain = chain
  const used = parseMemoryUsedMiB(m.parts.meminfo)
  if (used !== undefined) boot.memoryUsedMiB = used
  const why = `${describeExit(m.evidence)}\n${trimOutput(combined(m.evidence), 500)}`
  return [
    evidenceResult(
      'slowest units (blame)',
      extraMs,
      slowest.length > 0
        ? slowest.map((b) => `${formatDuration(b.ms).padStart(8)} ${b.unit}`).join('\n')
        : undefined,
      `no unit start times from systemctl show: ${why}`
    ),
    evidenceResult(
      'critical chain',
      extraMs,
      boot.criticalChain !== undefined ? trimOutput(boot.criticalChain) : undefined,
      `no critical chain (default target or boot marks missing): ${why}`
    ),
    evidenceResult(
      'memory in use',
      extraMs,
      used !== undefined ? `${used} MiB (MemTotal − MemAvailable)` : undefined,
      `cannot read /proc/meminfo: ${why}`
    )
  ]
}

const MARK_PROBE = '@@nvv-probe@@'
/** Tries of each probe; the median counts. */
export const PROBE_TRIES = { ssh: 5, guest: 3 } as const

/**
 * A fixed shell loop (CPU) and an 8 MiB write synced to /var/tmp (disk), each timed by the guest's
 * own clock in milliseconds, PROBE_TRIES.guest times: one line `@@nvv-probe@@ <cpu> <disk>` each.
 */
export const PROBE_COMMAND = `for k in ${Array.from({ length: PROBE_TRIES.guest }, (_, i) => i + 1).join(' ')}; do t0=$(date +%s%N); i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; t1=$(date +%s%N); f=/var/tmp/.nvv-probe-$$; dd if=/dev/zero of=$f bs=1M count=8 conv=fsync 2>/dev/null; t2=$(date +%s%N); rm -f $f; echo "${MARK_PROBE} $(( (t1-t0)/1000000 )) $(( (t2-t1)/1000000 ))"; done`

const middle = (xs: number[]): number | undefined => {
  if (xs.length === 0) return undefined
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

/** The probe lines' medians (a guest without `date +%N` or dd gives none). */
export function parseProbes(stdout: string): Pick<Responsiveness, 'cpuProbeMs' | 'diskProbeMs'> {
  const rows = [...stdout.matchAll(new RegExp(`^${MARK_PROBE} (\\d+) (\\d+)$`, 'gm'))]
  const cpu = middle(rows.map((m) => Number(m[1])))
  const disk = middle(rows.map((m) => Number(m[2])))
  return {
    ...(cpu !== undefined ? { cpuProbeMs: cpu } : {}),
    ...(disk !== undefined ? { diskProbeMs: disk } : {})
  }
}

/**
 * Responsiveness, the third measure of the guest's performance: the median round trip of `true`
 * over the open SSH session, and the guest-timed CPU and disk probes. Evidence, not a verdict.
 */
async function responsiveness(
  guest: Guest,
  deadline: Deadline
): Promise<{ result: CheckResult; found: Responsiveness }> {
  const started = Date.now()
  const trips: number[] = []
  for (let i = 0; i < PROBE_TRIES.ssh && deadline.remaining() > 1000; i++) {
    const r = await guest.run('true', { timeoutMs: Math.min(10_000, deadline.remaining()) })
    if (r.code === 0) trips.push(r.durationMs)
  }
  const probe = await guest.run(PROBE_COMMAND, {
    timeoutMs: Math.min(60_000, Math.max(1000, deadline.remaining()))
  })
  const sshRoundTripMs = middle(trips)
  const found: Responsiveness = {
    ...(sshRoundTripMs !== undefined ? { sshRoundTripMs } : {}),
    ...parseProbes(probe.stdout)
  }
  const parts = [
    found.sshRoundTripMs !== undefined
      ? `SSH round trip ${formatDuration(found.sshRoundTripMs)}`
      : '',
    found.cpuProbeMs !== undefined ? `CPU probe ${formatDuration(found.cpuProbeMs)}` : '',
    found.diskProbeMs !== undefined ? `disk probe ${formatDuration(found.diskProbeMs)}` : ''
  ].filter(Boolean)
  const result = evidenceResult(
    'responsiveness',
    Date.now() - started,
    parts.length > 0 ? `${parts.join(' · ')} (medians)` : undefined,
    `no probe answered: ${describeExit(probe)}\n${trimOutput(combined(probe), 500)}`
  )
  return { result, found }
}

/**
 * Stage `performance`: waits (bounded) until systemd reports the boot finished, records the
 * phases, the 10 slowest units, the critical chain and the memory in use into `report.boot`
 * (always, also within budget), then checks each budget.
 */
export async function performanceStage(
  ctx: RunContext & { report: Report },
  checks: ChecksFile & PerformanceSection
): Promise<CheckResult[]> {
  const p = checks.performance ?? { timeoutMs: PERFORMANCE_TIMEOUTS.performance, lines: {} }
  const at = (key?: PerformanceBudget): Pick<CheckResult, 'file' | 'line'> => {
    const line = key !== undefined ? (p.lines[key] ?? p.line) : p.line
    return {
      ...(p.file !== undefined ? { file: p.file } : {}),
      ...(line !== undefined ? { line } : {})
    }
  }
  const started = Date.now()
  const m = await measure(ctx.guest, new Deadline(Math.min(p.timeoutMs, ctx.deadline.remaining())))
  const timeMs = Date.now() - started
  const boot: BootAnalysis = ctx.report.boot ?? {}
  ctx.report.boot = boot
  const probed = await responsiveness(ctx.guest, ctx.deadline)
  if (Object.keys(probed.found).length > 0) ctx.report.responsiveness = probed.found
  const results: CheckResult[] = [
    { ...timeResult(m, boot, timeMs, p.timeoutMs), ...at() },
    ...evidenceResults(m, boot),
    probed.result
  ]
  for (const b of judgeBudgets(budgetChecks(p, boot, ctx.report.timings.sshReadyMs))) {
    results.push({ name: b.name, status: b.status, durationMs: 0, output: b.output, ...at(b.key) })
  }
  return results
}

/** Per-check timeouts of this stage when the file gives none. */
export const PERFORMANCE_TIMEOUTS = { performance: 5 * 60_000 } as const

const DURATION_BUDGETS = {
  bootTime: 'bootTimeMs',
  kernel: 'kernelMs',
  initrd: 'initrdMs',
  userspace: 'userspaceMs',
  sshReady: 'sshReadyMs'
} as const

/** `performance: {bootTime, kernel, initrd, userspace, sshReady, memoryUsedMiB, timeout}` */
const parsePerformance: SectionParser<PerformanceSection> = (s, { key, value }, config) => {
  const m = s.r.map(value, 'performance', [
    ...Object.keys(DURATION_BUDGETS),
    'memoryUsedMiB',
    'timeout'
  ])
  if (m === undefined) return
  const p: PerformanceSpec = {
    ...s.at(key),
    timeoutMs: s.timeoutOf(m, 'performance', PERFORMANCE_TIMEOUTS.performance),
    lines: {}
  }
  for (const [k, field] of Object.entries(DURATION_BUDGETS)) {
    const e = m.get(k)
    if (e === undefined) continue
    p[field] = s.r.duration(e.value, `performance.${k}`)
    p.lines[k as PerformanceBudget] = s.r.line(e.key)
  }
  const mem = m.get('memoryUsedMiB')
  if (mem !== undefined) {
    p.memoryUsedMiB = s.r.number(mem.value, 'performance.memoryUsedMiB')
    p.lines.memoryUsedMiB = s.r.line(mem.key)
  }
  config.performance = p
}

export const performanceUnit: StageUnit<
  'performance',
  PerformanceSection,
  typeof PERFORMANCE_TIMEOUTS
> = {
  name: 'performance',
  sections: { performance: parsePerformance },
  // It names nothing guest-specific: without the section it runs and only records.
  fileBase: () => ({ performance: { timeoutMs: PERFORMANCE_TIMEOUTS.performance, lines: {} } }),
  // Sized for the slowest case (aarch64 under TCG): they catch a VM that got several times
  // slower, not a slow runner. Kernel/initrd/userspace are recorded without a budget.
  defaults: () => ({
    performance: {
      bootTimeMs: 10 * 60_000,
      sshReadyMs: 15 * 60_000,
      timeoutMs: PERFORMANCE_TIMEOUTS.performance,
      lines: {}
    }
  }),
  timeouts: PERFORMANCE_TIMEOUTS,
  afterBootEnd: true,
  run: (ctx) => performanceStage(runContext(ctx, 'performance'), ctx.checks)
}
