import { InputError } from './errors.js'

/**
 * Every input error of one run, reported together: a person fixes all of them in one go instead
 * of one per run. Each message names its input (or option) and what it accepts.
 */
export class InputErrors extends InputError {
  constructor(readonly messages: string[]) {
    super(
      messages.length === 1
        ? messages[0]
        : `${messages.length} input errors:\n${messages.map((m) => `  - ${m}`).join('\n')}`
    )
    this.name = 'InputErrors'
  }
}

/**
 * Collects input errors instead of stopping at the first. `check` runs one parse step: an
 * InputError it throws is recorded (with the name of what failed) and `undefined` returned; any
 * other error is a bug and propagates.
 */
export class InputErrorCollector {
  readonly messages: string[] = []
  private readonly failedNames = new Set<string>()

  add(name: string, message: string): void {
    this.failedNames.add(name)
    this.messages.push(message)
  }

  check<T>(name: string, fn: () => T): T | undefined {
    try {
      return fn()
    } catch (err) {
      this.record(name, err)
      return undefined
    }
  }

  async checkAsync<T>(name: string, fn: () => Promise<T>): Promise<T | undefined> {
    try {
      return await fn()
    } catch (err) {
      this.record(name, err)
      return undefined
    }
  }

  /** Whether a check of this name failed. */
  failed(name: string): boolean {
    return this.failedNames.has(name)
  }

  /** Throws every recorded error as one InputErrors; does nothing when there is none. */
  throwIfAny(): void {
    if (this.messages.length > 0) throw new InputErrors([...this.messages])
  }

  private record(name: string, err: unknown): void {
    if (!(err instanceof InputError)) throw err
    this.failedNames.add(name)
    if (err instanceof InputErrors) this.messages.push(...err.messages)
    else this.messages.push(err.message)
  }
}
