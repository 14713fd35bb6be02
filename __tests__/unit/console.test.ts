import { describe, expect, it } from '@jest/globals'
import { ConsoleMonitor, classifyLine, stripAnsi, type ConsoleEvent } from '../../src/vm/console.js'

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
})
