import type { FailureKind, ValidationFailure } from '../util/errors.js'
import type { Failure, Report } from './model.js'

/** The conclusions a completed check run of ours can have. */
export type CheckConclusion = 'success' | 'failure' | 'cancelled'

/**
 * Where the run's failure is annotated when it has no file/line of its own: the checks file that
 * declared the failed check, or the workflow that ran the step; null: not annotated at all.
 */
export type AnnotationPlace = 'checks-file' | 'workflow' | null

/** How the reporting treats one failure kind. */
export interface FailureKindRow {
  /** The check run's conclusion. */
  conclusion: Exclude<CheckConclusion, 'success'>
  annotation: AnnotationPlace
  /** The check run's title; `where` is the configuration (or runner) and the system. */
  title(f: Failure, where: string): string
}

const failedTitle = (f: Failure): string =>
  `Failed: ${f.kind} in ${f.stage}${f.check !== undefined ? ` (${f.check})` : ''}`

/** Something failed: the system under test, the input, the build or the tool. */
const FAILED: FailureKindRow = { conclusion: 'failure', annotation: 'workflow', title: failedTitle }

/**
 * Every failure kind of util/errors.ts. A cancelled run says nothing about the system, so it is
 * neither a failure nor annotated; a failed check points at the checks file.
 */
export const FAILURE_TABLE: Readonly<Record<FailureKind, FailureKindRow>> = {
  input: FAILED,
  'build-failed': FAILED,
  'qemu-exited': FAILED,
  'kernel-panic': FAILED,
  'emergency-mode': FAILED,
  'boot-timeout': FAILED,
  'ssh-unreachable': FAILED,
  'ssh-auth': FAILED,
  'check-failed': { ...FAILED, annotation: 'checks-file' },
  'stage-timeout': FAILED,
  // perf-regression: fail (docs/performance-history.md): the run passed, but slower than its base.
  'perf-regression': {
    ...FAILED,
    title: (f, where) => `Performance regression: ${f.check ?? f.message} (${where})`
  },
  cancelled: {
    conclusion: 'cancelled',
    annotation: null,
    title: (_f, where) => `Cancelled: ${where}`
  },
  'tool-error': FAILED
}

export function failureKind(kind: FailureKind): FailureKindRow {
  return FAILURE_TABLE[kind]
}

/** The check run's conclusion for a report. */
export function checkConclusion(r: Report): CheckConclusion {
  if (r.conclusion === 'success') return 'success'
  return r.failure !== null ? failureKind(r.failure.kind).conclusion : 'failure'
}

/** The report's failure, as recorded for `stage`, from a classified failure (file/line/check in its details). */
export function failureOf(stage: string, f: ValidationFailure): Failure {
  const d = f.details as { check?: string; file?: string; line?: number }
  return {
    stage,
    kind: f.kind,
    message: f.message,
    excerpt: f.excerpt,
    ...(d.check !== undefined ? { check: d.check } : {}),
    ...(d.file !== undefined ? { file: d.file } : {}),
    ...(d.line !== undefined ? { line: d.line } : {})
  }
}
