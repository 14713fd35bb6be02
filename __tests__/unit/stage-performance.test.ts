import { describe, expect, it } from '@jest/globals'
import { parseChecks } from '../../src/checks/schema.js'
import { FakeSsh, ROOT, stageCtx as ctx } from '../fixtures/guest.js'
import {
  EVIDENCE_COMMAND,
  PROBE_COMMAND,
  PROBE_TRIES,
  performanceStage
} from '../../src/checks/performance.js'
import { CRITICAL_CHAIN_HEADER } from '../../src/checks/unit-times.js'
import { performanceUnit } from '../../src/checks/performance.js'
import { checksOf as parsed } from '../fixtures/guest.js'

/** One unit's block of `systemctl show`, as the performance stage's dump has it. */
const unit = (id: string, after: string, activating: number, activated: number): string =>
  `Id=${id}\nAfter=${after}\nInactiveExitTimestampMonotonic=${activating}\nActiveEnterTimestampMonotonic=${activated}\n`

describe('performance stage', () => {
  it('retries while the boot is not finished, records report.boot, judges budgets', async () => {
    const checks = parseChecks(
      'performance:\n  bootTime: 10s\n  kernel: 30s\n  memoryUsedMiB: 1500\n  timeout: 20s\n',
      { label: 'c.yml', root: ROOT }
    )
    const finished = 'Startup finished in 3.094s (kernel) + 32.116s (userspace) = 35.211s\n'
    const notFinished =
      'Bootup is not yet finished (org.freedesktop.systemd1.Manager.FinishTimestampMonotonic=0).\nPlease try again later.\n'
    const dump = [
      'graphical.target',
      'UserspaceTimestampMonotonic=1000000',
      'FinishTimestampMonotonic=33000000',
      '',
      unit('graphical.target', 'multi-user.target', 32_708_000, 32_708_000),
      unit('multi-user.target', 'docker.service ssh.service', 32_702_000, 32_702_000),
      unit('docker.service', '', 17_000_000, 31_912_000),
      unit('ssh.service', '', 5_000_000, 7_052_000),
      '@@nvv-meminfo@@',
      'MemTotal: 995352 kB\nMemAvailable: 744888 kB\n'
    ].join('\n')
    const ssh = new FakeSsh((c, n) => {
      // Asked before the end of the boot: the phases are not there yet, so it polls
      // systemd-analyze time alone, then asks for everything again.
      if (c === EVIDENCE_COMMAND)
        return {
          stdout:
            n < 2 ? `${notFinished}@@nvv-units@@ 1\n${dump}` : `${finished}@@nvv-units@@ 0\n${dump}`
        }
      if (c === 'systemd-analyze time 2>&1')
        return n < 2 ? { code: 1, stdout: notFinished } : { stdout: finished }
      if (c === 'true') return { delayMs: [30, 10, 20, 50, 40][n - 1] }
      if (c === PROBE_COMMAND)
        return { stdout: '@@nvv-probe@@ 310 90\n@@nvv-probe@@ 300 120\n@@nvv-probe@@ 900 100\n' }
      return { code: 1 }
    })
    const c = ctx(ssh)
    const results = await performanceStage(c, checks)
    expect(ssh.calls).toEqual([
      EVIDENCE_COMMAND,
      'systemd-analyze time 2>&1',
      'systemd-analyze time 2>&1',
      EVIDENCE_COMMAND,
      ...Array<string>(PROBE_TRIES.ssh).fill('true'),
      PROBE_COMMAND
    ])
    // Medians: of the round trips (measured, so a few ms late) and of the guest's own numbers.
    expect(c.report.responsiveness).toMatchObject({ cpuProbeMs: 310, diskProbeMs: 100 })
    expect(c.report.responsiveness?.sshRoundTripMs).toBeGreaterThanOrEqual(30)
    expect(c.report.responsiveness?.sshRoundTripMs).toBeLessThan(40)
    expect(results.find((r) => r.name === 'responsiveness')).toMatchObject({
      status: 'passed',
      output: expect.stringMatching(
        /^SSH round trip \d+ms · CPU probe 310ms · disk probe 100ms \(medians\)$/
      )
    })
    expect(c.report.boot).toEqual({
      kernelMs: 3094,
      userspaceMs: 32_116,
      totalMs: 35_211,
      blame: [
        { unit: 'docker.service', ms: 14_912 },
        { unit: 'ssh.service', ms: 2052 }
      ],
      criticalChain: `${CRITICAL_CHAIN_HEADER}\ngraphical.target @31.708s\n└─multi-user.target @31.702s\n  └─docker.service @16s +14.912s`,
      memoryUsedMiB: 245
    })
    const failed = results.filter((r) => r.status === 'failed')
    expect(failed).toEqual([
      {
        name: 'boot time ≤ 10.0s',
        status: 'failed',
        durationMs: 0,
        output: '35.2s exceeds the budget of 10.0s (by 25.2s)',
        file: 'c.yml',
        line: 2
      }
    ])
    expect(results.find((r) => r.name.startsWith('memory used'))).toMatchObject({
      status: 'passed',
      line: 4
    })
  })
})

describe('performance stage after the boot', () => {
  it('asks one command when the boot has ended; a missing systemd-analyze fails with its exit', async () => {
    const checks = parseChecks('performance: { bootTime: 1m }\n', { label: 'c.yml', root: ROOT })
    const ssh = new FakeSsh(() => ({
      stdout:
        'sh: 1: systemd-analyze: not found\n@@nvv-units@@ 127\ngraphical.target\n@@nvv-meminfo@@\nMemTotal: 995352 kB\nMemAvailable: 744888 kB\n'
    }))
    const c = ctx(ssh)
    const results = await performanceStage(c, checks)
    expect(ssh.calls).toEqual([
      EVIDENCE_COMMAND,
      ...Array<string>(PROBE_TRIES.ssh).fill('true'),
      PROBE_COMMAND
    ])
    // A guest whose probe prints nothing usable still gives its SSH round trip.
    expect(Object.keys(c.report.responsiveness ?? {})).toEqual(['sshRoundTripMs'])
    expect(results.find((r) => r.name === 'systemd-analyze time')).toMatchObject({
      status: 'failed',
      output: expect.stringMatching(/^systemd-analyze time: exit 127 \(command not found\)\n/)
    })
    expect(c.report.boot?.memoryUsedMiB).toBe(245)
  })
})

describe('performance unit', () => {
  it('owns the performance section, records without it, and defaults to generous budgets', () => {
    expect(Object.keys(performanceUnit.sections)).toEqual(['performance'])
    expect(performanceUnit.timeouts).toEqual({ performance: 5 * 60_000 })
    expect(performanceUnit.afterBootEnd).toBe(true)
    expect(performanceUnit.defaults()).toEqual({
      performance: {
        bootTimeMs: 10 * 60_000,
        sshReadyMs: 15 * 60_000,
        timeoutMs: 5 * 60_000,
        lines: {}
      }
    })
    expect(parsed('users: []\n').performance).toEqual({ timeoutMs: 5 * 60_000, lines: {} })
  })

  it('reads each budget with its line', () => {
    expect(parsed('performance:\n  kernel: 5s\n  memoryUsedMiB: 512\n').performance).toEqual({
      file: 'c.yml',
      line: 1,
      kernelMs: 5000,
      memoryUsedMiB: 512,
      timeoutMs: 5 * 60_000,
      lines: { kernel: 2, memoryUsedMiB: 3 }
    })
    expect(() => parsed('performance: { memoryUsedMiB: 0 }\n')).toThrow(
      'c.yml:1: performance.memoryUsedMiB: expected a positive number, got number 0'
    )
  })
})
