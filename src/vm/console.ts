/**
 * Reading the serial console: ANSI stripping, line splitting and the patterns that tell a booted
 * guest from a broken one. Pure; the Machine feeds it bytes as they arrive.
 */

// CSI sequences, OSC sequences, charset selection and single-character escapes.
const ANSI =
  // eslint-disable-next-line no-control-regex
  /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>78cDEHM]/g

export function stripAnsi(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(ANSI, '').replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g, '')
}

export type ConsoleEventKind = 'kernel-panic' | 'emergency-mode' | 'ready'

export interface ConsoleEvent {
  kind: ConsoleEventKind
  /** Index of the matching line in the monitor's line log. */
  line: number
  text: string
}

const PANIC = [/Kernel panic - not syncing/, /\bkernel BUG at\b/, /---\[ end Kernel panic/]
const EMERGENCY = [
  /You are in (emergency|rescue) mode/,
  /Entering (emergency|rescue) mode/,
  /Cannot open access to console, the root account is locked/,
  /Give root password for maintenance/,
  // NixOS stage 1 (initrd) failure: it then waits for a key or reboots.
  /An error occurred in stage 1 of the boot process/
]
const READY = [/\blogin: *$/, /Reached target .*(Multi-User System|multi-user\.target)/]

/** Classifies one ANSI-stripped console line. Fatal patterns win over readiness. */
export function classifyLine(line: string): ConsoleEventKind | undefined {
  if (PANIC.some((re) => re.test(line))) return 'kernel-panic'
  if (EMERGENCY.some((re) => re.test(line))) return 'emergency-mode'
  if (READY.some((re) => re.test(line))) return 'ready'
  return undefined
}

/** Lines that explain an emergency-mode boot (why systemd gave up). */
const EMERGENCY_CAUSES =
  /Timed out waiting for device|Dependency failed|Failed to (start|mount)|\bFAILED\b|Failed to (find|mount)|not found|can't find|mounting .* failed/i

export class ConsoleMonitor {
  readonly lines: string[] = []
  private partial = ''
  private decoder = new TextDecoder('utf-8')
  private readonly seen = new Set<ConsoleEventKind>()
  bytes = 0
  lastOutputAt: number | undefined

  constructor(
    private readonly onEvent: (event: ConsoleEvent) => void,
    private readonly now: () => number = Date.now,
    private readonly maxLines = 20_000
  ) {}

  /** Feeds raw console bytes. */
  push(chunk: Buffer | string): void {
    this.bytes += chunk.length
    this.lastOutputAt = this.now()
    const text = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true })
    const parts = (this.partial + text).split(/\r\n|\n|\r/)
    this.partial = parts.pop() ?? ''
    for (const raw of parts) this.addLine(stripAnsi(raw))
    // A getty prompt ("nixos-vm login: ") has no newline after it: look at the open line too.
    const open = stripAnsi(this.partial)
    if (/\blogin: *$/.test(open)) this.emit('ready', this.lines.length, open)
  }

  /** Flushes the last partial line (when the console closes). */
  end(): void {
    if (this.partial !== '') this.addLine(stripAnsi(this.partial))
    this.partial = ''
  }

  private addLine(line: string): void {
    this.lines.push(line)
    const kind = line.trim() === '' ? undefined : classifyLine(line)
    if (kind !== undefined) this.emit(kind, this.lines.length - 1, line)
    if (this.lines.length > this.maxLines) this.lines.splice(0, this.lines.length - this.maxLines)
  }

  private emit(kind: ConsoleEventKind, line: number, text: string): void {
    if (this.seen.has(kind)) return
    this.seen.add(kind)
    this.onEvent({ kind, line, text })
  }

  /** The last `n` non-empty lines, including the open one. */
  tail(n: number): string[] {
    const all = [...this.lines, stripAnsi(this.partial)].filter((l) => l.trim() !== '')
    return all.slice(-n)
  }

  /** Evidence for a fatal event: context before the matching line and everything after it. */
  excerpt(event: ConsoleEvent, before = 25, maxAfter = 40): string {
    const start = Math.max(0, event.line - before)
    const picked = this.lines.slice(start, event.line + 1 + maxAfter).filter((l) => l.trim() !== '')
    if (event.kind === 'emergency-mode') {
      // The cause is often far above the emergency prompt (a device timeout 90 s earlier).
      const causes = this.lines
        .slice(0, start)
        .filter((l) => EMERGENCY_CAUSES.test(l))
        .slice(-10)
      if (causes.length > 0) return [...causes, '…', ...picked].join('\n')
    }
    return picked.join('\n')
  }
}
