import { createWriteStream, type WriteStream } from 'node:fs'

/** console.log keeps this much of the start of the console… */
export const CONSOLE_HEAD_BYTES = 48 * 1024 * 1024
/** …and this much of its end; what lies between is replaced by one marker line. */
export const CONSOLE_TAIL_BYTES = 16 * 1024 * 1024

/**
 * A log file with a byte cap that keeps the head and the tail: the first `headBytes` are written
 * as they arrive (the file is live for a normal guest), and past them only the last `tailBytes`
 * are held in memory, appended after a marker line when the log ends. A guest that floods its
 * console costs bounded memory and disk, and the artifact still shows how the boot began and
 * how it ended.
 */
export class CappedLog {
  private readonly stream: WriteStream
  private readonly closed: Promise<void>
  private written = 0
  private tail: Buffer[] = []
  private tailSize = 0
  /** Bytes dropped between head and tail. */
  cut = 0
  total = 0

  constructor(
    path: string,
    private readonly headBytes = CONSOLE_HEAD_BYTES,
    private readonly tailBytes = CONSOLE_TAIL_BYTES
  ) {
    this.stream = createWriteStream(path)
    this.closed = new Promise((resolve) => {
      this.stream.on('close', () => resolve())
      this.stream.on('error', () => resolve())
    })
  }

  get ended(): boolean {
    return this.stream.writableEnded
  }

  write(chunk: Buffer): void {
    if (this.stream.writableEnded) return
    this.total += chunk.length
    let rest = chunk
    if (this.written < this.headBytes) {
      const n = Math.min(rest.length, this.headBytes - this.written)
      this.stream.write(rest.subarray(0, n))
      this.written += n
      rest = rest.subarray(n)
    }
    if (rest.length === 0) return
    this.tail.push(rest)
    this.tailSize += rest.length
    // Drop whole chunks from the front while the rest still covers the tail, then trim one.
    while (this.tailSize - (this.tail[0]?.length ?? 0) >= this.tailBytes) {
      const dropped = this.tail.shift() as Buffer
      this.tailSize -= dropped.length
      this.cut += dropped.length
    }
    const over = this.tailSize - this.tailBytes
    if (over > 0) {
      this.tail[0] = (this.tail[0] as Buffer).subarray(over)
      this.tailSize -= over
      this.cut += over
    }
  }

  /** Writes the held tail (after a marker when bytes were cut) and closes the file. */
  end(): Promise<void> {
    if (!this.stream.writableEnded) {
      if (this.cut > 0) {
        this.stream.write(
          `\n… nixos-vm-validate: ${this.cut} bytes of console output cut here (console.log keeps the first ${this.headBytes} and the last ${this.tailBytes} of ${this.total} bytes) …\n`
        )
      }
      for (const b of this.tail) this.stream.write(b)
      this.tail = []
      this.tailSize = 0
      this.stream.end()
    }
    return this.closed
  }
}
