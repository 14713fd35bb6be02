import { formatDuration } from '../util/duration.js'
import { escapeMarkdown } from '../util/markdown.js'
import type { MetricComparison, MetricUnit, PerfComparison } from './model.js'

export function formatMetric(v: number, unit: MetricUnit): string {
  if (unit === 'ms') return formatDuration(v)
  if (unit === 'MiB') return `${Math.round(v)} MiB`
  const mib = v / (1024 * 1024)
  return mib >= 1024 ? `${(mib / 1024).toFixed(2)} GiB` : `${mib.toFixed(1)} MiB`
}

const VERDICT: Record<MetricComparison['verdict'], string> = {
  regression: '🔺 regression',
  improvement: '🔻 faster/smaller',
  unchanged: 'within noise',
  new: 'no base yet'
}

const signed = (pct: number): string => `${pct > 0 ? '+' : ''}${pct.toFixed(1)} %`

function row(m: MetricComparison): string {
  const base =
    m.base !== undefined
      ? `${formatMetric(m.base.median, m.unit)} (±${formatMetric(m.base.spread, m.unit)}, n=${m.base.n})`
      : '—'
  const change = m.changePct !== undefined ? signed(m.changePct) : '—'
  return `| ${escapeMarkdown(m.label)} | ${base} | ${formatMetric(m.value, m.unit)} | ${change} | ${VERDICT[m.verdict]} |`
}

/** One line: what was compared with what, and the outcome. */
export function perfHeadline(c: PerfComparison): string {
  if (c.error !== undefined) return `no performance comparison: ${c.error}`
  if (c.baseRuns < c.minRuns)
    return `performance: ${c.baseRuns} of ${c.minRuns} base runs on ${c.baseline} so far: nothing judged yet${c.recorded ? ' (this run was recorded)' : ''}`
  const what =
    c.regressions.length > 0
      ? `${c.regressions.length} regression${c.regressions.length > 1 ? 's' : ''}: ${c.regressions.join(', ')}`
      : 'no regression'
  return `performance vs the last ${c.baseRuns} runs on ${c.baseline} (threshold ${c.thresholdPct} %): ${what}`
}

/** The comparison in one short table cell (the roll-up's Performance column). */
export function perfCell(c: PerfComparison): string {
  if (c.error !== undefined) return '⚠️ no comparison'
  if (c.baseRuns < c.minRuns) return `no base yet (${c.baseRuns} of ${c.minRuns})`
  const regressed = c.metrics.filter((m) => m.verdict === 'regression')
  if (regressed.length === 0) return `✅ within noise of ${c.baseRuns} runs`
  const shown = regressed
    .slice(0, 3)
    .map((m) => `${m.label} ${m.changePct !== undefined ? signed(m.changePct) : ''}`.trim())
  const more = regressed.length > 3 ? ` and ${regressed.length - 3} more` : ''
  return `🔺 ${shown.join(', ')}${more}`
}

/** Regressed metrics in words, for the log and the failure. */
export function regressionLines(c: PerfComparison): string[] {
  return c.metrics
    .filter((m) => m.verdict === 'regression' && m.base !== undefined)
    .map(
      (m) =>
        `${m.label}: ${formatMetric(m.value, m.unit)} vs a base median of ${formatMetric(m.base?.median ?? 0, m.unit)} (${signed(m.changePct ?? 0)}, base spread ±${formatMetric(m.base?.spread ?? 0, m.unit)} over ${m.base?.n ?? 0} runs)`
    )
}

/**
 * A Mermaid xychart of the base runs' boot times with this run last: a line through all of them,
 * and one bar marking this run (GitHub renders `xychart-beta`).
 */
export function perfChart(c: PerfComparison): string {
  const points = c.trend.filter((t) => t.bootMs !== undefined)
  if (points.length < 2) return ''
  const secs = points.map((t) => Math.round((t.bootMs as number) / 100) / 10)
  const top = Math.ceil(Math.max(...secs) * 1.2) || 1
  return [
    '```mermaid',
    'xychart-beta',
    `  title "Boot time (s) on ${c.baseline.replace(/"/g, "'")}, this run last"`,
    `  x-axis [${points.map((t) => JSON.stringify(t.label)).join(', ')}]`,
    `  y-axis "seconds" 0 --> ${top}`,
    `  line [${secs.join(', ')}]`,
    `  bar [${secs.map((s, i) => (points[i].current === true ? s : 0)).join(', ')}]`,
    '```'
  ].join('\n')
}

/** The summary's section: headline, the changed metrics, the rest folded, and the chart. */
export function perfSection(c: PerfComparison): string {
  const parts = ['### Performance', '', escapeMarkdown(perfHeadline(c)), '']
  if (c.error !== undefined || c.metrics.length === 0) return parts.join('\n')
  const head = [
    '| Metric | Base median | This run | Change | Verdict |',
    '| --- | --- | --- | --- | --- |'
  ]
  const changed = c.metrics.filter((m) => m.verdict === 'regression' || m.verdict === 'improvement')
  const rest = c.metrics.filter((m) => !changed.includes(m))
  if (changed.length > 0) parts.push(...head, ...changed.map(row), '')
  if (rest.length > 0)
    parts.push(
      `<details${changed.length === 0 ? ' open' : ''}><summary>${rest.length} metric${rest.length > 1 ? 's' : ''} within noise or without a base</summary>`,
      '',
      ...head,
      ...rest.map(row),
      '',
      '</details>',
      ''
    )
  const chart = perfChart(c)
  if (chart !== '') parts.push(chart, '')
  return parts.join('\n')
}
