import type { Failure, Report } from '../report/model.js'
import { errorMessage } from '../util/errors.js'
import { runnerHostName } from '../vm/runner.js'
import type { Logger } from '../util/log.js'
import { comparePerf } from './compare.js'
import { emptyHistory, historyKey, PERF_DEFAULTS, withRun } from './history.js'
import { metricsOf } from './metrics.js'
import type { PerfComparison, RegressionMode } from './model.js'
import { perfHeadline, regressionLines } from './render.js'
import type { PerfStore } from './store.js'

/** The engine's performance-history settings (`perf-*` inputs, `--perf-*` flags). */
export interface PerfOptions {
  store: PerfStore
  thresholdPct: number
  regression: RegressionMode
  /** The name the history is kept under; default the configuration, else the runner's name. */
  subject?: string
}

/** The run's failure when `regression: fail` and something regressed. */
export function regressionFailure(c: PerfComparison): Failure {
  return {
    stage: 'performance',
    kind: 'perf-regression',
    check: c.regressions.join(', '),
    message: `slower than ${c.baseline}: ${regressionLines(c).join('; ')}`,
    excerpt: regressionLines(c).join('\n')
  }
}

/**
 * Compares a passed run with its history, records it, and, with `regression: fail`, fails it on a
 * regression (docs/performance-history.md). A failed run is neither compared nor recorded: its
 * numbers are partial. A history that cannot be read or saved is a warning, never a failure.
 */
export async function applyPerf(r: Report, o: PerfOptions, log: Logger): Promise<void> {
  if (r.conclusion !== 'success' || r.accelerator === 'none') {
    log.info('performance history: the run failed, so it is neither compared nor recorded')
    return
  }
  const subject = o.subject ?? r.configuration ?? runnerHostName(r.runner ?? 'vm')
  const key = historyKey({
    subject,
    system: r.system,
    accelerator: r.accelerator,
    emulated: r.emulated
  })
  const metrics = metricsOf(r)
  const opts = {
    baseline: o.store.baseline,
    thresholdPct: o.thresholdPct,
    regression: o.regression
  }
  let history
  try {
    history = await o.store.load(key)
  } catch (err) {
    r.perf = { ...comparePerf(undefined, metrics, key, opts), error: errorMessage(err) }
    log.warning(perfHeadline(r.perf))
    return
  }
  const c = comparePerf(history, metrics, key, opts)
  r.perf = c
  if (o.store.record) c.recorded = await record(o, history ?? emptyHistory(key), r, log)
  log.info(perfHeadline(c))
  for (const line of regressionLines(c)) log.warning(`performance regression: ${line}`)
  if (c.regressions.length > 0 && o.regression === 'fail') {
    r.failure = regressionFailure(c)
    r.conclusion = 'failure'
  }
}

async function record(
  o: PerfOptions,
  history: ReturnType<typeof emptyHistory>,
  r: Report,
  log: Logger
): Promise<boolean> {
  const run = {
    at: r.startedAt,
    ...(o.store.commit !== undefined ? { commit: o.store.commit } : {}),
    ...(o.store.ref !== undefined ? { ref: o.store.ref } : {}),
    metrics: metricsOf(r)
  }
  try {
    await o.store.save(withRun(history, run, PERF_DEFAULTS.keep))
    return true
  } catch (err) {
    log.warning(`performance history not saved: ${errorMessage(err)}`)
    return false
  }
}
