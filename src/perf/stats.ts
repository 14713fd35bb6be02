import type { BaseStats } from './model.js'

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2
}

/** Median and a robust spread (1.4826 × MAD, σ for normal noise) of the base values. */
export function baseStats(xs: number[]): BaseStats {
  const m = median(xs)
  const mad = median(xs.map((x) => Math.abs(x - m)))
  return {
    median: m,
    spread: 1.4826 * mad,
    min: Math.min(...xs),
    max: Math.max(...xs),
    n: xs.length
  }
}
