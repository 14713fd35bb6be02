/**
 * Reading the serial console: ANSI stripping, line splitting and the patterns that tell a booted
 * guest from a broken one. Pure; the Machine feeds it bytes as they arrive.
 */

// CSI sequences, OSC sequences, charset selection and single-character escapes.
const ANSI =
  // eslint-disable-next-line no-control-regex
  /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>78cDEHM]/g

/** Every character either replacement below removes is one of these (ESC is 0x1b). */
const CONTROL_CHARS = [
  ...Array.from({ length: 32 }, (_, c) => String.fromCharCode(c)).filter(
    (c) => c !== '\t' && c !== '\n' && c !== '\r'
  ),
  '\x7f'
]

/** Whether `text` holds a control character (one indexOf per character: ~5x a character class). */
function hasControl(text: string): boolean {
  for (const c of CONTROL_CHARS) if (text.includes(c)) return true
  return false
}

export function stripAnsi(text: string): string {
  // Most console lines have no escape at all: no copies (a flood's cost per line).
  if (!hasControl(text)) return text
  // eslint-disable-next-line no-control-regex
  return text.replace(ANSI, '').replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g, '')
}

export type ConsoleEventKind = 'kernel-panic' | 'emergency-mode' | 'ready'

export interface ConsoleEvent {
  kind: ConsoleEventKind
  /** Index of the matching line among all lines the console printed (ConsoleMonitor.lineCount). */
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

/** Text every pattern above contains: a line with none of it is no event (plain searches, fast). */
const EVENT_WORDS = ['panic', 'BUG', 'mode', 'root', 'stage 1', 'login:', 'Reached target']

function mayBeEvent(text: string): boolean {
  return EVENT_WORDS.some((w) => text.includes(w))
}

/** Classifies one ANSI-stripped console line. Fatal patterns win over readiness. */
export function classifyLine(line: string): ConsoleEventKind | undefined {
  // One scan rules out the ordinary line; only a candidate is told apart.
  if (!mayBeEvent(line)) return undefined
  if (PANIC.some((re) => re.test(line))) return 'kernel-panic'
  if (EMERGENCY.some((re) => re.test(line))) return 'emergency-mode'
  if (READY.some((re) => re.test(line))) return 'ready'
  return undefined
}

/**
 * Lines that show the kernel has handed over to userspace (init is running): the kernel's own
 * `Run /init as init process` (shown at loglevel 7 and up), NixOS's stage 1 and stage 2 banners,
 * systemd's `Welcome to …!` banner, its `systemd[1]:` log lines and its `[  OK  ]`-style status
 * lines. A console that showed none of them is "before userspace" (the boot-retries policy).
 */
const USERSPACE = [
  /\bRun \S+ as init process/,
  /<<< NixOS Stage [12] >>>/,
  /\bWelcome to \S.*!/,
  /\bsystemd\[1\]: /,
  /^\[ *(OK|FAILED|DEPEND|TIME) *\] /
]
/** Text every USERSPACE pattern contains (a plain search rules out the ordinary kernel line). */
const USERSPACE_WORDS = ['init process', 'NixOS Stage', 'Welcome to', 'systemd[1]', '] ']

/** Whether one ANSI-stripped console line shows that userspace (init) has started. */
export function isUserspaceLine(line: string): boolean {
  if (!USERSPACE_WORDS.some((w) => line.includes(w))) return false
  return USERSPACE.some((re) => re.test(line))
}

/** Lines that explain an emergency-mode boot (why systemd gave up). */
const EMERGENCY_CAUSES =
  /Timed out waiting for device|Dependency failed|Failed to (start|mount)|\bFAILED\b|Failed to (find|mount)|not found|can't find|mounting .* failed/i

/** Characters kept of one console line; the rest of a longer line is dropped, with a marker. */
export const MAX_LINE = 16 * 1024

export class ConsoleMonitor {
  /** The last lines (at least `maxLines` of them once that many were printed). */
  readonly lines: string[] = []
  private partial = ''
  /** Dropping the rest of a line longer than MAX_LINE until its newline. */
  private skipping = false
  /** Lines trimmed from the front of `lines`: event indices are absolute. */
  private dropped = 0
  /** The end of the previous chunk, and what the open line's text may hold (see push). */
  private lastText = ''
  private openControl = false
  private openWords = false
  private decoder = new TextDecoder('utf-8')
  private readonly seen = new Set<ConsoleEventKind>()
  bytes = 0
  lastOutputAt: number | undefined
  /** When the first line showing userspace (init) arrived (isUserspaceLine); undefined before. */
  userspaceAt: number | undefined

  constructor(
    private readonly onEvent: (event: ConsoleEvent) => void,
    private readonly now: () => number = Date.now,
    private readonly maxLines = 20_000
  ) {}

  /** Lines seen so far, including those no longer kept. */
  get lineCount(): number {
    return this.dropped + this.lines.length
  }

  /**
   * Feeds raw console bytes. Linear in the chunk: the open line is never longer than MAX_LINE,
   * so a guest printing a gigabyte without a newline costs no more than one that prints lines.
   */
  push(chunk: Buffer | string): void {
    this.bytes += chunk.length
    this.lastOutputAt = this.now()
    const text = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true })
    // Looked at once per chunk, not per line: lines of a chunk without escapes need no stripping,
    // and lines of a chunk without any event word need no classifying (the end of the previous
    // chunk is included, so a word split between two chunks is still seen).
    const control = hasControl(text)
    const words = mayBeEvent(this.lastText + text.slice(0, 16)) || mayBeEvent(text)
    this.lastText = text.slice(-16)
    // The first line ending here continues the open line of earlier chunks: its text may hold
    // what those chunks held.
    let lineControl = control || this.openControl
    let lineWords = words || this.openWords
    let at = 0
    let cr = text.indexOf('\r')
    let lf = text.indexOf('\n')
    for (;;) {
      if (cr !== -1 && cr < at) cr = text.indexOf('\r', at)
      if (lf !== -1 && lf < at) lf = text.indexOf('\n', at)
      // The next CR LF, LF or CR.
      const next = cr === -1 ? lf : lf === -1 ? cr : Math.min(cr, lf)
      const end = next === -1 ? text.length : next
      if (!this.skipping) {
        const room = MAX_LINE - this.partial.length
        this.partial += text.slice(at, at + Math.min(room + 1, end - at))
        if (this.partial.length > MAX_LINE) {
          this.addLine(
            this.partial.slice(0, MAX_LINE),
            lineControl,
            lineWords,
            ` … [line cut at ${MAX_LINE} characters]`
          )
          lineControl = control
          lineWords = words
          this.partial = ''
          this.skipping = true
        }
      }
      if (next === -1) break
      if (this.skipping) this.skipping = false
      else this.addLine(this.partial, lineControl, lineWords)
      lineControl = control
      lineWords = words
      this.partial = ''
      at = next + (text[next] === '\r' && text[next + 1] === '\n' ? 2 : 1)
    }
    this.openControl = this.partial !== '' && lineControl
    this.openWords = this.partial !== '' && lineWords
    // A getty prompt ("nixos-vm login: ") has no newline after it: look at the open line too.
    if (!this.skipping && this.partial !== '') {
      const open = stripAnsi(this.partial.slice(-256))
      if (/\blogin: *$/.test(open)) this.emit('ready', this.lineCount, open)
    }
  }

  /** Flushes the last partial line (when the console closes). */
  end(): void {
    if (this.partial !== '') this.addLine(this.partial, true, true)
    this.partial = ''
  }

  /** `control`: the raw line may hold escapes; `words`: it may be an event. */
  private addLine(raw: string, control: boolean, words: boolean, suffix = ''): void {
    const line = (control ? stripAnsi(raw) : raw) + suffix
    this.lines.push(line)
    // Looked for only until found: once init runs, a line costs nothing more.
    if (this.userspaceAt === undefined && isUserspaceLine(line)) this.userspaceAt = this.now()
    const kind = words ? classifyLine(line) : undefined
    if (kind !== undefined) this.emit(kind, this.lineCount - 1, line)
    // Trimmed in batches: one splice per maxLines/2 lines keeps the cost per line constant.
    if (this.lines.length > this.maxLines + (this.maxLines >> 1)) {
      const n = this.lines.length - this.maxLines
      this.lines.splice(0, n)
      this.dropped += n
    }
  }

  private emit(kind: ConsoleEventKind, line: number, text: string): void {
    if (this.seen.has(kind)) return
    this.seen.add(kind)
    this.onEvent({ kind, line, text })
  }

  /** The last `n` non-empty lines, including the open one. */
  tail(n: number): string[] {
    const open = this.skipping ? '' : stripAnsi(this.partial.slice(-MAX_LINE))
    const all = [...this.lines.slice(-(n + 200)), open].filter((l) => l.trim() !== '')
    return all.slice(-n)
  }

  /** Evidence for a fatal event: context before the matching line and everything after it. */
  excerpt(event: ConsoleEvent, before = 25, maxAfter = 40): string {
    const at = event.line - this.dropped
    const start = Math.max(0, at - before)
    const picked = this.lines
      .slice(start, Math.max(0, at + 1 + maxAfter))
      .filter((l) => l.trim() !== '')
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
