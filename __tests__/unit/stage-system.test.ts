import { describe, expect, it } from '@jest/globals'
import { defaultChecks } from '../../src/checks/defaults.js'
import { parseChecks } from '../../src/checks/schema.js'
import { Deadline } from '../../src/util/time.js'
import { FakeSsh, ROOT, stageCtx as ctx } from '../fixtures/guest.js'
import { parseFailedUnits, systemStage, unitJournalCommand } from '../../src/checks/system.js'
import { systemUnit } from '../../src/checks/system.js'
import { checksOf as parsed } from '../fixtures/guest.js'

describe('system stage', () => {
  it('degraded: fails naming every failed unit with its last journal lines', async () => {
    const ssh = new FakeSsh((c) => {
      if (c.includes('is-system-running --wait')) return { code: 1, stdout: 'degraded\n' }
      if (c.includes('list-units --failed'))
        return {
          stdout:
            'broken-demo.service loaded failed failed Broken demo\nother.service loaded failed failed Other\n'
        }
      if (c.includes('-u broken-demo.service'))
        return {
          stdout: '[    9.1] nixos-vm sh[301]: broken-demo: cannot open /etc/broken-demo.conf\n'
        }
      if (c.includes('-u other.service')) return { stdout: '[   10.0] other: exit 3\n' }
      return { code: 1 }
    })
    const results = await systemStage(
      ctx(ssh, { deadline: new Deadline(600_000) }),
      defaultChecks()
    )
    expect(results.map((r) => [r.name, r.status, r.unit])).toEqual([
      ['system state', 'failed', 'broken-demo.service'],
      ['failed unit broken-demo.service', 'failed', 'broken-demo.service'],
      ['failed unit other.service', 'failed', 'other.service']
    ])
    const out = results[0].output
    expect(out).toMatch(/^system state: degraded/)
    expect(out).toContain('failed units (2): broken-demo.service, other.service')
    expect(out).toContain('broken-demo: cannot open /etc/broken-demo.conf')
    expect(out).toContain('other: exit 3')
    // The default 5m, bounded on the guest too; with a stage budget below it, the budget.
    expect(ssh.calls[0]).toMatch(/timeout 300 systemctl is-system-running --wait/)
  })

  it('running passes with one check', async () => {
    const results = await systemStage(
      ctx(new FakeSsh(() => ({ stdout: 'running\n' }))),
      defaultChecks()
    )
    expect(results).toHaveLength(1)
    expect(results[0]).toMatchObject({ name: 'system state', status: 'passed' })
  })

  it('still starting at the deadline: fails with the pending jobs', async () => {
    const checks = parseChecks('system: { timeout: 2s }\n', { label: 'c.yml', root: ROOT })
    const ssh = new FakeSsh((c) => {
      if (c.includes('--wait')) return { code: 124, stdout: 'starting\n' }
      if (c.includes('list-jobs'))
        return { stdout: 'JOB UNIT TYPE STATE\n12 slow.service start running\n' }
      return { stdout: '' }
    })
    const [r] = await systemStage(ctx(ssh), checks)
    expect(r.status).toBe('failed')
    expect(r.output).toMatch(/^system state: still "starting" after 2\.0s/)
    expect(r.output).toContain('12 slow.service start running')
    expect(r).toMatchObject({ file: 'c.yml', line: 1 })
  })
})

describe('system: systemd units', () => {
  it('lists failed units from list-units --failed, with or without the bullet', () => {
    expect(
      parseFailedUnits(
        'broken-demo.service loaded failed failed Broken demo service\n● other.mount loaded failed failed /srv\n\n'
      )
    ).toEqual(['broken-demo.service', 'other.mount'])
    expect(parseFailedUnits('0 loaded units listed.\n')).toEqual([])
  })
})

describe('system: systemd units', () => {
  it('reads the last journal lines of a unit, quoted', () => {
    expect(unitJournalCommand('broken-demo.service')).toBe(
      'journalctl -b -u broken-demo.service -n 20 --no-pager -o short-monotonic 2>&1'
    )
    expect(unitJournalCommand('a\\x2db.mount')).toBe(
      `journalctl -b -u 'a\\x2db.mount' -n 20 --no-pager -o short-monotonic 2>&1`
    )
  })
})

describe('system unit', () => {
  it('owns the system section, runs with its default without it, and waits for nothing', () => {
    expect(Object.keys(systemUnit.sections)).toEqual(['system'])
    expect(systemUnit.timeouts).toEqual({ system: 5 * 60_000 })
    expect(systemUnit.afterBootEnd).toBe(false)
    expect(systemUnit.defaults()).toEqual({ system: { timeoutMs: 5 * 60_000 } })
    expect(parsed('users: []\n').system).toEqual({ timeoutMs: 5 * 60_000 })
    expect(parsed('\nsystem: { timeout: 90s }\n').system).toEqual({
      file: 'c.yml',
      line: 2,
      timeoutMs: 90_000
    })
    expect(() => parsed('system: { wait: 1 }\n')).toThrow(
      'c.yml:1: system: unknown key "wait" (allowed keys: timeout)'
    )
  })
})
