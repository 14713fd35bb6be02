import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { publish } from '../../src/action/publish.js'
import type { RunPlan, SavedState } from '../../src/action/state.js'
import { startCheckRun } from '../../src/github/check-run.js'
import { createGitHubClient } from '../../src/github/client.js'
import { commentMarker } from '../../src/github/comment.js'
import type { RunContext } from '../../src/github/context.js'
import type { Report } from '../../src/report/model.js'
import { FakeGitHubApi } from '../support/github-api.js'
import { captureStdout } from '../support/stdout.js'
import { HOSTILE, expectNeutral } from './markdown-oracle.js'

/**
 * publish() against the loopback GitHub API, which answers 422 as GitHub does: a field past its
 * limit in UTF-8 bytes, or a refused completion. The check run must end completed either way.
 */

let api: FakeGitHubApi
let stdout: string[]

beforeEach(() => {
  stdout = captureStdout().written
})
afterEach(async () => {
  jest.restoreAllMocks()
  await api.stop()
})

/** 30 failed units, journals in systemd's multi-byte characters, one guest line hostile. */
function degradedBoot(): Report {
  const journal = (u: string): string =>
    [
      ...Array.from(
        { length: 80 },
        (_, i) => `× ${u}.service — “Ünïcödé dæmøn” ● exited, status=1/FAILURE ✗ line ${i} ‼`
      ),
      HOSTILE
    ].join('\n')
  return {
    schemaVersion: 1,
    tool: { name: 'nixos-vm-validate', version: '0.1.0' },
    system: 'x86_64-linux',
    accelerator: 'kvm',
    emulated: false,
    hostSystem: 'x86_64-linux',
    configuration: 'nixos-vm',
    conclusion: 'failure',
    failure: {
      stage: 'services',
      kind: 'check-failed',
      message: '30 units failed to start (degraded boot) @octocat',
      excerpt: journal('dæmøn-0'),
      check: 'dæmøn-0 [click](https://evil)'
    },
    timings: { totalMs: 60_000, bootMs: 20_000 },
    stages: [
      {
        name: 'services',
        status: 'failed',
        durationMs: 10,
        checks: Array.from({ length: 30 }, (_, i) => ({
          name: `dæmøn-${i} [click](https://evil)`,
          status: 'failed' as const,
          durationMs: 1,
          output: journal(`dæmøn-${i}`)
        }))
      }
    ],
    artifacts: [],
    startedAt: new Date(0).toISOString()
  }
}

async function run(refuseCompletions = 0): Promise<{ saved: Record<string, string> }> {
  api = new FakeGitHubApi({ refuseCompletions })
  await api.start()
  const client = await createGitHubClient('ghs_unit', api.url, (...a: Parameters<typeof fetch>) =>
    globalThis.fetch(...a)
  )
  const outDir = mkdtempSync(join(tmpdir(), 'nvv-publish-'))
  writeFileSync(join(outDir, 'console.log'), `Welcome to NixOS\n${HOSTILE}\n[FAILED] degraded\n`)
  const plan: RunPlan = {
    subject: 'nixos-vm',
    configuration: 'nixos-vm',
    system: 'x86_64-linux',
    emulated: false,
    outDir,
    workspace: '/ws',
    startedAt: 0,
    artifactName: 'vm-validation',
    checkName: 'VM validation (nixos-vm, x86_64-linux)',
    externalId: 'nixos-vm/x86_64-linux',
    marker: commentMarker('nixos-vm', 'x86_64-linux'),
    prComment: true
  }
  const context: RunContext = {
    owner: 'o',
    repo: 'r',
    headSha: 'f'.repeat(40),
    prNumber: 9,
    runId: '1',
    runAttempt: '1',
    serverUrl: 'https://github.com',
    apiUrl: api.url,
    workspace: '/ws',
    act: false
  }
  const checkRunId = await startCheckRun(client, {
    owner: 'o',
    repo: 'r',
    headSha: context.headSha ?? '',
    name: plan.checkName,
    externalId: plan.externalId
  })
  const saved: Record<string, string> = {}
  const done: Pick<
    SavedState,
    'artifact' | 'summaryWritten' | 'checkRunCompleted' | 'commentWritten'
  > = {
    artifact: { url: 'https://github.com/o/r/actions/runs/1/artifacts/2' },
    summaryWritten: true,
    checkRunCompleted: false,
    commentWritten: false
  }
  await publish({
    report: degradedBoot(),
    plan,
    context,
    client,
    checkRunId,
    done,
    save: (k, v) => (saved[k] = v),
    annotate: false
  })
  return { saved }
}

describe('publish against a GitHub that answers 422', () => {
  it('a degraded boot: the full report fits every limit; check run, annotations and comment land', async () => {
    const { saved } = await run()
    expect(api.violations.map((r) => r.errors)).toEqual([])
    expect(api.requests.map((r) => r.status)).not.toContain(422)
    const [checkRun] = [...api.checkRuns.values()]
    expect(checkRun.history).toEqual(['in_progress', 'completed'])
    expect(checkRun.conclusion).toBe('failure')
    expect(checkRun.output?.summary).toContain('### Failing checks')
    expect(checkRun.annotations).toHaveLength(30)
    expectNeutral(checkRun.output?.summary ?? '')
    expectNeutral(checkRun.output?.text ?? '')
    const [comment] = api.comments
    expect(comment.body.startsWith('<!-- nixos-vm-validate:nixos-vm:x86_64-linux -->\n')).toBe(true)
    expectNeutral(comment.body)
    expect(saved).toMatchObject({ 'check-run-completed': 'true', 'comment-written': 'true' })
  })

  it('the completion refused anyway: completed with the title and one line, a warning says why', async () => {
    const { saved } = await run(1)
    const [checkRun] = [...api.checkRuns.values()]
    expect(checkRun.history).toEqual(['in_progress', 'completed'])
    expect(checkRun.conclusion).toBe('failure')
    expect(checkRun.output).toEqual({
      title: 'Failed: check-failed in services (dæmøn-0 [click](https://evil))',
      summary: expect.stringMatching(/^Conclusion: \*\*failure\*\*\. .*job summary.*artifact/),
      text: undefined
    })
    expect(checkRun.annotations).toEqual([])
    expect(
      api.requests.filter((r) => r.operationId === 'checks/update').map((r) => r.status)
    ).toEqual([422, 200])
    expect(saved['check-run-completed']).toBe('true')
    const warning = stdout.find((l) => l.startsWith('::warning::')) ?? ''
    expect(warning).toMatch(
      /check run \d+ completed \(failure\) with a one-line output and no annotations: completing the check run failed \(HTTP 422\): Invalid request\./
    )
    expect(warning).toMatch(/the job summary and the artifact hold the full report/)
  })
})
