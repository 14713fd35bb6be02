import type { Accelerator, GuestSystem } from '../vm/system.js'
import type { Metrics, PerfHistory, PerfRun } from './model.js'

/** Runs a history keeps, and base runs a comparison uses (the most recent). */
export const PERF_DEFAULTS = { keep: 20, baseRuns: 10, minRuns: 3, thresholdPct: 20 } as const

/**
 * One history per configuration × system × accelerator (× emulated): KVM and TCG numbers, or a
 * native and an emulated leg, are never compared.
 */
export function historyKey(o: {
  subject: string
  system: GuestSystem
  accelerator: Accelerator | 'none'
  emulated: boolean
}): string {
  const subject = o.subject.replace(/[^A-Za-z0-9._-]+/g, '_')
  return `${subject}-${o.system}-${o.accelerator}${o.emulated ? '-emulated' : ''}`
}

export function emptyHistory(key: string): PerfHistory {
  return { schemaVersion: 1, key, runs: [] }
}

/** A history file's content, checked; an unreadable one is an Error naming what is wrong. */
export function parseHistory(text: string, key: string): PerfHistory {
  const h = JSON.parse(text) as Partial<PerfHistory>
  if (h.schemaVersion !== 1 || !Array.isArray(h.runs))
    throw new Error(`not a performance history (schemaVersion 1 with runs[])`)
  const runs = h.runs.filter(
    (r): r is PerfRun =>
      typeof r === 'object' && r !== null && typeof r.at === 'string' && isMetrics(r.metrics)
  )
  return { schemaVersion: 1, key: h.key ?? key, runs }
}

function isMetrics(m: unknown): m is Metrics {
  return (
    typeof m === 'object' &&
    m !== null &&
    Object.values(m).every((v) => typeof v === 'number' && Number.isFinite(v))
  )
}

/** The history with one more run, the oldest dropped beyond `keep`. */
export function withRun(
  h: PerfHistory,
  run: PerfRun,
  keep: number = PERF_DEFAULTS.keep
): PerfHistory {
  return { ...h, runs: [...h.runs, run].slice(-keep) }
}
