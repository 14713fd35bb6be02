import { escapeMarkdown } from '../util/markdown.js'
import type { HomeConsistency, HomeDifference, HomeDifferenceKind } from './model.js'

const GROUPS: { kind: HomeDifferenceKind; title: string; absentIs: string }[] = [
  { kind: 'error', title: 'Homes that fail', absentIs: 'fails' },
  { kind: 'file', title: 'Files managed on some homes only', absentIs: 'missing on' },
  { kind: 'package', title: 'Packages on some homes only', absentIs: 'missing on' },
  { kind: 'unavailable', title: 'Packages unavailable on a platform', absentIs: 'unavailable on' }
]

const code = (s: string): string => `\`${s.replace(/`/g, "'")}\``
const names = (list: string[]): string => (list.length > 0 ? list.map(code).join(', ') : 'none')

/**
 * The section of the job summary and of `home-consistency.md`: one line per home, then what
 * differs, grouped by kind (docs/home-consistency.md says what each means).
 */
export function renderHomeConsistency(c: HomeConsistency): string {
  const lines = [`## Home consistency`, '', `Flake ${code(c.flake)}:`, '']
  for (const h of c.homes) {
    const state =
      h.error !== undefined
        ? '❌ evaluation failed'
        : `${h.files.length} files, ${h.packages.length} packages`
    const built =
      h.built === undefined ? '' : h.built.ok ? ', activation package built' : ', build failed'
    lines.push(`- ${code(h.name)} (${code(h.system)}): ${state}${built}`)
  }
  lines.push('')
  if (c.differences.length === 0) {
    lines.push('✅ Every home evaluates and they manage the same files and packages.')
    return lines.join('\n') + '\n'
  }
  for (const g of GROUPS) {
    const items = c.differences.filter((d) => d.kind === g.kind)
    if (items.length === 0) continue
    lines.push(`### ${g.title} (${items.length})`, '')
    for (const d of items) lines.push(`- ${differenceLine(d, g.absentIs)}`)
    lines.push('')
  }
  return lines.join('\n')
}

function differenceLine(d: HomeDifference, absentIs: string): string {
  const detail = d.detail !== undefined ? `: ${escapeMarkdown(d.detail)}` : ''
  if (d.kind === 'error') return `${code(d.item)}${detail}`
  const on = `${absentIs} ${names(d.absent)}`
  return `${code(d.item)} — ${on}${d.kind === 'unavailable' ? detail : `; present on ${names(d.present)}`}`
}
