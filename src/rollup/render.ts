import type { HomeConsistency, HomeDifference } from '../home/model.js'
import type { Status } from '../report/model.js'
import { clip } from '../report/render.js'
import { formatDuration } from '../util/duration.js'
import { escapeMarkdown } from '../util/markdown.js'
import { legLabel, type HomeSource, type RollUp, type RollUpLeg } from './model.js'

const CELL: Record<Status, string> = { passed: '✅', failed: '❌', skipped: '⏭️' }
/** A stage the leg did not run (or never reached). */
const NO_CELL = '—'

/** The check run's title and the summary's headline, in plain text. */
export function rollUpTitle(r: RollUp): string {
  const passed = r.legs.filter((l) => l.conclusion === 'success').length
  const total = r.legs.length + r.missing.length
  if (total === 0) return 'No VM validation legs found'
  const missing = r.missing.length > 0 ? `, ${r.missing.length} missing` : ''
  return passed === total
    ? `All ${total} leg${total > 1 ? 's' : ''} passed`
    : `${passed} of ${total} legs passed${missing}`
}

/** Stage names in the order the legs ran them (first appearance). */
function stageColumns(legs: RollUpLeg[]): string[] {
  return [...new Set(legs.flatMap((l) => Object.keys(l.stages)))]
}

function verdict(l: RollUpLeg): string {
  if (l.conclusion === 'success') return '✅ passed'
  return `❌ ${escapeMarkdown(clip(l.failure ?? 'failed', 200))}`
}

function bootCell(l: RollUpLeg): string {
  const accel = l.accelerator === 'none' ? '' : ` (${l.accelerator.toUpperCase()})`
  return l.bootMs !== undefined ? `${formatDuration(l.bootMs)}${accel}` : NO_CELL
}

/** The legs × stages table: each leg's verdict, boot time and artifact beside its stages. */
export function legsTable(r: RollUp): string {
  if (r.legs.length === 0) return ''
  const stages = stageColumns(r.legs)
  // The column only when some leg compared itself with its base branch's history.
  const perf = r.legs.some((l) => l.perf !== undefined)
  const head = ['Leg', 'Verdict', 'Boot', ...(perf ? ['Performance'] : []), ...stages, 'Artifact']
  const rows = r.legs.map((l) => {
    const cells = stages.map((s) => {
      const st = l.stages[s] as Status | undefined
      return st !== undefined ? CELL[st] : NO_CELL
    })
    const artifact =
      l.artifactUrl !== undefined
        ? `[${escapeMarkdown(l.artifactName)}](${l.artifactUrl})`
        : escapeMarkdown(l.artifactName)
    const perfCells = perf ? [l.perf !== undefined ? escapeMarkdown(l.perf) : NO_CELL] : []
    return [escapeMarkdown(legLabel(l)), verdict(l), bootCell(l), ...perfCells, ...cells, artifact]
  })
  return [head, head.map(() => '---'), ...rows].map((c) => `| ${c.join(' | ')} |`).join('\n')
}

/** The "Missing legs" line: legs the `legs` input expects that never uploaded their artifact. */
export function missingLine(r: RollUp): string {
  if (r.missing.length === 0) return ''
  const names = r.missing.map((m) => `\`${escapeMarkdown(m.entry)}\``).join(', ')
  return `**Missing legs:** ${names} — no artifact was uploaded (the job was cancelled, timed out, never started, or its runner was lost); each counts as a failure.`
}

export function differencesList(r: RollUp): string {
  if (r.differences.length === 0) return ''
  const icon = { check: '⚠️', package: '📦', 'boot-time': '⏱️' } as const
  const lines = r.differences.map(
    (d) => `- ${icon[d.kind]} **${escapeMarkdown(d.group)}**: ${escapeMarkdown(d.detail)}`
  )
  return ['### Differences between legs', '', ...lines].join('\n')
}

function homeDifferenceLine(d: HomeDifference): string {
  const what = { file: 'file', package: 'package', unavailable: 'package', error: 'evaluation' }[
    d.kind
  ]
  const absent =
    d.kind === 'unavailable' ? 'unavailable on' : d.kind === 'error' ? 'fails on' : 'missing on'
  const detail = d.detail !== undefined ? ` — ${escapeMarkdown(clip(d.detail, 300))}` : ''
  const present = d.present.length > 0 ? `; present on ${escapeMarkdown(d.present.join(', '))}` : ''
  return `- ${what} \`${escapeMarkdown(d.item)}\`: ${absent} ${escapeMarkdown(d.absent.join(', '))}${present}${detail}`
}

function homeErrors(h: HomeConsistency): string[] {
  return h.homes.flatMap((e) => {
    if (e.error === undefined) return []
    const at =
      e.error.file !== undefined
        ? ` at \`${escapeMarkdown(`${e.error.file}${e.error.line !== undefined ? `:${e.error.line}` : ''}`)}\``
        : ''
    return [
      `- ❌ ${escapeMarkdown(e.name)} (${escapeMarkdown(e.system)}) does not evaluate${at}: ${escapeMarkdown(clip(e.error.message, 400))}`
    ]
  })
}

/** Home Manager across Linux and Darwin: what differs, and evaluations that fail (with file:line). */
export function homeSection(sources: HomeSource[]): string {
  return sources
    .map((s) => {
      const h = s.consistency
      const homes = h.homes.map((e) => `${e.name} (${e.system})`).join(', ')
      const from =
        s.artifactUrl !== undefined
          ? ` ([${escapeMarkdown(s.artifactName)}](${s.artifactUrl}))`
          : ''
      const errors = homeErrors(h)
      const diffs = h.differences.filter((d) => d.kind !== 'error').map(homeDifferenceLine)
      const body =
        errors.length + diffs.length === 0
          ? ['✅ Linux and Darwin agree: same files and packages.']
          : [...errors, ...diffs]
      return [`### Home Manager: ${escapeMarkdown(homes)}${from}`, '', ...body].join('\n')
    })
    .join('\n\n')
}

/** The whole roll-up as Markdown: job summary, check run text and comment alike. */
export function renderRollUp(r: RollUp, o: { runUrl?: string } = {}): string {
  const icon = r.conclusion === 'success' ? '✅' : '❌'
  const run = o.runUrl !== undefined ? ` ([workflow run](${o.runUrl}))` : ''
  const parts = [
    `## VM validation: all legs`,
    `${icon} **${rollUpTitle(r)}**${run}`,
    legsTable(r),
    missingLine(r),
    differencesList(r),
    homeSection(r.home)
  ]
  return `${parts.filter((p) => p !== '').join('\n\n')}\n`
}
