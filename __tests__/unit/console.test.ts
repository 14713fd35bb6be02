import { describe, expect, it } from '@jest/globals'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CappedLog } from '../../src/vm/capped-log.js'
import {
  ConsoleMonitor,
  MAX_LINE,
  classifyLine,
  stripAnsi,
  type ConsoleEvent
} from '../../src/vm/console.js'

describe('stripAnsi', () => {
  it('removes colour and cursor sequences that systemd and getty print', () => {
    expect(stripAnsi('[\x1b[0;32m  OK  \x1b[0m] Started \x1b[0;1;39mssh.service\x1b[0m.')).toBe(
      '[  OK  ] Started ssh.service.'
    )
    expect(stripAnsi('\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS')).toBe('SeaBIOS')
  })
})

describe('classifyLine', () => {
  it.each([
    [
      '[    2.1] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100',
      'kernel-panic'
    ],
    [
      'You are in emergency mode. After logging in, type "journalctl -xb" to view',
      'emergency-mode'
    ],
    ['Cannot open access to console, the root account is locked.', 'emergency-mode'],
    ['An error occurred in stage 1 of the boot process, which must mount the', 'emergency-mode'],
    ['nixos-vm login: ', 'ready'],
    ['[  OK  ] Reached target multi-user.target - Multi-User System.', 'ready'],
    ['[  OK  ] Reached target Multi-User System.', 'ready'],
    ['[  OK  ] Started ssh.service - OpenBSD Secure Shell server.', undefined],
    ['Last login: Tue', undefined]
  ])('%s → %s', (line, kind) => {
    expect(classifyLine(line)).toBe(kind)
  })
})

describe('ConsoleMonitor', () => {
  it('sees a login prompt that has no newline yet, across chunk boundaries', () => {
    const events: ConsoleEvent[] = []
    const m = new ConsoleMonitor((e) => events.push(e))
    m.push('Debian GNU/Linux 12 nixos-vm ttyS0\r\n\r\nnixos-vm lo')
    expect(events).toEqual([])
    m.push(Buffer.from('gin: '))
    expect(events.map((e) => e.kind)).toEqual(['ready'])
  })

  it('reports each kind once and keeps the panic context in the excerpt', () => {
    const events: ConsoleEvent[] = []
    const m = new ConsoleMonitor((e) => events.push(e))
    const lines = [
      'Run /init as init process',
      "switch_root: can't execute '/nonexistent'",
      'Kernel panic - not syncing: Attempted to kill init!',
      'CPU: 0 PID: 1',
      'Kernel panic - not syncing: again'
    ]
    m.push(lines.join('\n') + '\n')
    expect(events.map((e) => e.kind)).toEqual(['kernel-panic'])
    const excerpt = m.excerpt(events[0])
    expect(excerpt).toContain("switch_root: can't execute")
    expect(excerpt).toContain('CPU: 0 PID: 1')
  })

  it('puts the cause of an emergency boot into the excerpt even when it is far above', () => {
    const events: ConsoleEvent[] = []
    const m = new ConsoleMonitor((e) => events.push(e))
    m.push('[ TIME ] Timed out waiting for device dev-disk-by\\x2dlabel-missing.device.\n')
    for (let i = 0; i < 60; i++) m.push(`filler ${i}\n`)
    m.push('You are in emergency mode. After logging in, type "journalctl -xb"\n')
    const excerpt = m.excerpt(events[0])
    expect(excerpt).toMatch(/Timed out waiting for device/)
    expect(excerpt).toMatch(/You are in emergency mode/)
  })

  it('sees events and escapes however the chunks cut a line', () => {
    const kinds = (chunks: string[]): [string[], string[]] => {
      const events: ConsoleEvent[] = []
      const m = new ConsoleMonitor((e) => events.push(e))
      for (const c of chunks) m.push(Buffer.from(c))
      return [events.map((e) => e.kind), m.lines]
    }
    // The word in one chunk, the line's end in the next one, which has no word of its own.
    expect(kinds(['Kernel panic - not syncing: a', '\nplain line\n'])[0]).toEqual(['kernel-panic'])
    // The word itself split.
    expect(kinds(['Kernel pa', 'nic - not syncing: b\n'])[0]).toEqual(['kernel-panic'])
    expect(kinds(['Kernel panic - not sync', 'ing: c', '\n'])[0]).toEqual(['kernel-panic'])
    // An escape in the open line, the end of the line in a chunk without escapes.
    const [ev, lines] = kinds(['\x1b[0;32m  OK  \x1b[0m] Reached targ', 'et multi-user.target.\n'])
    expect(ev).toEqual(['ready'])
    expect(lines).toEqual(['  OK  ] Reached target multi-user.target.'])
    // A line finished by the close of the console.
    const events: ConsoleEvent[] = []
    const m = new ConsoleMonitor((e) => events.push(e))
    m.push('You are in emergency mode')
    m.end()
    expect(events.map((e) => e.kind)).toEqual(['emergency-mode'])
  })

  it('cuts a line without end at MAX_LINE and keeps reading lines after it', () => {
    const events: ConsoleEvent[] = []
    const m = new ConsoleMonitor((e) => events.push(e))
    // 8 MiB without a newline, in 64 KiB chunks (the old monitor re-joined and re-scanned the
    // open line on every chunk: quadratic), then a login prompt.
    const chunk = 'x'.repeat(64 * 1024)
    for (let i = 0; i < 128; i++) m.push(chunk)
    m.push('\nnixos-vm login: ')
    expect(m.lines).toHaveLength(1)
    expect(m.lines[0]).toHaveLength(MAX_LINE + ` … [line cut at ${MAX_LINE} characters]`.length)
    expect(m.lines[0]).toMatch(/^x+ … \[line cut at 16384 characters\]$/)
    expect(events.map((e) => e.kind)).toEqual(['ready'])
    expect(m.tail(1)).toEqual(['nixos-vm login: '])
  })

  it('keeps the last lines of a flood, counts them all, and still finds the panic', () => {
    const events: ConsoleEvent[] = []
    const m = new ConsoleMonitor((e) => events.push(e), Date.now, 1000)
    m.push('Kernel panic - not syncing: early\n')
    for (let i = 0; i < 10_000; i++) m.push(`flood ${i}\n`)
    expect(m.lineCount).toBe(10_001)
    expect(m.lines.length).toBeLessThanOrEqual(1500)
    expect(m.lines.at(-1)).toBe('flood 9999')
    expect(events).toEqual([
      { kind: 'kernel-panic', line: 0, text: 'Kernel panic - not syncing: early' }
    ])
    // The panic line scrolled away: the excerpt is what is left, not a wrong line.
    expect(() => m.excerpt(events[0])).not.toThrow()
  })
})

describe('CappedLog', () => {
  it('keeps the head and the tail of a flood, with a marker between', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'nvv-log-')), 'console.log')
    const log = new CappedLog(file, 1000, 500)
    for (let i = 0; i < 100; i++)
      log.write(Buffer.from(`${String(i).padStart(3, '0')}`.repeat(33) + '\n'))
    await log.end()
    const text = readFileSync(file, 'utf8')
    expect(log.total).toBe(10_000)
    expect(log.cut).toBe(8500)
    expect(text.startsWith('000000')).toBe(true)
    expect(text).toContain(
      '\n… nixos-vm-validate: 8500 bytes of console output cut here (console.log keeps the first 1000 and the last 500 of 10000 bytes) …\n'
    )
    expect(text.endsWith('099099099\n')).toBe(true)
    expect(Buffer.byteLength(text)).toBeLessThan(1000 + 500 + 200)
  })

  it('writes everything, unmarked, when the cap is not reached', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'nvv-log-')), 'console.log')
    const log = new CappedLog(file, 1000, 500)
    log.write(Buffer.from('a'.repeat(1200)))
    log.write(Buffer.from('b'.repeat(200)))
    await log.end()
    expect(readFileSync(file, 'utf8')).toBe('a'.repeat(1200) + 'b'.repeat(200))
    expect(log.cut).toBe(0)
  })
})
