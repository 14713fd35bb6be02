import { InputError } from './errors.js'

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/** The longest wait a Node timer can take (2^31 - 1 ms, about 596 h); longer ones fire at once. */
export const MAX_DURATION_MS = 2 ** 31 - 1

/**
 * Parses "90", "90s", "1m30s", "10m", "500ms" into milliseconds (a bare number means seconds).
 * `what` names the option in the error, which lists the accepted forms. Zero is refused unless
 * `zero` says what it means there (a `timeout` of 0 is "none"); longer than a Node timer can
 * wait is refused, and so is a number of more than 9 digits.
 */
export function parseDuration(text: string, what: string, zero?: string): number {
  const s = text.trim()
  const n = '(\\d{1,9}(?:\\.\\d{1,6})?)'
  let total = 0
  if (new RegExp(`^${n}$`).test(s)) total = Number(s) * 1000
  else {
    const re = new RegExp(`${n}(ms|s|m|h)`, 'gy')
    let matched = 0
    let m: RegExpExecArray | null
    while ((m = re.exec(s)) !== null) {
      total += Number(m[1]) * (UNITS[m[2] ?? ''] ?? 0)
      matched = re.lastIndex
    }
    if (s.length === 0 || matched !== s.length) {
      throw new InputError(
        `${what}: "${text}" is not a duration; use a number of seconds or units ms, s, m, h (e.g. 90s, 10m, 1m30s)`
      )
    }
  }
  const ms = Math.round(total)
  if (ms === 0 && zero === undefined)
    throw new InputError(`${what}: "${text}" is zero; give a positive duration (e.g. 90s, 10m)`)
  if (ms > MAX_DURATION_MS)
    throw new InputError(
      `${what}: "${text}" is longer than the longest wait Node can time (${Math.floor(MAX_DURATION_MS / 3_600_000)}h)`
    )
  return ms
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`
  const s = ms / 1000
  if (s < 59.95) return `${s.toFixed(1)}s`
  // Whole seconds first, so 119.6 s is 2m00s, not 1m60s.
  const whole = Math.round(s)
  const m = Math.floor(whole / 60)
  return `${m}m${(whole - m * 60).toString().padStart(2, '0')}s`
}
