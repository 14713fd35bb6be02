import { formatDuration } from '../util/duration.js'
import type { CheckResult } from '../report/model.js'
import type { ExecResult, SshSession } from '../ssh/client.js'
import {
  Guest,
  JOURNAL_LINES,
  combined,
  describeExit,
  journalCommand,
  type JournalQuery
} from '../ssh/guest.js'
import type { ChecksFile, SystemSection, SystemSpec } from './model.js'
import type { SectionParser } from './reader.js'
import {
  noSection,
  origin,
  runChecks,
  type CheckEnv,
  type CheckOutcome,
  type RunContext
} from './run.js'
import { runContext, type BootEnd, type StageUnit } from './unit.js'
/** Failed units described in detail (the list names all of them). */
const MAX_UNITS_DETAILED = 8

/** Unit names from `systemctl list-units --failed --plain --no-legend` (first column). */
export function parseFailedUnits(text: string): string[] {
  const units: string[] = []
  for (const raw of text.split('\n')) {
    // Older systemd prints a "●" marker even with --plain.
    const first = raw
      .trim()
      .replace(/^[●*]\s*/, '')
      .split(/\s+/)[0]
    if (first !== undefined && first !== '' && /^[\w:.@\\-]+\.[a-z]+$/.test(first))
      units.push(first)
  }
  return [...new Set(units)]
}

/** A unit's last journal lines, as the failure output shows them. */
export function unitJournal(unit: string, user?: string): JournalQuery {
  return user === undefined ? { unit, lines: JOURNAL_LINES } : { unit, user, lines: JOURNAL_LINES }
}

export function unitJournalCommand(unit: string, lines = JOURNAL_LINES): string {
  return journalCommand({ unit, lines })
}

/**
 * The end of the boot: `systemctl is-system-running --wait`, bounded by `timeoutMs` (also on the
 * guest with timeout(1)). Resolves with systemd's last word on the state ("running", "degraded",
 * …) or, at the deadline, the state it was still in.
 */
export function waitForBootEnd(
  env: { ssh: SshSession; signal: AbortSignal },
  timeoutMs: number
): Promise<ExecResult> {
  return bootEndWait(new Guest(env.ssh, env.signal, env.ssh.target.user), timeoutMs)
}

function bootEndWait(guest: Guest, timeoutMs: number): Promise<ExecResult> {
  const secs = Math.max(1, Math.floor(timeoutMs / 1000))
  return guest.run(
    `if command -v timeout >/dev/null 2>&1; then timeout ${secs} systemctl is-system-running --wait; else systemctl is-system-running --wait; fi`,
    { timeoutMs: timeoutMs + 5000 }
  )
}

/**
 * The system state once the boot ended (`bootEnd`, or a wait of its own). "running" passes;
 * "degraded" fails and lists every failed unit with its last journal lines; still "starting" at
 * the deadline fails with the pending jobs.
 */
export async function systemState(
  env: CheckEnv,
  timeoutMs: number,
  bootEnd: BootEnd = (ms) => bootEndWait(env.guest, ms)
): Promise<CheckOutcome & { failedUnits: string[]; journals: Map<string, string> }> {
  const wait = await bootEnd(timeoutMs)
  const state = wait.stdout.trim().split('\n').at(-1)?.trim() ?? ''
  const journals = new Map<string, string>()
  if (wait.code === 0 && state === 'running') {
    return {
      status: 'passed',
      output: `system state: running (${formatDuration(wait.durationMs)})`,
      failedUnits: [],
      journals
    }
  }
  const timedOut = wait.timedOut || wait.code === 124
  const failed = await env.guest.run(
    'systemctl list-units --failed --plain --no-legend --no-pager 2>&1',
    { timeoutMs: 30_000 }
  )
  const failedUnits = parseFailedUnits(failed.stdout)
  await Promise.all(
    failedUnits.slice(0, MAX_UNITS_DETAILED).map(async (unit) => {
      const j = await env.guest.journal(unitJournal(unit), { timeoutMs: 30_000 })
      journals.set(unit, j || '(no journal lines)')
    })
  )
  const lines: string[] = []
  if (timedOut) {
    lines.push(
      `system state: still "${state || 'starting'}" after ${formatDuration(timeoutMs)} (systemctl is-system-running --wait)`
    )
    const jobs = await env.guest.run('systemctl list-jobs --no-pager 2>&1 | head -n 30', {
      timeoutMs: 30_000
    })
    lines.push('pending jobs:', combined(jobs) || '(none listed)')
  } else {
    lines.push(`system state: ${state || describeExit(wait)} (systemctl is-system-running)`)
  }
  if (failedUnits.length > 0) {
    lines.push(`failed units (${failedUnits.length}): ${failedUnits.join(', ')}`)
    for (const unit of failedUnits.slice(0, MAX_UNITS_DETAILED)) {
      lines.push(
        '',
        `── ${unit} (journalctl -b -u ${unit} -n ${JOURNAL_LINES})`,
        journals.get(unit) ?? ''
      )
    }
  } else if (!timedOut) {
    lines.push('failed units: none listed by systemctl list-units --failed')
  }
  const outcome: CheckOutcome & { failedUnits: string[]; journals: Map<string, string> } = {
    status: 'failed',
    output: perUnitBudget(lines.join('\n')),
    failedUnits,
    journals
  }
  if (failedUnits[0] !== undefined) outcome.unit = failedUnits[0]
  return outcome
}

/** Keeps the whole failed-unit list when the journal part is long (the head matters here). */
function perUnitBudget(text: string, max = 4000): string {
  if (text.length <= max) return text
  return text.slice(0, max - 40) + '\n… (more in journal.txt)'
}

/** Stage `system`: the state check, then one failed check per failed unit. */
export async function systemStage(
  ctx: RunContext,
  checks: ChecksFile & SystemSection,
  bootEnd?: BootEnd
): Promise<CheckResult[]> {
  const spec = checks.system
  if (spec === undefined) return noSection('system state', 'system section', checks)
  let detail: Awaited<ReturnType<typeof systemState>> | undefined
  const [state] = await runChecks(ctx, [
    {
      name: 'system state',
      timeoutMs: spec.timeoutMs + 60_000,
      ...origin(spec),
      run: async (env) =>
        (detail = await systemState(
          env,
          Math.min(spec.timeoutMs, env.deadline.remaining()),
          bootEnd
        ))
    }
  ])
  const results = [state]
  for (const unit of detail?.failedUnits ?? []) {
    const r: CheckResult = {
      name: `failed unit ${unit}`,
      status: 'failed',
      durationMs: 0,
      output: detail?.journals.get(unit) ?? 'see journal.txt',
      unit
    }
    if (spec.file !== undefined) r.file = spec.file
    if (spec.line !== undefined) r.line = spec.line
    results.push(r)
  }
  return results
}

/** Per-check timeouts of this stage when the file gives none. */
export const SYSTEM_TIMEOUTS = { system: 5 * 60_000 } as const

/** How long the end of the boot is waited for: the system section's timeout, else the default. */
export function systemTimeoutMs(checks: SystemSection): number {
  return checks.system?.timeoutMs ?? SYSTEM_TIMEOUTS.system
}

/** `system: { timeout }` */
const parseSystem: SectionParser<SystemSection> = (s, { key, value }, config) => {
  const m = s.r.map(value, 'system', ['timeout'])
  if (m === undefined) return
  config.system = {
    ...s.at(key),
    timeoutMs: s.timeoutOf(m, 'system', SYSTEM_TIMEOUTS.system)
  } satisfies SystemSpec
}

export const systemUnit: StageUnit<'system', SystemSection, typeof SYSTEM_TIMEOUTS> = {
  name: 'system',
  sections: { system: parseSystem },
  // It names nothing guest-specific, so it runs with its defaults when the file leaves it out.
  fileBase: () => ({ system: { timeoutMs: SYSTEM_TIMEOUTS.system } }),
  defaults: () => ({ system: { timeoutMs: SYSTEM_TIMEOUTS.system } }),
  timeouts: SYSTEM_TIMEOUTS,
  afterBootEnd: false,
  run: (ctx) => systemStage(runContext(ctx, 'system'), ctx.checks, ctx.bootEnd)
}
