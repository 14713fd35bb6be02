import { perfSection } from '../perf/render.js'
import { formatDuration } from '../util/duration.js'
import { cutMarkdown, escapeMarkdown, fence, sliceCharsEnd } from '../util/markdown.js'
import type { CheckResult, Report, StageResult } from './model.js'

const ICON: Record<string, string> = { passed: '✅', failed: '❌', skipped: '⏭️' }

function escapeXml(s: string): string {
  // XML 1.0 forbids most control characters even when escaped.
  return (
    s
      // eslint-disable-next-line no-control-regex
      .replace(/[\x00-\x08\x0b\x0c\x0e-\x1f]/g, '')
      .replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`)
  )
}

/** Keeps the end of a long text (where the failure usually is), marking the cut. */
export function clip(text: string, max: number): string {
  if (text.length <= max) return text
  const kept = sliceCharsEnd(text, max)
  return `… (${text.length - kept.length} characters cut)\n` + kept
}

/**
 * What a retried boot says in one phrase ('' when the boot was not retried): e.g. "flaky: boot
 * retried after 2m 0s of silence at 3.1s, before userspace".
 */
export function bootRetryPhrase(r: Report, markdown = false): string {
  // Every attempt but the last was stopped and retried.
  const failed = (r.bootAttempts ?? []).slice(0, -1)
  if (failed.length === 0) return ''
  const silences = failed.map((a) =>
    a.failure?.silenceMs !== undefined
      ? `${formatDuration(a.failure.silenceMs)} of silence at ${formatDuration(a.failure.lastOutputAtMs ?? 0)}`
      : (a.failure?.kind ?? 'a failure')
  )
  const times = failed.length === 1 ? '' : ` ${failed.length} times`
  const what = `boot retried${times} after ${silences.join('; ')}, before userspace`
  const flaky = r.flaky === true ? (markdown ? '**flaky**: ' : 'flaky: ') : ''
  return `${flaky}${what}`
}

/**
 * The run's outcome in one line, with `**` for bold: plain text for logs (strip the `**`), or
 * Markdown with the user and guest parts (configuration, check, message) escaped.
 */
export function conclusionLine(r: Report, markdown = false): string {
  const text = markdown ? escapeMarkdown : (s: string): string => s
  const where = `${r.configuration !== undefined ? `${text(r.configuration)} ` : ''}(${r.system})`
  const accel = `${r.accelerator === 'kvm' ? 'KVM' : r.accelerator === 'tcg' ? 'TCG software emulation' : 'no VM'}${r.emulated ? ', emulated architecture' : ''}`
  if (r.conclusion === 'success') {
    const boot =
      r.timings.bootMs !== undefined ? `, booted in ${formatDuration(r.timings.bootMs)}` : ''
    const retried = bootRetryPhrase(r, markdown)
    return `✅ **VM validation passed** for ${where}${boot} — ${accel}${retried !== '' ? ` — ⚠️ ${retried}` : ''}`
  }
  const f = r.failure
  const what =
    f !== null
      ? `${f.stage}: **${f.kind}**${f.check !== undefined ? ` (${text(f.check)})` : ''} — ${text(f.message)}`
      : 'failed'
  const retried = bootRetryPhrase(r, markdown)
  return `❌ **VM validation failed** for ${where} — ${what} — ${accel}${retried !== '' ? ` — ${retried}` : ''}`
}

/** A Mermaid gantt of the boot (kernel / initrd / userspace) and the stages; GitHub renders it. */
export function timeline(r: Report): string {
  const rows: string[] = []
  const t0 = r.timings.preflightMs ?? 0
  const b = r.boot
  if (b?.kernelMs !== undefined) {
    let at = t0
    for (const [name, ms] of [
      ['kernel', b.kernelMs],
      ['initrd', b.initrdMs],
      ['userspace', b.userspaceMs]
    ] as const) {
      if (ms === undefined) continue
      rows.push(
        `    ${name} : a${rows.length}, ${Math.round(at)}, ${Math.max(1, Math.round(ms))}ms`
      )
      at += ms
    }
  }
  const stageRows = r.stages
    .filter((s) => s.startMs !== undefined && s.status !== 'skipped')
    .map(
      (s, i) =>
        `    ${s.name}${s.status === 'failed' ? ' (failed)' : ''} :${s.status === 'failed' ? 'crit, ' : ''}s${i}, ${Math.round(s.startMs ?? 0)}, ${Math.max(1, Math.round(s.durationMs))}ms`
    )
  if (rows.length === 0 && stageRows.length === 0) return ''
  return [
    '```mermaid',
    'gantt',
    '    dateFormat x',
    '    axisFormat %M:%S',
    ...(rows.length > 0 ? ['    section boot (systemd-analyze)', ...rows] : []),
    ...(stageRows.length > 0 ? ['    section stages', ...stageRows] : []),
    '```'
  ].join('\n')
}

/**
 * "tests/vm/checks.yml:32" for a check declared in a checks file; the option path (and the
 * flake's file) for one derived from the configuration; else ''.
 */
export function checkLocation(c: CheckResult): string {
  if (c.file !== undefined) return `${c.file}${c.line !== undefined ? `:${c.line}` : ''}`
  if (c.declared !== undefined)
    return `${c.declared.option}${c.declared.file !== undefined ? ` (${c.declared.file})` : ''}`
  return ''
}

const firstLine = (text: string): string => text.split('\n').find((l) => l.trim() !== '') ?? ''

/**
 * What the configuration declared against what the VM had: the derived checks, those that
 * differ first and open, the rest folded. '' for a run without derived checks.
 */
export function declaredTable(r: Report): string {
  const rows = r.stages.flatMap((s) => s.checks.filter((c) => c.declared !== undefined))
  const d = r.declared
  if (d?.error !== undefined)
    return `### Declared vs found\n\nNothing could be derived from the configuration: ${escapeMarkdown(clip(d.error, 600))}\n`
  if (rows.length === 0) return ''
  // What the VM had: the output's first line that is not the command's own echo (`$ cmd`).
  const found = (c: CheckResult): string =>
    c.output.split('\n').find((l) => l.trim() !== '' && !l.startsWith('$ ')) ?? firstLine(c.output)
  const row = (c: CheckResult): string =>
    `| ${ICON[c.status] ?? ''} | ${escapeMarkdown(c.declared?.option ?? '')} | ${escapeMarkdown(clip(c.declared?.value ?? '', 120))} | ${escapeMarkdown(clip(found(c), 160))} |`
  const head = ['| | Option | Declared | Found |', '| --- | --- | --- | --- |']
  const differ = rows.filter((c) => c.status === 'failed')
  const rest = rows.filter((c) => c.status !== 'failed')
  const parts = [
    '### Declared vs found',
    '',
    `${rows.length} item${rows.length > 1 ? 's' : ''} the configuration declares: ${rest.length} found as declared, ${differ.length} missing or different${d !== undefined && d.excluded.length > 0 ? ` (excluded: ${escapeMarkdown(d.excluded.join(', '))})` : ''}.`,
    ''
  ]
  if (differ.length > 0) parts.push(...head, ...differ.map(row), '')
  if (rest.length > 0)
    parts.push(
      '<details><summary>Found as declared</summary>',
      '',
      ...head,
      ...rest.map(row),
      '',
      '</details>',
      ''
    )
  return parts.join('\n')
}

/** Every check of every stage (collapsed per stage; failed stages open). */
function checksList(stages: StageResult[]): string {
  const parts: string[] = []
  for (const s of stages.filter((st) => st.checks.length > 0)) {
    const failed = s.checks.some((c) => c.status === 'failed')
    parts.push(
      `<details${failed ? ' open' : ''}><summary>${ICON[s.status] ?? ''} ${escapeMarkdown(s.name)}: ${s.checks.length} check${s.checks.length > 1 ? 's' : ''}</summary>`,
      ''
    )
    parts.push('| | Check | Time | Declared at | Output |', '| --- | --- | --- | --- | --- |')
    for (const c of s.checks) {
      const first = firstLine(c.output)
      parts.push(
        `| ${ICON[c.status] ?? ''} | ${escapeMarkdown(c.name)} | ${formatDuration(c.durationMs)} | ${escapeMarkdown(checkLocation(c))} | ${escapeMarkdown(clip(first, 160))} |`
      )
    }
    parts.push('', '</details>', '')
  }
  return parts.join('\n')
}

function stageTable(stages: StageResult[]): string {
  const lines = ['| Stage | Result | Duration | Checks |', '| --- | --- | --- | --- |']
  for (const s of stages) {
    const count = (status: string): number => s.checks.filter((c) => c.status === status).length
    const skipped = count('skipped')
    const checks =
      s.checks.length === 0
        ? ''
        : [
            `${count('passed')}/${s.checks.length} passed`,
            ...(count('failed') > 0 ? [`${count('failed')} failed`] : []),
            ...(skipped > 0 ? [`${skipped} skipped`] : [])
          ].join(', ')
    lines.push(
      `| ${escapeMarkdown(s.name)} | ${ICON[s.status] ?? ''} ${s.status} | ${formatDuration(s.durationMs)} | ${escapeMarkdown(checks || (s.message ?? ''))} |`
    )
  }
  return lines.join('\n')
}

export interface SummaryOptions {
  artifactUrl?: string
  /** Upper bound for the whole markdown (GitHub: 1 MiB per step summary). */
  maxBytes?: number
}

/** summary.md and the job summary: one rendering of the report model. */
export function renderSummary(r: Report, o: SummaryOptions = {}): string {
  const maxBytes = o.maxBytes ?? 256 * 1024
  const parts: string[] = [`## ${conclusionLine(r, true)}`, '']
  const retry = bootRetryNote(r)
  if (retry !== '') parts.push(retry, '')
  parts.push(
    `Accelerator: **${r.accelerator}**${r.acceleratorReason !== undefined ? ` — ${escapeMarkdown(r.acceleratorReason)}` : ''}` +
      `${r.emulated ? ' · guest architecture emulated on this host' : ''} · host ${r.hostSystem}`
  )
  const t = r.timings
  const times = [
    t.buildMs !== undefined ? `build ${formatDuration(t.buildMs)}` : '',
    t.bootMs !== undefined ? `boot ${formatDuration(t.bootMs)}` : '',
    t.sshReadyMs !== undefined ? `SSH ready ${formatDuration(t.sshReadyMs)}` : '',
    `total ${formatDuration(t.totalMs)}`
  ].filter(Boolean)
  parts.push(`Timings: ${times.join(' · ')}`, '')
  parts.push(stageTable(r.stages), '')
  const f = r.failure
  if (f !== null) {
    parts.push(`### Failure: ${f.kind} in stage \`${f.stage}\``, '', escapeMarkdown(f.message), '')
    if (f.excerpt !== '')
      parts.push(
        '<details open><summary>Evidence</summary>',
        '',
        fence(clip(f.excerpt, 12_000)),
        '',
        '</details>',
        ''
      )
  }
  const declared = declaredTable(r)
  if (declared !== '') parts.push(declared)
  if (r.perf !== undefined) parts.push(perfSection(r.perf))
  const failing = r.stages.flatMap((s) =>
    s.checks.filter((c) => c.status === 'failed').map((c) => ({ s, c }))
  )
  if (failing.length > 0) {
    parts.push('### Failing checks', '')
    for (const { s, c } of failing.slice(0, 50)) {
      const where = checkLocation(c)
      parts.push(
        `<details><summary>${ICON.failed} ${escapeMarkdown(s.name)} / ${escapeMarkdown(c.name)} (${formatDuration(c.durationMs)})${where !== '' ? ` — ${escapeMarkdown(where)}` : ''}</summary>`,
        '',
        fence(clip(c.output, 4000)),
        '',
        '</details>',
        ''
      )
    }
  }
  if (r.stages.some((s) => s.checks.length > 0)) parts.push('### Checks', '', checksList(r.stages))
  const tl = timeline(r)
  if (tl !== '') parts.push('### Timeline', '', tl, '')
  if (r.boot?.blame !== undefined && r.boot.blame.length > 0) {
    parts.push(
      '<details><summary>Slowest units (systemd-analyze blame)</summary>',
      '',
      '| Unit | Time |',
      '| --- | --- |'
    )
    for (const u of r.boot.blame.slice(0, 10))
      parts.push(`| ${escapeMarkdown(u.unit)} | ${formatDuration(u.ms)} |`)
    parts.push('', '</details>', '')
  }
  if (o.artifactUrl !== undefined)
    parts.push(`Evidence (console log, screenshots, report): [artifact](${o.artifactUrl})`, '')
  else if (r.artifacts.length > 0)
    parts.push(`Artifacts: ${r.artifacts.map((a) => `\`${a}\``).join(', ')}`, '')
  return cutMarkdown(
    parts.join('\n'),
    maxBytes,
    '\n\n… (summary cut to stay within the size limit)\n'
  )
}

/**
 * The summary's note on a retried boot, right under the outcome: which attempt went silent, after
 * which console line, and where its console is. '' when the boot was not retried.
 */
function bootRetryNote(r: Report): string {
  const attempts = r.bootAttempts ?? []
  if (attempts.length < 2) return ''
  const lines = attempts.map((a) => {
    const f = a.failure
    const log = `console: \`${a.consoleLog}\``
    if (f === null) return `- attempt ${a.attempt} (${a.accelerator}): booted — ${log}`
    const silence =
      f.silenceMs !== undefined
        ? `no console output for ${formatDuration(f.silenceMs)} from ${formatDuration(f.lastOutputAtMs ?? 0)} after its start${f.lastLine !== undefined ? `, after “${escapeMarkdown(clip(f.lastLine, 200))}”` : ''}, before userspace`
        : escapeMarkdown(clip(f.message, 300))
    return `- attempt ${a.attempt} (${a.accelerator}): ${f.kind} — ${silence} — ${log}`
  })
  const head =
    r.flaky === true
      ? `> ⚠️ **Flaky leg**: the boot was retried and then passed — a transient hang, not a clean pass (\`boot-retries\`).`
      : `> ⚠️ The boot was retried (\`boot-retries\`).`
  return [head, '', ...lines].join('\n')
}

/** junit.xml: one testsuite per stage, one testcase per check (a stage without checks is one case). */
export function renderJunit(r: Report): string {
  const suites = r.stages.map((s) => {
    const cases =
      s.checks.length > 0
        ? s.checks
        : [{ name: s.name, status: s.status, durationMs: s.durationMs, output: s.message ?? '' }]
    const failures = cases.filter((c) => c.status === 'failed').length
    const skipped = cases.filter((c) => c.status === 'skipped').length
    const body = cases
      .map((c) => {
        const loc =
          'file' in c && c.file !== undefined
            ? ` file="${escapeXml(c.file)}"${c.line !== undefined ? ` line="${c.line}"` : ''}`
            : ''
        const open = `    <testcase classname="${escapeXml(`${r.system}.${s.name}`)}" name="${escapeXml(c.name)}" time="${(c.durationMs / 1000).toFixed(3)}"${loc}`
        if (c.status === 'failed') {
          const msg =
            s.name === r.failure?.stage && r.failure.check === c.name
              ? r.failure.message
              : (c.output.split('\n')[0] ?? '')
          return `${open}>\n      <failure message="${escapeXml(clip(msg, 500))}">${escapeXml(clip(c.output, 20_000))}</failure>\n    </testcase>`
        }
        if (c.status === 'skipped')
          return `${open}>\n      <skipped message="${escapeXml(clip(c.output, 500))}"/>\n    </testcase>`
        return `${open}/>`
      })
      .join('\n')
    return `  <testsuite name="${escapeXml(s.name)}" tests="${cases.length}" failures="${failures}" skipped="${skipped}" time="${(s.durationMs / 1000).toFixed(3)}">\n${body}\n  </testsuite>`
  })
  const total = r.stages.reduce((n, s) => n + Math.max(1, s.checks.length), 0)
  const failed = r.stages.reduce(
    (n, s) =>
      n +
      (s.checks.length > 0
        ? s.checks.filter((c) => c.status === 'failed').length
        : s.status === 'failed'
          ? 1
          : 0),
    0
  )
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="nixos-vm-validate ${escapeXml(r.system)}" tests="${total}" failures="${failed}" time="${(r.timings.totalMs / 1000).toFixed(3)}">\n${suites.join('\n')}\n</testsuites>\n`
}
