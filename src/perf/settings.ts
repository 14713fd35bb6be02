import { InputError } from '../util/errors.js'
import { PERF_DEFAULTS } from './history.js'
import type { RegressionMode } from './model.js'

export const PERF_BASELINES = ['auto', 'off'] as const
export type PerfBaseline = (typeof PERF_BASELINES)[number]
export const REGRESSION_MODES = ['warn', 'fail'] as const

export interface PerfSettings {
  baseline: PerfBaseline
  thresholdPct: number
  regression: RegressionMode
}

export const PERF_SETTING_DEFAULTS = {
  baseline: 'auto',
  threshold: `${PERF_DEFAULTS.thresholdPct}%`,
  regression: 'warn'
} as const

function oneOf<T extends string>(text: string, allowed: readonly T[], what: string): T {
  if (!(allowed as readonly string[]).includes(text))
    throw new InputError(`${what}: "${text}" is not allowed; allowed values: ${allowed.join(', ')}`)
  return text as T
}

/** `20`, `20%` or `20 %`: a percentage above 0 and at most 1000. */
export function parseThreshold(text: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*%?\s*$/.exec(text)
  const n = m !== null ? Number(m[1]) : NaN
  if (!(n > 0 && n <= 1000))
    throw new InputError(
      `${what}: "${text}" is not a percentage; allowed values: a number above 0 and at most 1000, with or without %, e.g. 20%`
    )
  return n
}

export const parseBaseline = (text: string, what: string): PerfBaseline =>
  oneOf(text, PERF_BASELINES, what)
export const parseRegression = (text: string, what: string): RegressionMode =>
  oneOf(text, REGRESSION_MODES, what)

type PerfSettingName = 'perf-baseline' | 'perf-threshold' | 'perf-regression'

/**
 * The three settings as either front end spells them (`input "perf-threshold"`,
 * `--perf-threshold`): each bad one recorded by `check`, its default used meanwhile.
 */
export function parsePerfSettings(
  raw: Partial<Record<PerfSettingName, string>>,
  spell: (setting: PerfSettingName) => string,
  check: <T>(setting: PerfSettingName, fn: () => T) => T | undefined = (_s, fn) => fn()
): PerfSettings {
  const d = PERF_SETTING_DEFAULTS
  const get = <T>(n: PerfSettingName, dflt: string, parse: (t: string, w: string) => T): T =>
    check(n, () => parse(raw[n] || dflt, spell(n))) ?? parse(dflt, spell(n))
  return {
    baseline: get('perf-baseline', d.baseline, parseBaseline),
    thresholdPct: get('perf-threshold', d.threshold, parseThreshold),
    regression: get('perf-regression', d.regression, parseRegression)
  }
}
