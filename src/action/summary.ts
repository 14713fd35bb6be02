import { open } from 'node:fs/promises'
import { failureKind } from '../report/failure.js'
import type { Failure, Report } from '../report/model.js'
import { clip, conclusionLine, renderSummary } from '../report/render.js'
import { formatDuration } from '../util/duration.js'
import { stripAnsi } from '../vm/console.js'
import { LIMITS, truncateMarkdown } from '../github/limits.js'
import type { CheckRunOutput } from '../github/check-run.js'
import { escapeMarkdown, fence, sliceChars } from '../util/markdown.js'
import { runnerHostName } from '../vm/runner.js'

export { fence }

/** Links and notes every rendering shares. */
export interface SummaryContext {
  artifactUrl?: string
  /** Why there is no artifact link (skipped or failed upload), shown instead. */
  artifactNote?: string
  runUrl?: string
  /** Raw console log (or its tail): the excerpt around the failure comes from it. */
  consoleText?: string
}

const EXCERPT_BEFORE = 40
const EXCERPT_AFTER = 20
const EXCERPT_LINE_MAX = 400
const EXCERPT_MAX_CHARS = 16_000
/** Read at most this much of the end of console.log: the failure is near the end. */
export const CONSOLE_TAIL_BYTES = 2 * 1024 * 1024

// Serial consoles carry terminal control bytes; a summary shows none of them (\t and \n stay).
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\x00-\x08\x0b-\x1f\x7f]/g

/** The last `maxBytes` of a file (a console log can be huge); '' when it does not exist. */
export async function readTail(path: string, maxBytes = CONSOLE_TAIL_BYTES): Promise<string> {
  let fh
  try {
    fh = await open(path, 'r')
  } catch {
    return ''
  }
  try {
    const { size } = await fh.stat()
    const len = Math.min(size, maxBytes)
    const buf = Buffer.alloc(len)
    await fh.read(buf, 0, len, size - len)
    return buf.toString('utf8')
  } finally {
    await fh.close()
  }
}

/**
 * Console lines around the failure: the last console line that also ends the failure's excerpt
 * is the anchor (40 lines before, 20 after); without one, the last 60 lines.
 */
export function consoleExcerpt(consoleText: string, failure: Failure | null): string {
  const lines = stripAnsi(consoleText).replace(/\r/g, '').replace(CONTROL_CHARS, '').split('\n')
  while (lines.length > 0 && lines[lines.length - 1].trim() === '') lines.pop()
  if (lines.length === 0) return ''
  let anchor = -1
  const excerptLines = (failure?.excerpt ?? '')
    .split('\n')
    .map((l) => stripAnsi(l).trim())
    .filter((l) => l.length >= 8)
  for (let i = excerptLines.length - 1; i >= 0 && anchor < 0; i--) {
    const needle = excerptLines[i]
    for (let j = lines.length - 1; j >= 0; j--) {
      if (lines[j].includes(needle)) {
        anchor = j
        break
      }
    }
    if (excerptLines.length - i >= 3) break
  }
  const from =
    anchor >= 0
      ? Math.max(0, anchor - EXCERPT_BEFORE)
      : Math.max(0, lines.length - EXCERPT_BEFORE - EXCERPT_AFTER)
  const to = anchor >= 0 ? Math.min(lines.length, anchor + EXCERPT_AFTER + 1) : lines.length
  const picked = lines
    .slice(from, to)
    .map((l) => (l.length > EXCERPT_LINE_MAX ? `${sliceChars(l, EXCERPT_LINE_MAX)} …` : l))
  const header = `console.log lines ${from + 1}–${to}${to < lines.length ? ` of ${lines.length}` : ''}`
  return `${header}\n${clip(picked.join('\n'), EXCERPT_MAX_CHARS)}`
}

/** The console excerpt, unless the failure's own evidence already shows every line of it. */
function failureConsole(r: Report, c: SummaryContext): string {
  if (r.failure === null || c.consoleText === undefined || c.consoleText.trim() === '') return ''
  const excerpt = consoleExcerpt(c.consoleText, r.failure)
  const evidence = stripAnsi(r.failure.excerpt)
  const body = excerpt
    .split('\n')
    .slice(1)
    .filter((l) => l.trim() !== '')
  return body.every((l) => evidence.includes(l.replace(/ …$/, '').trim())) ? '' : excerpt
}

function architectureLine(r: Report): string {
  return `Guest **${r.system}** on host **${r.hostSystem}**: ${r.emulated ? '**emulated** architecture (software CPU, TCG only)' : 'native architecture'} · accelerator **${r.accelerator}**`
}

function failingChecks(
  r: Report
): { stage: string; name: string; output: string; durationMs: number }[] {
  return r.stages.flatMap((s) =>
    s.checks
      .filter((c) => c.status === 'failed')
      .map((c) => ({ stage: s.name, name: c.name, output: c.output, durationMs: c.durationMs }))
  )
}

/** Sections the report renderer does not have: architecture, console excerpt, checks past 50. */
function extraSections(r: Report, c: SummaryContext): string[] {
  const parts: string[] = [architectureLine(r), '']
  const excerpt = failureConsole(r, c)
  if (excerpt !== '')
    parts.push(
      '<details open><summary>Console around the failure</summary>',
      '',
      fence(excerpt),
      '',
      '</details>',
      ''
    )
  const failing = failingChecks(r)
  if (failing.length > 50) {
    parts.push(`<details><summary>${failing.length - 50} more failing checks</summary>`, '')
    for (const f of failing.slice(50, 1000))
      parts.push(`- ${escapeMarkdown(f.stage)} / ${escapeMarkdown(f.name)}`)
    if (failing.length > 1000) parts.push(`- … and ${failing.length - 1000} more (see report.json)`)
    parts.push('', '</details>', '')
  }
  if (c.artifactUrl === undefined && c.artifactNote !== undefined)
    parts.push(`Artifact: ${escapeMarkdown(c.artifactNote)}`, '')
  if (c.runUrl !== undefined) parts.push(`[Workflow run](${c.runUrl})`, '')
  return parts
}

/**
 * The job summary: renderSummary's conclusion line, stage table, failure evidence, failing checks,
 * timeline and artifact link, plus the console excerpt. Never more than `maxBytes` (1 MiB).
 */
export function jobSummary(
  r: Report,
  c: SummaryContext,
  maxBytes: number = LIMITS.stepSummaryBytes
): string {
  const extra = extraSections(r, c).join('\n')
  const budget = Math.max(4096, maxBytes - Buffer.byteLength(extra) - 1024)
  const main = renderSummary(r, { artifactUrl: c.artifactUrl, maxBytes: budget })
  return truncateMarkdown(`${main.trimEnd()}\n\n${extra}`, maxBytes)
}

/**
 * Title (plain text), summary and text (Markdown) of the completed check run; the payload builder
 * cuts text to GitHub's limit.
 */
export function checkRunOutput(r: Report, c: SummaryContext): CheckRunOutput {
  const f = r.failure
  const where = `${r.configuration ?? (r.runner !== undefined ? runnerHostName(r.runner) : 'VM')} (${r.system}${r.emulated ? ', emulated' : ''})`
  const title =
    r.conclusion === 'success'
      ? `Passed: ${where}${r.timings.bootMs !== undefined ? `, booted in ${formatDuration(r.timings.bootMs)}` : ''} (${r.accelerator})${slower(r)}`
      : f !== null
        ? failureKind(f.kind).title(f, where)
        : `Failed: ${where}`
  const summary = renderSummary(r, {
    artifactUrl: c.artifactUrl,
    maxBytes: LIMITS.checkRunTextBytes
  })
  const text: string[] = [architectureLine(r), '']
  const excerpt = failureConsole(r, c)
  if (excerpt !== '') text.push('### Console around the failure', '', fence(excerpt), '')
  for (const fc of failingChecks(r).slice(0, 200)) {
    text.push(
      `### ${escapeMarkdown(fc.stage)} / ${escapeMarkdown(fc.name)} (${formatDuration(fc.durationMs)})`,
      '',
      fence(clip(fc.output, 8000)),
      ''
    )
  }
  if (c.artifactUrl === undefined && c.artifactNote !== undefined)
    text.push(`Artifact: ${escapeMarkdown(c.artifactNote)}`, '')
  if (c.runUrl !== undefined) text.push(`[Workflow run](${c.runUrl})`)
  return { title, summary, text: text.join('\n') }
}

/** A passed run's title note on what regressed (perf-regression: warn). */
function slower(r: Report): string {
  const names = r.perf?.regressions ?? []
  return names.length > 0
    ? ` — slower than ${r.perf?.baseline ?? 'its base'}: ${names.join(', ')}`
    : ''
}

/** The sticky PR comment: conclusion, stage table, failure, links (the marker is added by the caller). */
export function commentMarkdown(r: Report, c: SummaryContext): string {
  const md = renderSummary(r, { artifactUrl: c.artifactUrl, maxBytes: 60_000 }).trimEnd()
  const links = [
    c.runUrl !== undefined ? `[workflow run](${c.runUrl})` : '',
    c.artifactUrl !== undefined ? `[artifact](${c.artifactUrl})` : ''
  ]
    .filter(Boolean)
    .join(' · ')
  return `${md}\n\n${architectureLine(r)}${links !== '' ? `\n\n${links}` : ''}\n\n<sub>Updated ${new Date().toISOString()} by nixos-vm-validate</sub>\n`
}

/** One line for logs and core.setFailed (no Markdown). */
export function plainConclusion(r: Report): string {
  return conclusionLine(r).replace(/\*\*/g, '')
}
