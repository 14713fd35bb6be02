import { describe, expect, it } from '@jest/globals'
import {
  budgetChecks,
  judgeBudgets,
  parseAnalyzeTime,
  parseMemoryUsedMiB,
  parseTimespan
} from '../../src/checks/performance.js'

describe('parseTimespan (systemd format_timespan)', () => {
  it.each([
    ['3.094s', 3094],
    ['123ms', 123],
    ['1min 2.345s', 62_345],
    ['2min', 120_000],
    ['1h 2min 3s', 3_723_000],
    ['850us', 0.85],
    ['850µs', 0.85],
    ['10s', 10_000]
  ])('%s → %d ms', (text, ms) => expect(parseTimespan(text)).toBe(ms))

  it('rejects what is not a timespan', () => {
    expect(parseTimespan('soon')).toBeUndefined()
    expect(parseTimespan('3.1 s')).toBeUndefined()
    expect(parseTimespan('')).toBeUndefined()
  })
})

describe('parseAnalyzeTime', () => {
  it('reads kernel + initrd + userspace = total', () => {
    expect(
      parseAnalyzeTime(
        'Startup finished in 1.2s (kernel) + 3.4s (initrd) + 10s (userspace) = 14.6s\nmulti-user.target reached after 9.9s in userspace.\n'
      )
    ).toEqual({
      kernelMs: 1200,
      initrdMs: 3400,
      userspaceMs: 10_000,
      totalMs: 14_600
    })
  })

  it('reads the form without initrd (our Debian guests, direct kernel boot)', () => {
    expect(
      parseAnalyzeTime(
        'Startup finished in 3.094s (kernel) + 32.116s (userspace) = 35.211s \ngraphical.target reached after 31.708s in userspace.'
      )
    ).toEqual({
      kernelMs: 3094,
      userspaceMs: 32_116,
      totalMs: 35_211
    })
  })

  it('reads minutes and milliseconds, and firmware/loader phases', () => {
    expect(
      parseAnalyzeTime(
        'Startup finished in 812ms (kernel) + 1min 5.002s (initrd) + 2min 1.5s (userspace) = 3min 7.314s'
      )
    ).toEqual({
      kernelMs: 812,
      initrdMs: 65_002,
      userspaceMs: 121_500,
      totalMs: 187_314
    })
    expect(
      parseAnalyzeTime(
        'Startup finished in 5.1s (firmware) + 1.2s (loader) + 2s (kernel) + 8s (userspace) = 16.3s'
      )
    ).toEqual({
      firmwareMs: 5100,
      loaderMs: 1200,
      kernelMs: 2000,
      userspaceMs: 8000,
      totalMs: 16_300
    })
  })

  it('is undefined while the boot is not finished', () => {
    expect(
      parseAnalyzeTime(
        "Bootup is not yet finished (org.freedesktop.systemd1.Manager.FinishTimestampMonotonic=0).\nPlease try again later.\nHint: Use 'systemctl list-jobs' to see active jobs"
      )
    ).toBeUndefined()
  })
})

describe('parseMemoryUsedMiB', () => {
  it('is MemTotal − MemAvailable', () => {
    expect(
      parseMemoryUsedMiB(
        'MemTotal:         995352 kB\nMemFree:          704980 kB\nMemAvailable:     744888 kB\n'
      )
    ).toBe(245)
  })
  it('falls back to free + buffers + cached on old kernels', () => {
    expect(
      parseMemoryUsedMiB('MemTotal: 2048000 kB\nMemFree: 1024000 kB\nBuffers: 0 kB\nCached: 0 kB\n')
    ).toBe(1000)
  })
  it('is undefined for garbage', () => {
    expect(parseMemoryUsedMiB('cat: /proc/meminfo: No such file')).toBeUndefined()
  })
})

describe('budgets', () => {
  const spec = {
    timeoutMs: 60_000,
    lines: {},
    bootTimeMs: 180_000,
    kernelMs: 30_000,
    initrdMs: 60_000,
    userspaceMs: 120_000,
    sshReadyMs: 300_000,
    memoryUsedMiB: 1500
  }

  it('fail with the number and the budget, pass within it', () => {
    const results = judgeBudgets(
      budgetChecks(
        spec,
        { kernelMs: 3094, userspaceMs: 200_000, totalMs: 203_094, memoryUsedMiB: 244 },
        40_000
      )
    )
    expect(results.map((r) => [r.key, r.status])).toEqual([
      ['bootTime', 'failed'],
      ['kernel', 'passed'],
      ['initrd', 'skipped'],
      ['userspace', 'failed'],
      ['sshReady', 'passed'],
      ['memoryUsedMiB', 'passed']
    ])
    expect(results[0]).toMatchObject({
      name: 'boot time ≤ 3m00s',
      output: '3m23s exceeds the budget of 3m00s (by 23.1s)'
    })
    expect(results[2].output).toMatch(/no initrd phase/)
    expect(results[5].output).toBe('244 MiB (budget 1500 MiB)')
  })

  it('only budgets that are set become checks', () => {
    expect(
      judgeBudgets(
        budgetChecks(
          { timeoutMs: 1, lines: {}, memoryUsedMiB: 100 },
          { memoryUsedMiB: 300 },
          undefined
        )
      )
    ).toEqual([
      {
        name: 'memory used ≤ 100 MiB',
        key: 'memoryUsedMiB',
        status: 'failed',
        output: '300 MiB exceeds the budget of 100 MiB (by 200 MiB)'
      }
    ])
  })

  it('skips the SSH budget when SSH readiness was not measured', () => {
    const [r] = judgeBudgets(
      budgetChecks({ timeoutMs: 1, lines: {}, sshReadyMs: 1000 }, {}, undefined)
    )
    expect(r).toMatchObject({
      status: 'skipped',
      output: 'SSH readiness was not measured in this run'
    })
  })
})
