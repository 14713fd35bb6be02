import { describe, expect, it } from '@jest/globals'
import { checkLocation, renderJunit, renderSummary } from '../../src/report/render.js'
import type { Report } from '../../src/report/model.js'

function report(): Report {
  return {
    schemaVersion: 1,
    tool: { name: 'nixos-vm-validate', version: '0.0.0' },
    system: 'x86_64-linux',
    accelerator: 'tcg',
    emulated: false,
    hostSystem: 'x86_64-linux',
    conclusion: 'failure',
    failure: {
      stage: 'packages',
      kind: 'check-failed',
      message: '1 check failed: neovim',
      excerpt: 'sh: 2: nvim: not found',
      check: 'neovim',
      file: 'tests/vm/checks.yml',
      line: 36
    },
    timings: { totalMs: 60_000 },
    stages: [
      {
        name: 'packages',
        status: 'failed',
        durationMs: 2000,
        checks: [
          {
            name: 'git',
            status: 'passed',
            durationMs: 1600,
            output: '$ git --version\ngit version 2.39.5',
            file: 'tests/vm/checks.yml',
            line: 32
          },
          {
            name: 'neovim',
            status: 'failed',
            durationMs: 1900,
            output: '$ nvim --version\nexit 127\nsh: 2: nvim: not found',
            file: 'tests/vm/checks.yml',
            line: 36
          },
          { name: 'a | b <c>', status: 'skipped', durationMs: 0, output: 'not run' }
        ]
      },
      {
        name: 'e2e',
        status: 'skipped',
        durationMs: 0,
        checks: [
          {
            name: 'e2e',
            status: 'skipped',
            durationMs: 0,
            output: 'no e2e section in tests/vm/checks.yml'
          }
        ]
      }
    ],
    artifacts: [],
    startedAt: '2025-01-01T00:00:00.000Z'
  }
}

describe('check rendering', () => {
  it('checkLocation is FILE:LINE, FILE, or empty', () => {
    expect(
      checkLocation({
        name: 'x',
        status: 'passed',
        durationMs: 0,
        output: '',
        file: 'a.yml',
        line: 3
      })
    ).toBe('a.yml:3')
    expect(
      checkLocation({ name: 'x', status: 'passed', durationMs: 0, output: '', file: 'a.sh' })
    ).toBe('a.sh')
    expect(checkLocation({ name: 'x', status: 'passed', durationMs: 0, output: '' })).toBe('')
  })

  it('junit.xml has every check as a testcase, annotated with file and line', () => {
    const xml = renderJunit(report())
    expect(xml).toContain(
      '<testcase classname="x86_64-linux.packages" name="git" time="1.600" file="tests/vm/checks.yml" line="32"/>'
    )
    expect(xml).toMatch(
      /<testcase classname="x86_64-linux\.packages" name="neovim" time="1\.900" file="tests\/vm\/checks\.yml" line="36">\s*<failure message="1 check failed: neovim">/
    )
    expect(xml).toMatch(/name="a \| b &#60;c&#62;" time="0\.000">\s*<skipped message="not run"\/>/)
    expect(xml).toMatch(/<testsuite name="e2e" tests="1" failures="0" skipped="1"/)
  })

  it('summary.md lists every check with its result, time, location and first output line', () => {
    const md = renderSummary(report())
    expect(md).toContain('### Checks')
    // `$` would start GitHub's inline math, `|` a new cell, `<` HTML: all as character references.
    expect(md).toContain('| ✅ | git | 1.6s | tests/vm/checks.yml:32 | &#36; git --version |')
    expect(md).toContain('| ❌ | neovim | 1.9s | tests/vm/checks.yml:36 | &#36; nvim --version |')
    expect(md).toContain('| ⏭️ | a &#124; b &#60;c&#62; | 0ms |  | not run |')
    expect(md).toContain('<details open><summary>❌ packages: 3 checks</summary>')
    expect(md).toContain('❌ packages / neovim (1.9s) — tests/vm/checks.yml:36</summary>')
  })

  it('the stage table counts passed, failed and skipped checks', () => {
    expect(renderSummary(report())).toContain(
      '| packages | ❌ failed | 2.0s | 1/3 passed, 1 failed, 1 skipped |'
    )
  })
})
