/** Failure kinds of report.json (docs/plans/2025-10-26-nixos-vm-validation-design.md, report.json). A kind says who failed and how. */
export const FAILURE_KINDS = [
  'input',
  'build-failed',
  'qemu-exited',
  'kernel-panic',
  'emergency-mode',
  'boot-timeout',
  'ssh-unreachable',
  'ssh-auth',
  'check-failed',
  'stage-timeout',
  'perf-regression',
  'cancelled',
  'tool-error'
] as const
export type FailureKind = (typeof FAILURE_KINDS)[number]

/**
 * A classified failure: either the system under test failed (panic, emergency mode, a check) or
 * the input was wrong. `excerpt` is the evidence a person reads first (console lines, journal).
 */
export class ValidationFailure extends Error {
  constructor(
    readonly kind: FailureKind,
    message: string,
    readonly excerpt = '',
    readonly details: Record<string, unknown> = {}
  ) {
    super(message)
    this.name = 'ValidationFailure'
  }
}

/** Bad input: reported before anything starts; the CLI exits 2. */
export class InputError extends ValidationFailure {
  constructor(message: string) {
    super('input', message)
    this.name = 'InputError'
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message
  return String(err)
}

/** Turns anything thrown into a ValidationFailure; unknown errors are the tool's own fault. */
export function toFailure(
  err: unknown,
  fallbackKind: FailureKind = 'tool-error'
): ValidationFailure {
  if (err instanceof ValidationFailure) return err
  return new ValidationFailure(fallbackKind, errorMessage(err))
}
