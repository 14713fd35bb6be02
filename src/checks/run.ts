import { ValidationFailure, errorMessage } from '../util/errors.js'
import { Deadline } from '../util/time.js'
import type { CheckResult, Declared, Status } from '../report/model.js'
import type { Located } from './model.js'
import type { Guest } from '../ssh/guest.js'

/** Output kept per check: the end, where the error usually is. */
export const MAX_CHECK_OUTPUT = 4096
/**
 * Checks of one stage in flight at once over the one SSH connection (below sshd's default
 * MaxSessions of 10). NVV_CHECK_CONCURRENCY overrides it: `npm run bench` compares with 1.
 */
export const CHECK_CONCURRENCY = concurrencyFromEnv(process.env.NVV_CHECK_CONCURRENCY)

export function concurrencyFromEnv(value: string | undefined, fallback = 4): number {
  const n = Number(value)
  return Number.isInteger(n) && n >= 1 && n <= 16 ? n : fallback
}

/**
 * Keeps the last `max` characters, marking the cut (a failure's cause is at the end). `head`
 * keeps the start instead: a passed check's interesting line is its first (`git version …`).
 */
export function trimOutput(
  text: string,
  max = MAX_CHECK_OUTPUT,
  keep: 'head' | 'tail' = 'tail'
): string {
  const t = text.replace(/\s+$/, '')
  if (t.length <= max) return t
  if (keep === 'head') {
    const head = t.slice(0, max)
    const nl = head.lastIndexOf('\n')
    const kept = nl > max - 200 ? head.slice(0, nl) : head
    return `${kept}\n… (${t.length - kept.length} characters cut)`
  }
  const tail = t.slice(t.length - max)
  // Start at a line boundary when one is near, so the first kept line is whole.
  const nl = tail.indexOf('\n')
  const kept = nl >= 0 && nl < 200 ? tail.slice(nl + 1) : tail
  return `… (${t.length - kept.length} characters cut)\n${kept}`
}

/** The one result of a stage whose checks file has no section for it: skipped, saying so. */
export function noSection(
  name: string,
  sections: string,
  checks: { label: string }
): CheckResult[] {
  return [{ name, status: 'skipped', durationMs: 0, output: `no ${sections} in ${checks.label}` }]
}

/** What a check needs while it runs. */
export interface CheckEnv {
  guest: Guest
  /** This check's own deadline (its timeout, bounded by the stage's). */
  deadline: Deadline
  signal: AbortSignal
}

export interface CheckOutcome {
  status: Status
  output: string
  /** The systemd unit the evidence is about (its journal is saved on failure). */
  unit?: string
  /** Overrides of the declared location (e2e: the script line that failed). */
  file?: string
  line?: number
  /** The check's own time when it ran inside a batch (packages), else the time awaited. */
  durationMs?: number
}

export interface CheckSpec {
  name: string
  timeoutMs: number
  file?: string
  line?: number
  declared?: Declared
  unit?: string
  run: (env: CheckEnv) => Promise<CheckOutcome>
}

export interface RunContext {
  guest: Guest
  signal: AbortSignal
  /** The stage's budget. */
  deadline: Deadline
  onResult?: (r: CheckResult) => void
}

/**
 * Runs the checks of a stage, at most `limit` at once, each with its own timeout bounded by the
 * stage deadline. Results come back in declaration order. A check that throws is failed with the
 * error as its output; when the run is cancelled the stage throws (with the results so far in
 * `details.results`) so the pipeline classifies it as cancelled / timed out.
 */
export async function runChecks(
  ctx: RunContext,
  specs: CheckSpec[],
  limit = CHECK_CONCURRENCY
): Promise<CheckResult[]> {
  const results: (CheckResult | undefined)[] = new Array(specs.length).fill(undefined)
  let next = 0
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++
      if (i >= specs.length) return
      results[i] = await runOne(ctx, specs[i])
      ctx.onResult?.(results[i] as CheckResult)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, specs.length) }, worker))
  const done = results.filter((r): r is CheckResult => r !== undefined)
  if (ctx.signal.aborted) {
    throw new ValidationFailure(
      'tool-error',
      'the run was cancelled while checks were running',
      '',
      { results: done }
    )
  }
  const failed = done.filter((r) => r.status === 'failed')
  if (failed.length > 0 && ctx.deadline.expired()) {
    const first = failed[0]
    throw new ValidationFailure(
      'stage-timeout',
      `the stage ran out of its time budget; ${failed.length} check${failed.length > 1 ? 's' : ''} failed: ${failed.map((c) => c.name).join(', ')}`,
      first.output,
      { results: done, check: first.name, file: first.file, line: first.line, unit: first.unit }
    )
  }
  return done
}

async function runOne(ctx: RunContext, spec: CheckSpec): Promise<CheckResult> {
  const base: Pick<CheckResult, 'name' | 'file' | 'line' | 'declared'> = {
    name: spec.name,
    ...origin(spec)
  }
  const budget = Math.min(spec.timeoutMs, ctx.deadline.remaining())
  if (ctx.signal.aborted)
    return { ...base, status: 'skipped', durationMs: 0, output: 'not run: cancelled' }
  if (budget <= 0) {
    return {
      ...base,
      status: 'failed',
      durationMs: 0,
      output: `not run: the stage's time budget ran out before this check started`
    }
  }
  const started = Date.now()
  const deadline = new Deadline(budget)
  let outcome: CheckOutcome
  try {
    outcome = ctx.guest.closed
      ? { status: 'failed', output: 'the SSH connection to the guest is closed' }
      : await spec.run({ guest: ctx.guest, deadline, signal: ctx.signal })
  } catch (err) {
    outcome = { status: 'failed', output: `the check could not run: ${errorMessage(err)}` }
  }
  const r: CheckResult = {
    ...base,
    status: outcome.status,
    durationMs: outcome.durationMs ?? Date.now() - started,
    output: trimOutput(
      outcome.output,
      MAX_CHECK_OUTPUT,
      outcome.status === 'passed' ? 'head' : 'tail'
    )
  }
  const unit = outcome.unit ?? spec.unit
  if (unit !== undefined) r.unit = unit
  if (outcome.file !== undefined) r.file = outcome.file
  if (outcome.line !== undefined) r.line = outcome.line
  return r
}

/** Where a check comes from, as its result carries it: file and line, or the declaration. */
export function origin(l: Located): Pick<CheckResult, 'file' | 'line' | 'declared'> {
  return {
    ...(l.file !== undefined ? { file: l.file } : {}),
    ...(l.line !== undefined ? { line: l.line } : {}),
    ...(l.declared !== undefined ? { declared: l.declared } : {})
  }
}
