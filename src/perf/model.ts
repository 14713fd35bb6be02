/**
 * Performance history and the comparison of a run with it (docs/performance-history.md).
 * report.json carries a PerfComparison as `perf`; the history is a small JSON file per
 * configuration × system × accelerator (× emulated), kept by a PerfStore. Add fields, never rename.
 */

export type MetricUnit = 'ms' | 'MiB' | 'bytes'

/** One run's numbers, by metric id (`boot`, `stage:users`, `unit:nginx.service`, …). */
export type Metrics = Record<string, number>

export interface PerfRun {
  /** ISO time the run started. */
  at: string
  /** The commit (GITHUB_SHA), when known. */
  commit?: string
  /** The branch the run was on. */
  ref?: string
  metrics: Metrics
}

export interface PerfHistory {
  schemaVersion: 1
  /** historyKey() of the runs it holds. */
  key: string
  /** Oldest first; at most the kept number (PERF_DEFAULTS.keep). */
  runs: PerfRun[]
}

/** What a metric did against the base. */
export type Verdict = 'regression' | 'improvement' | 'unchanged' | 'new'

export interface BaseStats {
  median: number
  /** Robust spread: 1.4826 × the median absolute deviation (σ for normal noise). */
  spread: number
  min: number
  max: number
  /** Base runs that measured the metric. */
  n: number
}

export interface MetricComparison {
  id: string
  label: string
  unit: MetricUnit
  value: number
  base?: BaseStats
  /** (value − base median) / base median, in percent. */
  changePct?: number
  verdict: Verdict
}

export type RegressionMode = 'warn' | 'fail'

export interface PerfComparison {
  /** historyKey() of this run. */
  key: string
  /** Where the base came from (`main`, a history directory). */
  baseline: string
  /** Base runs compared with (0: none yet). */
  baseRuns: number
  /** Base runs needed before anything is judged. */
  minRuns: number
  /** Percent a metric must worsen by (and beyond the base's spread) to be a regression. */
  thresholdPct: number
  regression: RegressionMode
  metrics: MetricComparison[]
  /** Labels of the regressed metrics. */
  regressions: string[]
  /** The base runs' boot times and this run's, oldest first, for the chart. */
  trend: { label: string; bootMs?: number; current?: true }[]
  /** This run was added to the history. */
  recorded: boolean
  /** Why there is no comparison (the history could not be read). */
  error?: string
}
