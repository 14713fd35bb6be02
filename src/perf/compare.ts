import { METRICS, metricDef } from './metrics.js'
import type {
  MetricComparison,
  Metrics,
  PerfComparison,
  PerfHistory,
  PerfRun,
  RegressionMode,
  Verdict
} from './model.js'
import { baseStats } from './stats.js'
import { PERF_DEFAULTS } from './history.js'

export interface CompareOptions {
  /** Where the base came from, for the reader (`main`, a directory). */
  baseline: string
  thresholdPct: number
  regression: RegressionMode
  minRuns?: number
  baseRuns?: number
}

/** How far beyond the base's spread (in robust σ) a change must be to count. */
export const SPREAD_FACTOR = 3

/**
 * A metric is a regression when it is worse than the base median by more than the threshold,
 * beyond SPREAD_FACTOR × the base's own spread, and by more than its floor (a 20 % change of a
 * 50 ms stage is noise): docs/performance-history.md. Improvements mirror it.
 */
export function judge(
  value: number,
  base: { median: number; spread: number },
  thresholdPct: number,
  floor: number
): Verdict {
  const delta = value - base.median
  const beyond = (d: number): boolean =>
    d > (thresholdPct / 100) * base.median && d > SPREAD_FACTOR * base.spread && d > floor
  if (beyond(delta)) return 'regression'
  if (beyond(-delta)) return 'improvement'
  return 'unchanged'
}

/** Fixed metrics in their order, then stages, then units. */
function metricOrder(ids: string[]): string[] {
  const fixed = Object.keys(METRICS)
  const rank = (id: string): number => {
    const i = fixed.indexOf(id)
    if (i >= 0) return i
    return id.startsWith('stage:') ? fixed.length : fixed.length + 1
  }
  return [...ids].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b))
}

function compareMetric(
  id: string,
  value: number,
  base: PerfRun[],
  o: CompareOptions
): MetricComparison {
  const def = metricDef(id) ?? { label: id, unit: 'ms' as const, floor: 0 }
  const values = base.map((r) => r.metrics[id]).filter((v): v is number => v !== undefined)
  const minRuns = o.minRuns ?? PERF_DEFAULTS.minRuns
  const head = { id, label: def.label, unit: def.unit, value }
  if (values.length < minRuns) return { ...head, verdict: 'new' }
  const stats = baseStats(values)
  return {
    ...head,
    base: stats,
    ...(stats.median > 0
      ? { changePct: Math.round(((value - stats.median) / stats.median) * 1000) / 10 }
      : {}),
    verdict: judge(value, stats, o.thresholdPct, def.floor)
  }
}

/** A short label of a base run for the chart: its commit, else its place in the history. */
function runLabel(r: PerfRun, i: number): string {
  return r.commit !== undefined ? r.commit.slice(0, 7) : `run ${i + 1}`
}

/** This run's metrics against the most recent base runs of its history. */
export function comparePerf(
  history: PerfHistory | undefined,
  current: Metrics,
  key: string,
  o: CompareOptions
): PerfComparison {
  const base = (history?.runs ?? []).slice(-(o.baseRuns ?? PERF_DEFAULTS.baseRuns))
  const metrics = metricOrder(Object.keys(current)).map((id) =>
    compareMetric(id, current[id], base, o)
  )
  return {
    key,
    baseline: o.baseline,
    baseRuns: base.length,
    minRuns: o.minRuns ?? PERF_DEFAULTS.minRuns,
    thresholdPct: o.thresholdPct,
    regression: o.regression,
    metrics,
    regressions: metrics.filter((m) => m.verdict === 'regression').map((m) => m.label),
    trend: [
      ...base.map((r, i) => ({ label: runLabel(r, i), bootMs: r.metrics.boot })),
      { label: 'this run', bootMs: current.boot, current: true as const }
    ],
    recorded: false
  }
}
