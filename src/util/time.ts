/** A clock deadline: every wait in the engine is bounded by one of these. */
export class Deadline {
  at: number
  constructor(
    ms: number,
    private readonly now: () => number = Date.now
  ) {
    this.at = now() + ms
  }
  /** Moves the deadline to `ms` from now (e.g. SSH gets its own budget once the console is up). */
  reset(ms: number): void {
    this.at = this.now() + ms
  }
  remaining(): number {
    return Math.max(0, this.at - this.now())
  }
  expired(): boolean {
    return this.remaining() <= 0
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve()
    const t = setTimeout(done, ms)
    function done(): void {
      clearTimeout(t)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    signal?.addEventListener('abort', done, { once: true })
  })
}

/** Rejects with `onTimeout()` when `p` does not settle within `ms`. */
export async function withTimeout<T>(
  p: Promise<T>,
  ms: number,
  onTimeout: () => Error
): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms)
  })
  try {
    return await Promise.race([p, timeout])
  } finally {
    clearTimeout(timer)
  }
}
