import { connect, type Socket } from 'node:net'
import { Deadline, sleep } from '../util/time.js'

interface Pending {
  resolve: (value: unknown) => void
  reject: (err: Error) => void
  timer: NodeJS.Timeout
}

/** A minimal QMP (QEMU Machine Protocol) client over a unix socket: one JSON object per line. */
export class QmpClient {
  private buffer = ''
  private nextId = 1
  private readonly pending = new Map<string, Pending>()
  private greeted!: () => void
  private readonly greeting = new Promise<void>((resolve) => (this.greeted = resolve))
  readonly events: { event: string; data?: unknown }[] = []
  closed = false

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8')
    socket.on('data', (d: string) => this.onData(d))
    socket.on('close', () => this.onClose())
    socket.on('error', () => undefined)
  }

  /** Connects, retrying while QEMU creates the socket, and negotiates capabilities. */
  static async connect(
    path: string,
    timeoutMs: number,
    alive: () => boolean = () => true
  ): Promise<QmpClient> {
    const deadline = new Deadline(timeoutMs)
    let lastError: unknown
    while (!deadline.expired() && alive()) {
      try {
        const socket = await new Promise<Socket>((resolve, reject) => {
          const s = connect(path)
          s.once('connect', () => resolve(s))
          s.once('error', reject)
        })
        const client = new QmpClient(socket)
        await Promise.race([client.greeting, sleep(Math.max(1, deadline.remaining()))])
        await client.execute('qmp_capabilities', undefined, Math.max(1000, deadline.remaining()))
        return client
      } catch (err) {
        lastError = err
        await sleep(50)
      }
    }
    throw new Error(
      `QMP socket ${path} did not answer within ${timeoutMs} ms: ${String(lastError ?? 'QEMU exited')}`
    )
  }

  execute<T = unknown>(
    command: string,
    args?: Record<string, unknown>,
    timeoutMs = 10_000
  ): Promise<T> {
    if (this.closed) return Promise.reject(new Error(`QMP ${command}: connection closed`))
    const id = String(this.nextId++)
    const msg = JSON.stringify(
      args === undefined ? { execute: command, id } : { execute: command, arguments: args, id }
    )
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        reject(new Error(`QMP ${command}: no answer within ${timeoutMs} ms`))
      }, timeoutMs)
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer })
      this.socket.write(msg + '\n')
    })
  }

  private onData(data: string): void {
    this.buffer += data
    let nl: number
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl).trim()
      this.buffer = this.buffer.slice(nl + 1)
      if (line === '') continue
      let msg: Record<string, unknown>
      try {
        msg = JSON.parse(line) as Record<string, unknown>
      } catch {
        continue
      }
      if ('QMP' in msg) this.greeted()
      else if ('event' in msg) this.events.push({ event: String(msg.event), data: msg.data })
      else if (typeof msg.id === 'string') {
        const p = this.pending.get(msg.id)
        if (p === undefined) continue
        this.pending.delete(msg.id)
        clearTimeout(p.timer)
        if ('error' in msg) {
          const e = msg.error as { class?: string; desc?: string }
          p.reject(new Error(`${e.class ?? 'Error'}: ${e.desc ?? 'unknown QMP error'}`))
        } else p.resolve(msg.return)
      }
    }
  }

  private onClose(): void {
    this.closed = true
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer)
      p.reject(new Error(`QMP request ${id}: connection closed`))
    }
    this.pending.clear()
  }

  close(): void {
    this.socket.destroy()
  }
}

export interface QemuStatus {
  status: string
  running: boolean
}
