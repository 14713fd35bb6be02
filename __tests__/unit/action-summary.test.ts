import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import nock from 'nock'
import {
  checkRunOutput,
  commentMarkdown,
  consoleExcerpt,
  jobSummary,
  plainConclusion,
  readTail
} from '../../src/action/summary.js'
import { bareReport } from '../../src/report/model.js'
import {
  defaultArtifactName,
  sanitizeArtifactName,
  uploadEvidence,
  type ArtifactUploader
} from '../../src/github/artifact.js'
import { readRunContext } from '../../src/github/context.js'
import { truncateBytes } from '../../src/github/limits.js'
import type { Report } from '../../src/report/model.js'
import { HOSTILE, expectNeutral, splitFences } from './markdown-oracle.js'

beforeAll(() => nock.disableNetConnect())
afterAll(() => nock.enableNetConnect())

const MiB = 1024 * 1024

function failedReport(checks: number, outputSize: number, excerptSize: number): Report {
  return {
    schemaVersion: 1,
    tool: { name: 'nixos-vm-validate', version: '0.1.0' },
    system: 'aarch64-linux',
    accelerator: 'tcg',
    emulated: true,
    hostSystem: 'x86_64-linux',
    configuration: 'nixos-vm-aarch64',
    conclusion: 'failure',
    failure: {
      stage: 'services',
      kind: 'check-failed',
      message: 'many failed',
      excerpt: 'E'.repeat(excerptSize),
      check: 'c0'
    },
    timings: { totalMs: 90_000, bootMs: 30_000, sshReadyMs: 35_000, preflightMs: 100 },
    stages: [
      { name: 'boot', status: 'passed', durationMs: 30_000, startMs: 100, checks: [] },
      { name: 'ssh', status: 'passed', durationMs: 5000, startMs: 30_100, checks: [] },
      {
        name: 'services',
        status: 'failed',
        durationMs: 2000,
        startMs: 35_100,
        checks: Array.from({ length: checks }, (_, i) => ({
          name: `c${i}`,
          status: 'failed' as const,
          durationMs: 5,
          output: `ö${'x'.repeat(outputSize)}`
        }))
      }
    ],
    artifacts: ['report.json'],
    startedAt: new Date(0).toISOString()
  }
}

describe('job summary', () => {
  it('stays under 1 MiB whatever the logs hold (huge excerpt, console, 5,000 failing checks)', () => {
    const consoleText = Array.from(
      { length: 50_000 },
      (_, i) => `[ ${i}] ${'console noise '.repeat(20)}`
    ).join('\n')
    const r = failedReport(5000, 100_000, 5 * MiB)
    const md = jobSummary(r, {
      consoleText,
      artifactUrl: 'https://github.com/o/r/actions/runs/1/artifacts/2'
    })
    expect(Buffer.byteLength(md)).toBeLessThanOrEqual(MiB)
    expect(md).toContain('VM validation failed')
    expect(md).toContain('| services | ❌ failed |')
    expect(md).toContain('Console around the failure')
    expect(md).toContain('4950 more failing checks')
  })

  it('holds the conclusion, stage table, evidence, console excerpt, timeline, emulation and the artifact link', () => {
    const consoleText = [
      'booting',
      ...Array.from({ length: 100 }, (_, i) => `line ${i}`),
      'Kernel panic - not syncing: VFS',
      'after 1',
      'after 2'
    ].join('\r\n')
    const r = failedReport(2, 10, 0)
    r.failure = {
      stage: 'boot',
      kind: 'kernel-panic',
      message: 'the guest kernel panicked',
      excerpt: 'line 99\nKernel panic - not syncing: VFS'
    }
    const md = jobSummary(r, { consoleText, artifactUrl: 'https://x/artifacts/2' })
    expect(md).toContain('❌ **VM validation failed** for nixos-vm-aarch64 (aarch64-linux)')
    expect(md).toMatch(/\| boot \| ✅ passed \| 30\.0s \|/)
    expect(md).toContain('### Failing checks')
    expect(md).toContain('```mermaid\ngantt')
    expect(md).toContain('**emulated** architecture')
    expect(md).toContain('[artifact](https://x/artifacts/2)')
    expect(md).toContain('Kernel panic - not syncing: VFS\nafter 1\nafter 2')
  })

  it('says why there is no artifact link', () => {
    const md = jobSummary(failedReport(0, 0, 10), {
      artifactNote: 'not uploaded (no artifact service here)'
    })
    expect(md).toContain('Artifact: not uploaded (no artifact service here)')
  })
})

describe('consoleExcerpt', () => {
  const lines = Array.from({ length: 500 }, (_, i) => `line ${i} here`)
  it('centres on the failure’s last console line (40 before, 20 after)', () => {
    const ex = consoleExcerpt(lines.join('\n'), {
      stage: 'boot',
      kind: 'boot-timeout',
      message: '',
      excerpt: 'line 199 here\nline 200 here'
    })
    expect(ex.split('\n')[0]).toBe('console.log lines 161–221 of 500')
    expect(ex).toContain('line 200 here')
    expect(ex).not.toContain('line 159 here')
  })
  it('falls back to the last 60 lines, strips escapes and clips long lines', () => {
    const ex = consoleExcerpt([...lines, `\x1b[31m${'z'.repeat(5000)}\x1b[0m`].join('\n'), null)
    expect(ex.split('\n')[0]).toBe('console.log lines 442–501')
    expect(ex).not.toContain('\x1b')
    expect(ex).toContain(`${'z'.repeat(400)} …`)
  })
  it('reads only the tail of a huge console log', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nvv-tail-'))
    writeFileSync(join(dir, 'console.log'), 'a'.repeat(3 * MiB) + 'THE END')
    const tail = await readTail(join(dir, 'console.log'), 1024)
    expect(tail.length).toBe(1024)
    expect(tail.endsWith('THE END')).toBe(true)
    expect(await readTail(join(dir, 'missing.log'))).toBe('')
  })
})

describe('check run output and comment', () => {
  it('titles name the outcome', () => {
    const ok = { ...failedReport(0, 0, 0), conclusion: 'success' as const, failure: null }
    expect(checkRunOutput(ok, {}).title).toBe(
      'Passed: nixos-vm-aarch64 (aarch64-linux, emulated), booted in 30.0s (tcg)'
    )
    expect(checkRunOutput(failedReport(1, 1, 1), {}).title).toBe(
      'Failed: check-failed in services (c0)'
    )
    const cancelled = bareReport({
      system: 'x86_64-linux',
      configuration: 'c',
      startedAt: Date.now() - 5000,
      stage: { name: 'boot', startMs: 100 },
      failure: { stage: 'boot', kind: 'cancelled', message: 'cancelled', excerpt: '' }
    })
    expect(checkRunOutput(cancelled, {}).title).toBe('Cancelled: c (x86_64-linux)')
    expect(cancelled.stages[0]).toMatchObject({ name: 'boot', status: 'failed', startMs: 100 })
  })
  it('the comment links the run and the artifact', () => {
    const md = commentMarkdown(failedReport(1, 1, 1), {
      runUrl: 'https://run',
      artifactUrl: 'https://art'
    })
    expect(md).toContain('[workflow run](https://run) · [artifact](https://art)')
  })
})

/** A guest (and a checks file from a fork) that writes Markdown and HTML wherever it can. */
function hostileReport(): Report {
  const r = failedReport(60, 0, 0)
  const line = HOSTILE.split('\n').join(' ')
  r.configuration = 'cfg @octocat'
  r.acceleratorReason = line
  r.failure = {
    stage: 'services',
    kind: 'check-failed',
    message: `unit failed: ${line}`,
    excerpt: HOSTILE,
    check: '[click](https://evil) @octocat'
  }
  r.stages[2].message = line
  r.stages[2].checks = r.stages[2].checks.map((c, i) => ({
    ...c,
    name: `${i} <img src=x onerror=alert(1)> [click](https://evil) @octocat`,
    output: HOSTILE,
    file: '![x](https://evil/x.png)',
    line: i + 1
  }))
  r.boot = { blame: [{ unit: '![x](https://evil/x.png) @octocat', ms: 5 }] }
  return r
}

describe('guest text is shown, never rendered', () => {
  const ctx = {
    consoleText: `booting\n${HOSTILE}\nunit failed`,
    artifactNote: `upload failed (${HOSTILE.split('\n').join(' ')})`,
    runUrl: 'https://github.com/o/r/actions/runs/1'
  }

  it('job summary: no mention, link, image or HTML outside code; the evidence as typed inside', () => {
    const md = jobSummary(hostileReport(), ctx)
    expectNeutral(md)
    const [, code] = splitFences(md)
    // Evidence, failing check outputs and the console excerpt, each a verbatim block.
    expect(code.split(HOSTILE).length - 1).toBeGreaterThanOrEqual(3)
    expect(md).toContain('more failing checks')
    expect(md).toContain('[Workflow run](https://github.com/o/r/actions/runs/1)')
  })

  it('check run summary and text', () => {
    const out = checkRunOutput(hostileReport(), ctx)
    expectNeutral(out.summary)
    expectNeutral(out.text ?? '')
    expect(splitFences(out.text ?? '')[1]).toContain(HOSTILE)
  })

  it('PR comment', () => {
    const md = commentMarkdown(hostileReport(), ctx)
    expectNeutral(md)
    expect(md).toContain('@\u200doctocat')
  })

  it('the plain conclusion (logs, setFailed) stays unescaped', () => {
    expect(plainConclusion(hostileReport())).toContain('unit failed: @octocat look here <img')
  })
})

describe('limits', () => {
  it('truncateBytes never splits a character and marks the cut', () => {
    const t = truncateBytes('€'.repeat(1000), 1001)
    expect(Buffer.byteLength(t)).toBeLessThanOrEqual(1001)
    expect(t).not.toContain('\ufffd')
    expect(t).toMatch(/cut to stay within/)
    expect(truncateBytes('short', 10)).toBe('short')
  })
})

describe('artifacts', () => {
  it('default name: unique per configuration, system, attempt; sanitized', () => {
    expect(
      defaultArtifactName({
        subject: 'nixos-vm-x86_64',
        system: 'x86_64-linux',
        attempt: '2',
        emulated: false
      })
    ).toBe('vm-validation-nixos-vm-x86_64-x86_64-linux-2')
    expect(sanitizeArtifactName('vm: a/b\\c*?"<x>|\n ')).toBe('vm-a-b-c-x')
  })

  const ctx = readRunContext({ GITHUB_REPOSITORY: 'o/r', GITHUB_RUN_ID: '9' })

  it('without ACTIONS_RUNTIME_TOKEN (act, local): skipped with the reason', async () => {
    const res = await uploadEvidence({ name: 'n', outDir: '/nowhere', context: ctx, env: {} })
    expect(res).toMatchObject({ kind: 'skipped' })
    expect((res as { reason: string }).reason).toMatch(
      /ACTIONS_RUNTIME_TOKEN.*act without --artifact-server-path/
    )
  })

  it('uploads every file of the run and returns the download URL; a failure is an outcome, not a throw', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nvv-art-'))
    for (const f of ['report.json', 'console.log', 'screenshot-final.png'])
      writeFileSync(join(dir, f), 'x')
    const calls: unknown[][] = []
    const ok: ArtifactUploader = {
      uploadArtifact: async (...a) => (calls.push(a), { id: 12, size: 3 })
    }
    const env = { ACTIONS_RUNTIME_TOKEN: 't', ACTIONS_RESULTS_URL: 'http://127.0.0.1:1/' }
    const res = await uploadEvidence({
      name: 'n',
      outDir: dir,
      retentionDays: 3,
      context: ctx,
      env,
      uploader: ok
    })
    expect(res).toEqual({
      kind: 'uploaded',
      id: 12,
      url: 'https://github.com/o/r/actions/runs/9/artifacts/12',
      files: ['console.log', 'report.json', 'screenshot-final.png']
    })
    expect(calls[0][2]).toBe(dir)
    expect(calls[0][3]).toEqual({ retentionDays: 3 })
    const bad: ArtifactUploader = {
      uploadArtifact: async () =>
        Promise.reject(new Error('409 Conflict: an artifact with this name already exists'))
    }
    expect(
      await uploadEvidence({ name: 'n', outDir: dir, context: ctx, env, uploader: bad })
    ).toEqual({ kind: 'failed', reason: '409 Conflict: an artifact with this name already exists' })
  })
})
