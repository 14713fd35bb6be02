import { InputError } from './errors.js'

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/**
 * Parses "90", "90s", "1m30s", "10m", "500ms" into milliseconds (a bare number means seconds).
 * `what` names the option in the error, which lists the accepted forms.
 */
export function parseDuration(text: string, what: string): number {
  const s = text.trim()
  if (/^\d+(\.\d+)?$/.test(s)) return Math.round(Number(s) * 1000)
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy
  let total = 0
  let matched = 0
  let m: RegExpExecArray | null
  while ((m = re.exec(s)) !== null) {
    total += Number(m[1]) * (UNITS[m[2]] ?? 0)
    matched = re.lastIndex
  }
  if (s.length === 0 || matched !== s.length) {
    throw new InputError(
      `${what}: "${text}" is not a duration; use a number of seconds or units ms, s, m, h (e.g. 90s, 10m, 1m30s)`
    )
  }
  return Math.round(total)
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
