import { describe, expect, it } from '@jest/globals'
import { parseChecks } from '../../src/checks/schema.js'
import type { ExecResult } from '../../src/ssh/client.js'
import { FakeSsh, ROOT, stageCtx as ctx } from '../fixtures/guest.js'
import { batchOutcome, judgeCommand, packagesStage, parseBatch } from '../../src/checks/packages.js'
import { packagesUnit } from '../../src/checks/packages.js'
import { checksOf as parsed } from '../fixtures/guest.js'

describe('packages stage', () => {
  it('a missing package fails with the command, exit status and stderr', async () => {
    const checks = parseChecks(
      'packages:\n  - { name: neovim, run: "nvim --version", expect: "^NVIM v", user: baleen }\n',
      { label: 'c.yml', root: ROOT }
    )
    const ssh = new FakeSsh(() => ({ code: 127, stderr: 'sh: 2: nvim: not found\n' }))
    const [r] = await packagesStage(ctx(ssh), checks)
    expect(r).toMatchObject({ name: 'neovim', status: 'failed', file: 'c.yml', line: 2 })
    expect(r.output).toBe(
      '$ nvim --version   (as baleen)\nexit 127 (command not found)\nsh: 2: nvim: not found'
    )
  })
})

describe('packages stage: one batch per user', () => {
  it("runs a user's commands in one login shell and judges each from its part", async () => {
    const checks = parseChecks(
      [
        'packages:',
        '  - { name: git, run: "git --version", expect: "^git version", user: baleen }',
        '  - { name: neovim, run: "nvim --version", user: baleen, timeout: 30s }',
        '  - { name: make, run: "make --version", user: baleen }',
        '  - { name: uname, run: "uname -s" }',
        ''
      ].join('\n'),
      { label: 'c.yml', root: ROOT }
    )
    const ssh = new FakeSsh((c) => {
      const mark = /echo "(@@nvv-[0-9a-f]{12}@@) 0 /.exec(c)?.[1]
      // baleen's batch ends after nvim (as a shell killed mid-way would): make has no part.
      if (mark !== undefined)
        return {
          stdout: `git version 2.39.5\n\n${mark} 0 0 1000000000 1250000000\nsh: 1: nvim: not found\n\n${mark} 1 127 1300000000 1400000000\n`
        }
      return { stdout: 'Linux\n' }
    })
    const results = await packagesStage(ctx(ssh), checks)
    expect(results.map((r) => [r.name, r.status, r.durationMs])).toEqual([
      ['git', 'passed', 250],
      ['neovim', 'failed', 100],
      ['make', 'failed', expect.any(Number)],
      ['uname', 'passed', expect.any(Number)]
    ])
    // One command for baleen's three, one for the SSH user's own.
    expect(ssh.calls).toHaveLength(2)
    const batch = ssh.calls.find((c) => c.includes('runuser -u baleen')) ?? ''
    expect(batch).toContain('${nvv_to:+$nvv_to 30} sh -c')
    expect(batch).toMatch(/nvim --version'\\'' <\/dev\/null 2>&1; nvv_rc=\$\?/)
    expect(results[0].output).toBe('$ git --version   (as baleen)\ngit version 2.39.5')
    expect(results[1].output).toBe(
      '$ nvim --version   (as baleen)\nexit 127 (command not found)\nsh: 1: nvim: not found'
    )
    expect(results[2].output).toMatch(
      /^\$ make --version {3}\(as baleen\)\nthe commands' shell ended before this one \(exit 0\)/
    )
    expect(results[3].output).toBe('$ uname -s\nLinux')
  })

  it('a command past its timeout is told apart from one that failed', () => {
    const spec = { name: 'slow', run: 'sleep 99', timeoutMs: 2000 }
    const batch: ExecResult = {
      command: '',
      code: 0,
      stdout: '',
      stderr: '',
      durationMs: 2100,
      timedOut: false,
      signal: undefined
    }
    expect(batchOutcome(spec, { code: 124, output: '', durationMs: 2050 }, batch)).toEqual({
      status: 'failed',
      output: '$ sleep 99\ntimed out after 2.0s\n',
      durationMs: 2050
    })
    // Without date's %N (busybox) the marker has no times: the check keeps the awaited time.
    expect(parseBatch('x\n\n@@m@@ 0 0 %N %N\n', '@@m@@', 1)).toEqual([{ code: 0, output: 'x' }])
  })
})

describe('judgeCommand', () => {
  it('needs exit 0 and, when given, a multi-line match', () => {
    expect(judgeCommand({}, 0, 'anything').ok).toBe(true)
    expect(judgeCommand({ expect: '^git version' }, 0, 'warning: x\ngit version 2.39.5').ok).toBe(
      true
    )
    expect(judgeCommand({ expect: '^NVIM v' }, 0, 'VIM - Vi IMproved')).toEqual({
      ok: false,
      why: 'output does not match /^NVIM v/'
    })
    expect(judgeCommand({ expect: '.' }, 127, 'sh: nvim: not found').ok).toBe(false)
  })
})

describe('packages unit', () => {
  it('owns packages and commands, and defaults to the hostname alone', () => {
    expect(Object.keys(packagesUnit.sections)).toEqual(['packages', 'commands'])
    expect(packagesUnit.timeouts).toEqual({ command: 60_000 })
    expect(packagesUnit.afterBootEnd).toBe(false)
    expect(packagesUnit.defaults()).toEqual({
      packages: [],
      commands: [{ name: 'hostname', run: 'hostname', expect: '\\S', timeoutMs: 60_000 }]
    })
  })

  it('reads both sections as {name, run, expect, user, timeout}', () => {
    const c = parsed(
      'packages:\n  - { name: git, run: git --version }\ncommands:\n  - { name: id, run: id, expect: "^uid", user: bob, timeout: 2s }\n'
    )
    expect(c.packages).toEqual([
      { file: 'c.yml', line: 2, name: 'git', run: 'git --version', timeoutMs: 60_000 }
    ])
    expect(c.commands).toEqual([
      {
        file: 'c.yml',
        line: 4,
        name: 'id',
        run: 'id',
        expect: '^uid',
        user: 'bob',
        timeoutMs: 2000
      }
    ])
    expect(() => parsed('commands: [{ name: x, run: y, expect: "(" }]\n')).toThrow(
      /^c\.yml:1: commands\[0\]\.expect: not a valid regular expression/
    )
  })
})
