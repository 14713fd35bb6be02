import { describe, expect, it } from '@jest/globals'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseChecks } from '../../src/checks/schema.js'
import { FakeSsh, ROOT, guestOf, stageCtx as ctx } from '../fixtures/guest.js'
import { e2eCommand, e2eLogName, e2eStage, scriptErrorLine } from '../../src/checks/e2e.js'
import { e2eUnit } from '../../src/checks/e2e.js'
import { checksOf as parsed } from '../fixtures/guest.js'

describe('e2e stage', () => {
  it('copies the script to a fresh temp dir, runs it as the user, keeps the log, cleans up', async () => {
    const checks = parseChecks(
      'e2e:\n  - { script: tests/fixtures/checks/e2e-fail.sh, user: baleen, timeout: 1m }\n',
      { label: 'c.yml', root: ROOT, checkScripts: true }
    )
    const ssh = new FakeSsh((c) => {
      if (c.includes('mktemp -d')) return { stdout: '/tmp/nvv-e2e.Ab12\n' }
      if (c.includes('e2e-fail.sh'))
        return {
          code: 127,
          stdout:
            '==> e2e-fail: step 1 ok (as baleen)\n/tmp/nvv-e2e.Ab12/1/e2e-fail.sh: 7: no-such-tool: not found\n'
        }
      return {}
    })
    const c = ctx(ssh)
    const [r] = await e2eStage(c, checks)
    expect(ssh.calls[0]).toMatch(/mkdir "\$d\/1" && chmod 755 "\$d" "\$d\/1"/)
    expect(ssh.puts).toEqual([
      {
        local: join(ROOT, 'tests/fixtures/checks/e2e-fail.sh'),
        remote: '/tmp/nvv-e2e.Ab12/1/e2e-fail.sh',
        mode: 0o755
      }
    ])
    // Run and clean-up are one command; the script's exit status is its exit status.
    expect(ssh.calls).toHaveLength(2)
    expect(ssh.calls[1]).toMatch(
      /^\(if command -v runuser [\s\S]*runuser -u baleen -- sh -lc [\s\S]*exec timeout -k 5 \d+ \/tmp\/nvv-e2e\.Ab12\/1\/e2e-fail\.sh 2>&1[\s\S]*\); rc=\$\?; rm -rf \/tmp\/nvv-e2e\.Ab12\/1; rmdir \/tmp\/nvv-e2e\.Ab12 2>\/dev\/null; exit \$rc$/
    )
    expect(r).toMatchObject({
      name: 'tests/fixtures/checks/e2e-fail.sh (as baleen)',
      status: 'failed',
      file: 'tests/fixtures/checks/e2e-fail.sh',
      line: 7
    })
    expect(r.output).toMatch(
      /^tests\/fixtures\/checks\/e2e-fail\.sh as baleen: exit 127 \(command not found\)\n==> e2e-fail: step 1 ok/
    )
    expect(
      readFileSync(join(c.outDir, 'e2e-tests_fixtures_checks_e2e-fail.sh.log'), 'utf8')
    ).toContain('no-such-tool: not found')
  })
})

describe('e2e', () => {
  it('runs the copied script as the user, bounded by timeout(1), stderr merged', () => {
    const c = e2eCommand('/tmp/nvv-e2e.abc/dev-env.sh', 300_000, guestOf().asUser('baleen'))
    expect(c).toMatch(/runuser -u baleen -- sh -lc /)
    expect(c).toContain('exec timeout -k 5 300 /tmp/nvv-e2e.abc/dev-env.sh 2>&1')
  })

  it('finds the failing line in dash and bash messages', () => {
    expect(
      scriptErrorLine('/tmp/nvv-e2e.x/e2e-fail.sh: 7: no-such-tool: not found', 'e2e-fail.sh')
    ).toBe(7)
    expect(
      scriptErrorLine(
        '/tmp/x/t.sh: line 12: foo: command not found\n/tmp/x/t.sh: line 14: bar: x',
        't.sh'
      )
    ).toBe(14)
    expect(scriptErrorLine('dev-env: FAIL: make failed', 'dev-env.sh')).toBeUndefined()
    expect(scriptErrorLine('/tmp/x/other.sh: 3: x: not found', 'e2e-fail.sh')).toBeUndefined()
  })

  it('names the log artifact after the script', () => {
    expect(e2eLogName('tests/e2e/dev-env.sh')).toBe('e2e-tests_e2e_dev-env.sh.log')
    expect(e2eLogName('./run me.sh')).toBe('e2e-run_me.sh.log')
  })
})

describe('e2e unit', () => {
  it('owns the e2e section, starts after the boot, and has no default scripts', () => {
    expect(Object.keys(e2eUnit.sections)).toEqual(['e2e'])
    expect(e2eUnit.timeouts).toEqual({ e2e: 10 * 60_000 })
    expect(e2eUnit.afterBootEnd).toBe(true)
    expect(e2eUnit.defaults()).toEqual({ e2e: [] })
  })

  it('reads {script, user, timeout}, the script relative to the repository', () => {
    expect(parsed('e2e:\n  - { script: tests/x.sh, user: bob, timeout: 1m }\n').e2e).toEqual([
      {
        file: 'c.yml',
        line: 2,
        script: 'tests/x.sh',
        path: join(ROOT, 'tests/x.sh'),
        user: 'bob',
        timeoutMs: 60_000
      }
    ])
    expect(() => parsed('e2e: [{ script: ../x.sh }]\n')).toThrow(
      /^c\.yml:1: e2e\[0\]\.script: \.\.\/x\.sh: outside the repository/
    )
  })
})
