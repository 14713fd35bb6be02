import { describe, expect, it } from '@jest/globals'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseTimespan } from '../../src/checks/performance.js'
import {
  UNIT_TIMES_COMMAND,
  blameFromDump,
  criticalChainFromDump,
  formatSpan,
  parseUnitDump,
  startTime
} from '../../src/checks/unit-times.js'

// One boot of the x86_64 test guest, read three ways in the same minute: the dump the engine reads
// (UNIT_TIMES_COMMAND), and systemd-analyze's own blame and critical-chain.
const FIXTURES = join(process.cwd(), 'tests/fixtures/systemd')
const read = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8')
const dump = parseUnitDump(read('unit-times-x86_64.txt'))

describe('parseUnitDump', () => {
  it('reads the default target, the boot marks and every unit', () => {
    expect(dump.defaultTarget).toBe('graphical.target')
    expect(dump.boot).toEqual({ userspace: 2_635_467, finish: 16_656_524 })
    expect(dump.units.size).toBe(171)
    expect(dump.units.get('systemd-journald.socket')).toEqual({
      id: 'systemd-journald.socket',
      after: ['system.slice', '-.mount'],
      activating: 4_112_410,
      activated: 4_112_410,
      deactivating: 0,
      deactivated: 0
    })
  })

  it('has no boot marks while the boot is not finished', () => {
    const d = parseUnitDump(
      'graphical.target\nUserspaceTimestampMonotonic=100\nFinishTimestampMonotonic=0\n\nId=a.service\nAfter=\n'
    )
    expect(d.boot).toBeUndefined()
    expect(criticalChainFromDump(d)).toBe('')
    expect(d.units.get('a.service')?.after).toEqual([])
  })

  it('asks for the properties it reads, with the pattern quoted', () => {
    for (const p of [
      'Id',
      'After',
      'InactiveExitTimestampMonotonic',
      'ActiveEnterTimestampMonotonic'
    ])
      expect(UNIT_TIMES_COMMAND).toContain(`-p ${p}`)
    expect(UNIT_TIMES_COMMAND).toMatch(/--all .* '\*'$/)
  })
})

describe('blame and critical chain from the dump agree with systemd-analyze', () => {
  it('lists the same units in the same order with the same times as systemd-analyze blame', () => {
    const ours = blameFromDump(dump, 100)
    const theirs = read('blame-x86_64.txt')
      .split('\n')
      .map((l) => /^\s*(.+?)\s+(\S+)$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => ({ unit: m[2], ms: parseTimespan(m[1]) ?? NaN }))
    expect(theirs).toHaveLength(39)
    expect(ours.map((b) => b.unit)).toEqual(theirs.map((b) => b.unit))
    ours.forEach((b, i) => expect(Math.abs(b.ms - theirs[i].ms)).toBeLessThanOrEqual(1))
    expect(ours[0]).toEqual({ unit: 'docker.service', ms: 6713 })
  })

  it('prints the critical chain systemd-analyze printed, line for line', () => {
    expect(criticalChainFromDump(dump)).toBe(read('critical-chain-x86_64.txt').trimEnd())
  })

  it('counts a unit that ran and stopped until it stopped, and skips units never started', () => {
    const t = { id: 'x.service', after: [], deactivating: 0 }
    expect(startTime({ ...t, activating: 10, activated: 0, deactivated: 510 })).toBe(500)
    expect(startTime({ ...t, activating: 0, activated: 0, deactivated: 0 })).toBe(0)
  })

  it('marks a unit reached twice instead of walking it again', () => {
    const d = parseUnitDump(
      [
        'a.target',
        'UserspaceTimestampMonotonic=1000',
        'FinishTimestampMonotonic=9000000',
        '',
        'Id=a.target\nAfter=b.service c.service\nInactiveExitTimestampMonotonic=5000000\nActiveEnterTimestampMonotonic=5000000',
        '',
        'Id=b.service\nAfter=d.service\nInactiveExitTimestampMonotonic=3000000\nActiveEnterTimestampMonotonic=4000000',
        '',
        'Id=c.service\nAfter=b.service\nInactiveExitTimestampMonotonic=3500000\nActiveEnterTimestampMonotonic=4000000',
        '',
        'Id=d.service\nAfter=\nInactiveExitTimestampMonotonic=1500000\nActiveEnterTimestampMonotonic=2000000'
      ].join('\n')
    )
    const lines = criticalChainFromDump(d).split('\n').slice(3)
    expect(lines).toEqual([
      'a.target @4.999s',
      '├─b.service @2.999s +1s',
      '│ └─d.service @1.499s +500ms',
      '└─c.service @3.499s +500ms',
      '  └─b.service @2.999s +1s',
      '    └─...'
    ])
  })
})

describe('formatSpan (systemd format_timespan, ms accuracy)', () => {
  it.each([
    [825_400, '825ms'],
    [7_095_999, '7.095s'],
    [1_360_000, '1.360s'],
    [2_000_000, '2s'],
    [62_345_000, '1min 2.345s'],
    [3_723_000_000, '1h 2min 3s'],
    [400, '0']
  ])('%d µs → %s', (us, text) => expect(formatSpan(us)).toBe(text))
})
