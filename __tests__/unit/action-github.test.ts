import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals'
import nock from 'nock'
import { buildAnnotations, batches, repoPath } from '../../src/github/annotations.js'
import {
  checkRunReporter,
  completeCheckRun,
  completionBodies,
  createCheckRunBody,
  startCheckRun,
  checkConclusion,
  type UpdateCheckRunBody
} from '../../src/github/check-run.js'
import { createGitHubClient, GitHubApiError } from '../../src/github/client.js'
import { commentBody, commentMarker, findMarked, upsertComment } from '../../src/github/comment.js'
import { checkRunOutput, commentMarkdown } from '../../src/action/summary.js'
import { FAILURE_TABLE, failureKind, failureOf } from '../../src/report/failure.js'
import { FAILURE_KINDS, ValidationFailure } from '../../src/util/errors.js'
import type { Report } from '../../src/report/model.js'
import { openFence } from '../../src/util/markdown.js'
import { OpenApiValidator } from '../support/openapi.js'

const API = 'https://api.github.com'
let validator: OpenApiValidator
// Octokit from @actions/github with the global fetch, which nock intercepts.
const client = () =>
  createGitHubClient('ghs_unit', API, (...a: Parameters<typeof fetch>) => globalThis.fetch(...a))

beforeAll(() => {
  nock.disableNetConnect()
  validator = new OpenApiValidator()
})
afterEach(() => {
  nock.cleanAll()
})
afterAll(() => {
  nock.enableNetConnect()
})

/** A nock reply that answers like GitHub: 422 when the body breaks its description or limits. */
function likeGitHub(
  method: string,
  path: string,
  status: number,
  payload: object,
  seen: unknown[] = []
): (uri: string, body: unknown) => [number, object] {
  return (_uri, body) => {
    const json: unknown = typeof body === 'string' && body !== '' ? JSON.parse(body) : body
    seen.push(json)
    const url = new URL(path, API)
    const errors = validator.validate(method, url.pathname, url.searchParams, json).errors
    return errors.length > 0
      ? [422, { message: 'Validation Failed', errors: errors.map((message) => ({ message })) }]
      : [status, payload]
  }
}

/**
 * A degraded boot: 30 failed units whose journals are full of the multi-byte characters systemd
 * prints (●, ×, —, “ ”), so every character-counted cut overflows GitHub's byte limits.
 */
function degradedBoot(units = 30): Report {
  const journal = (u: string): string =>
    Array.from(
      { length: 80 },
      (_, i) => `× ${u}.service — “Ünïcödé dæmøn” ● exited, status=1/FAILURE ✗ line ${i} ‼`
    ).join('\n')
  return report({
    failure: {
      stage: 'services',
      kind: 'check-failed',
      message: `${units} units failed: ${Array.from({ length: units }, (_, i) => `dæmøn-${i}.service`).join(', ')}`,
      excerpt: journal('dæmøn-0'),
      check: 'dæmøn-0'
    },
    stages: [
      {
        name: 'services',
        status: 'failed',
        durationMs: 10,
        checks: Array.from({ length: units }, (_, i) => ({
          name: `dæmøn-${i} — “failed” ✗`,
          status: 'failed' as const,
          durationMs: 1,
          output: journal(`dæmøn-${i}`)
        }))
      }
    ]
  })
}

/** A nock body matcher that fails the request unless it fits GitHub's OpenAPI description. */
function openapi(method: string, path: string): (body: unknown) => boolean {
  return (body) => {
    const url = new URL(path, API)
    const r = validator.validate(method, url.pathname, url.searchParams, body)
    if (r.errors.length > 0) throw new Error(r.errors.join('\n'))
    return true
  }
}

function report(over: Partial<Report> = {}): Report {
  return {
    schemaVersion: 1,
    tool: { name: 'nixos-vm-validate', version: '0.1.0' },
    system: 'x86_64-linux',
    accelerator: 'tcg',
    emulated: false,
    hostSystem: 'x86_64-linux',
    configuration: 'nixos-vm-x86_64',
    conclusion: 'failure',
    failure: null,
    timings: { totalMs: 1000 },
    stages: [],
    artifacts: [],
    startedAt: new Date(0).toISOString(),
    ...over
  }
}

function failingChecks(n: number, withFile = false): Report {
  return report({
    failure: {
      stage: 'services',
      kind: 'check-failed',
      message: `${n} checks failed`,
      excerpt: 'x',
      check: 'unit-0'
    },
    stages: [
      {
        name: 'services',
        status: 'failed',
        durationMs: 10,
        checks: Array.from({ length: n }, (_, i) => ({
          name: `unit-${i}`,
          status: 'failed' as const,
          durationMs: 1,
          output: `unit-${i}.service: failed\nline 2`,
          ...(withFile ? { file: '/ws/tests/vm/checks.yml', line: 10 + i } : {})
        }))
      }
    ]
  })
}

const target = {
  owner: 'o',
  repo: 'r',
  headSha: 'f'.repeat(40),
  name: 'VM validation (x, x86_64-linux)',
  externalId: 'x/x86_64-linux'
}

describe('the OpenAPI validator (test support)', () => {
  it('catches what GitHub would reject', () => {
    const errs = validator
      .validate('POST', '/repos/o/r/check-runs', new URLSearchParams(), {
        name: 'x',
        status: 'done',
        output: {
          title: 't',
          summary: 's'.repeat(65_536),
          annotations: Array.from({ length: 51 }, () => ({
            path: 'a',
            start_line: 1,
            end_line: 1,
            annotation_level: 'error',
            message: 'm'
          }))
        }
      })
      .errors.join('\n')
    expect(errs).toMatch(/required property "head_sha" missing/)
    expect(errs).toMatch(/body.status: "done" is not one of/)
    expect(errs).toMatch(/body.output.summary: 65536 characters, maxLength 65535/)
    expect(errs).toMatch(/body.output.annotations: 51 items, maxItems 50/)
    expect(errs).toMatch(/annotation_level: "error" is not one of/)
    expect(
      validator
        .validate('PATCH', '/repos/o/r/check-runs/1', new URLSearchParams(), {
          status: 'completed'
        })
        .errors.join()
    ).toMatch(/anyOf/)
    expect(
      validator
        .validate(
          'GET',
          '/repos/o/r/issues/1/comments',
          new URLSearchParams({ per_page: 'many' }),
          undefined
        )
        .errors.join()
    ).toMatch(/query.per_page/)
    expect(
      validator.validate('POST', '/repos/o/r/nope', new URLSearchParams(), {}).errors.join()
    ).toMatch(/no such operation/)
    expect(validator.match('PATCH', '/repos/o/r/issues/comments/5')?.route.template).toBe(
      '/repos/{owner}/{repo}/issues/comments/{comment_id}'
    )
  })
})

describe('the OpenAPI validator counts text limits in UTF-8 bytes, like GitHub', () => {
  const errors = (method: string, path: string, body: unknown): string =>
    validator.validate(method, path, new URLSearchParams(), body).errors.join('\n')
  const annotation = (over: object) => ({
    path: 'a',
    start_line: 1,
    end_line: 1,
    annotation_level: 'failure',
    message: 'm',
    ...over
  })

  it('check run summary and text: 65,535 bytes, whatever the character count', () => {
    const update = (output: object): string =>
      errors('PATCH', '/repos/o/r/check-runs/1', { conclusion: 'failure', output })
    expect(update({ title: 't', summary: 'x'.repeat(65_535) })).toBe('')
    // 21,846 characters, 65,538 bytes: what GitHub answered 422 to.
    expect(update({ title: 't', summary: '✅'.repeat(21_846) })).toMatch(
      /body\.output\.summary: 65538 bytes of UTF-8 \(21846 characters\), GitHub's limit is 65535 bytes/
    )
    expect(update({ title: 't', summary: 's', text: '😀'.repeat(16_384) })).toMatch(
      /body\.output\.text: 65536 bytes/
    )
  })

  it('annotation message, raw_details (64 KB) and title (255), stated in prose only', () => {
    const update = (a: object): string =>
      errors('PATCH', '/repos/o/r/check-runs/1', {
        output: { title: 't', summary: 's', annotations: [annotation(a)] }
      })
    expect(update({ message: 'é'.repeat(32_767), title: 'é'.repeat(127) })).toBe('')
    expect(update({ message: 'é'.repeat(32_768) })).toMatch(
      /annotations\[0\]\.message: 65536 bytes/
    )
    expect(update({ raw_details: '€'.repeat(21_846) })).toMatch(
      /annotations\[0\]\.raw_details: 65538 bytes/
    )
    expect(update({ title: 'é'.repeat(128) })).toMatch(/annotations\[0\]\.title: 256 bytes/)
  })

  it('comment bodies: 65,536', () => {
    expect(errors('POST', '/repos/o/r/issues/1/comments', { body: 'ü'.repeat(32_768) })).toBe('')
    expect(errors('POST', '/repos/o/r/issues/1/comments', { body: 'ü'.repeat(32_769) })).toMatch(
      /body\.body: 65538 bytes/
    )
    expect(errors('PATCH', '/repos/o/r/issues/comments/5', { body: '✅'.repeat(30_000) })).toMatch(
      /body\.body: 90000 bytes/
    )
  })
})

describe('annotations', () => {
  it('pins failed checks at their file/line, relative to the workspace', () => {
    const a = buildAnnotations(failingChecks(2, true), { workspace: '/ws' })
    expect(a).toHaveLength(2)
    expect(a[0]).toMatchObject({
      path: 'tests/vm/checks.yml',
      start_line: 10,
      end_line: 10,
      annotation_level: 'failure',
      title: 'services: unit-0'
    })
    expect(a[1].start_line).toBe(11)
  })

  it('without a position: the checks file, else the workflow, else action.yml, line 1', () => {
    const r = failingChecks(1)
    expect(
      buildAnnotations(r, { workspace: '/ws', checksFile: '/ws/tests/vm/checks.yml' })[0]
    ).toMatchObject({ path: 'tests/vm/checks.yml', start_line: 1 })
    expect(
      buildAnnotations(r, { workspace: '/ws', workflowFile: '.github/workflows/vm.yml' })[0].path
    ).toBe('.github/workflows/vm.yml')
    expect(buildAnnotations(r, { workspace: '/ws' })[0].path).toBe('action.yml')
  })

  it('a setup or boot failure goes on the workflow, never on the checks file', () => {
    const setup = report({
      failure: {
        stage: 'setup',
        kind: 'tool-error',
        message: "write the user's nix.conf failed: cannot write /root/.config/nix/nix.conf",
        excerpt: ''
      }
    })
    const at = buildAnnotations(setup, {
      workspace: '/ws',
      checksFile: '/ws/tests/vm/checks.yml',
      workflowFile: '.github/workflows/vm.yml'
    })
    expect(at).toEqual([
      expect.objectContaining({ path: '.github/workflows/vm.yml', start_line: 1 })
    ])
  })

  it('a failure no check stands for (a panic, a build error with its position) is annotated too', () => {
    const panic = report({
      failure: {
        stage: 'boot',
        kind: 'kernel-panic',
        message: 'the guest kernel panicked',
        excerpt: 'Kernel panic - not syncing'
      }
    })
    expect(buildAnnotations(panic, { workspace: '/ws' })).toEqual([
      expect.objectContaining({
        path: 'action.yml',
        start_line: 1,
        title: 'kernel-panic in stage boot (x86_64-linux)',
        raw_details: 'Kernel panic - not syncing'
      })
    ])
    const build = report({
      failure: {
        stage: 'build',
        kind: 'build-failed',
        message: 'undefined variable',
        excerpt: '',
        file: '/ws/machines/vm.nix',
        line: 3
      }
    })
    expect(buildAnnotations(build, { workspace: '/ws' })[0]).toMatchObject({
      path: 'machines/vm.nix',
      start_line: 3
    })
    expect(
      buildAnnotations(
        report({ failure: { stage: 'boot', kind: 'cancelled', message: 'c', excerpt: '' } }),
        { workspace: '/ws' }
      )
    ).toEqual([])
  })

  it('repoPath keeps relative paths and strips what is outside the workspace', () => {
    expect(repoPath('./a/b.yml', '/ws')).toBe('a/b.yml')
    expect(repoPath('/nix/store/x-source/m.nix', '/ws')).toBe('nix/store/x-source/m.nix')
  })

  it('batches of 50', () => {
    expect(batches(Array.from({ length: 120 }, (_, i) => i)).map((b) => b.length)).toEqual([
      50, 50, 20
    ])
    expect(batches([])).toEqual([])
  })
})

describe('check run payloads', () => {
  it('create: in_progress on the given head SHA, with external_id; fits the OpenAPI schema', () => {
    const body = createCheckRunBody(
      { ...target, detailsUrl: 'https://github.com/o/r/actions/runs/1' },
      new Date(0)
    )
    expect(body).toMatchObject({
      status: 'in_progress',
      head_sha: 'f'.repeat(40),
      external_id: 'x/x86_64-linux'
    })
    const { owner, repo, ...json } = body
    expect(
      validator.validate('POST', `/repos/${owner}/${repo}/check-runs`, new URLSearchParams(), json)
        .errors
    ).toEqual([])
  })

  it('completion: 120 annotations → completed with the first 50, then updates of 50 and 20', () => {
    const annotations = buildAnnotations(failingChecks(120), { workspace: '/ws' })
    const bodies = completionBodies(
      target,
      7,
      'failure',
      { title: 't', summary: 's', text: 'x' },
      annotations,
      new Date(0)
    )
    expect(bodies.map((b) => b.output?.annotations?.length)).toEqual([50, 50, 20])
    expect(bodies[0]).toMatchObject({ status: 'completed', conclusion: 'failure', check_run_id: 7 })
    expect(bodies.slice(1).every((b) => b.conclusion === undefined && b.status === undefined)).toBe(
      true
    )
    for (const b of bodies) {
      const { owner, repo, check_run_id, ...json } = b
      expect(
        validator.validate(
          'PATCH',
          `/repos/${owner}/${repo}/check-runs/${check_run_id}`,
          new URLSearchParams(),
          json
        ).errors
      ).toEqual([])
    }
  })

  it('summary and text are cut to 65,535 bytes whatever the report holds', () => {
    const huge = 'é'.repeat(70_000) + '😀'.repeat(10_000)
    const [b] = completionBodies(
      target,
      1,
      'success',
      { title: 'x'.repeat(400), summary: huge, text: huge },
      [],
      new Date(0)
    )
    expect(Buffer.byteLength(b.output?.summary ?? '')).toBeLessThanOrEqual(65_535)
    expect(Buffer.byteLength(b.output?.text ?? '')).toBeLessThanOrEqual(65_535)
    expect(b.output?.summary).toMatch(/cut to stay within/)
    expect(Buffer.byteLength(b.output?.title ?? '')).toBeLessThanOrEqual(255)
    // Never half a surrogate pair.
    expect(b.output?.summary).not.toMatch(/[\ud800-\udbff](?![\udc00-\udfff])/)
    const { owner, repo, check_run_id, ...json } = b
    expect(
      validator.validate(
        'PATCH',
        `/repos/${owner}/${repo}/check-runs/${check_run_id}`,
        new URLSearchParams(),
        json
      ).errors
    ).toEqual([])
  })

  it('a degraded boot with 30 failed units: every request fits, cut in bytes with the mark inside', () => {
    const r = degradedBoot()
    const out = checkRunOutput(r, {
      artifactUrl: 'https://github.com/o/r/actions/runs/1/artifacts/2'
    })
    // Far past the limit before the cut, and mostly multi-byte.
    expect(Buffer.byteLength(out.text ?? '')).toBeGreaterThan(3 * 65_535)
    const annotations = buildAnnotations(r, { workspace: '/ws' })
    const bodies = completionBodies(target, 7, 'failure', out, annotations, new Date(0))
    for (const b of bodies) {
      const { owner, repo, check_run_id, ...json } = b
      expect(
        validator.validate(
          'PATCH',
          `/repos/${owner}/${repo}/check-runs/${check_run_id}`,
          new URLSearchParams(),
          json
        ).errors
      ).toEqual([])
    }
    const { summary = '', text = '' } = bodies[0].output ?? {}
    for (const field of [summary, text]) {
      expect(Buffer.byteLength(field)).toBeLessThanOrEqual(65_535)
      // The budget is used, not wasted.
      expect(Buffer.byteLength(field)).toBeGreaterThan(60_000)
      expect(field).not.toContain('\ufffd')
      expect(openFence(field)).toBe('')
    }
    expect(summary).toContain('| services | ❌ failed |')
    expect(summary).toMatch(/summary cut to stay within the size limit\)\n$/)
    expect(text).toMatch(/cut to stay within GitHub’s size limit\)\n$/)
  })

  it('conclusion: success, failure, or cancelled for a cancelled run', () => {
    expect(checkConclusion(report({ conclusion: 'success' }))).toBe('success')
    expect(checkConclusion(failingChecks(1))).toBe('failure')
    expect(
      checkConclusion(
        report({ failure: { stage: 'boot', kind: 'cancelled', message: '', excerpt: '' } })
      )
    ).toBe('cancelled')
  })
})

describe('check run API calls (nock, no network)', () => {
  it('creates, completes and sends every annotation batch', async () => {
    const scope = nock(API)
      .post('/repos/o/r/check-runs', openapi('POST', '/repos/o/r/check-runs'))
      .reply(201, { id: 42 })
      .patch('/repos/o/r/check-runs/42', openapi('PATCH', '/repos/o/r/check-runs/42'))
      .times(3)
      .reply(200, { id: 42 })
    const c = await client()
    const id = await startCheckRun(c, target)
    expect(id).toBe(42)
    await completeCheckRun(
      c,
      target,
      id,
      'failure',
      { title: 't', summary: 's' },
      buildAnnotations(failingChecks(101), { workspace: '/ws' })
    )
    expect(scope.isDone()).toBe(true)
  })

  it('a degraded boot’s report completes the run at once (GitHub would 422 a character cut)', async () => {
    const seen: unknown[] = []
    const scope = nock(API)
      .patch('/repos/o/r/check-runs/42')
      .reply(likeGitHub('PATCH', '/repos/o/r/check-runs/42', 200, { id: 42 }, seen))
    const r = degradedBoot()
    const done = await completeCheckRun(
      await client(),
      target,
      42,
      'failure',
      checkRunOutput(r, {}),
      buildAnnotations(r, { workspace: '/ws' })
    )
    expect(done).toEqual({})
    expect(scope.isDone()).toBe(true)
    expect(seen).toHaveLength(1)
    expect(seen[0]).toMatchObject({
      status: 'completed',
      conclusion: 'failure',
      output: { summary: expect.stringContaining('### Failing checks') }
    })
  })

  it('a 422 to the completion: retried once with a one-line output and no annotations', async () => {
    const seen: UpdateCheckRunBody[] = []
    const record = (b: UpdateCheckRunBody): boolean => (seen.push(b), true)
    const scope = nock(API)
      .patch('/repos/o/r/check-runs/42', record)
      .reply(422, {
        message: 'Invalid request.\n\nOnly 65535 characters are allowed; 65586 were supplied.'
      })
      .patch(
        '/repos/o/r/check-runs/42',
        (b: UpdateCheckRunBody) => record(b) && openapi('PATCH', '/repos/o/r/check-runs/42')(b)
      )
      .reply(200, { id: 42 })
    const done = await completeCheckRun(
      await client(),
      target,
      42,
      'failure',
      { title: 'Failed: check-failed in services (unit-0)', summary: 'full', text: 'full' },
      buildAnnotations(failingChecks(120), { workspace: '/ws' }),
      new Date(0)
    )
    expect(scope.isDone()).toBe(true)
    expect(done.refused).toMatch(/^completing the check run failed \(HTTP 422\): Invalid request\./)
    expect(seen).toHaveLength(2)
    expect(seen[0].output?.annotations).toHaveLength(50)
    expect(seen[1]).toEqual({
      status: 'completed',
      conclusion: 'failure',
      completed_at: new Date(0).toISOString(),
      output: {
        title: 'Failed: check-failed in services (unit-0)',
        summary: expect.stringMatching(/^Conclusion: \*\*failure\*\*\. .*job summary.*artifact/)
      }
    })
    expect(seen[1].output?.summary).not.toContain('\n')
  })

  it('no retry for other failures; a refused retry is the error', async () => {
    nock(API).patch('/repos/o/r/check-runs/42').reply(500, { message: 'Server Error' })
    const c = await client()
    const out = { title: 't', summary: 's' }
    const err = await completeCheckRun(c, target, 42, 'success', out, []).catch((e: unknown) => e)
    expect((err as GitHubApiError).status).toBe(500)
    nock(API).patch('/repos/o/r/check-runs/42').times(2).reply(422, { message: 'Invalid request.' })
    const again = await completeCheckRun(c, target, 42, 'success', out, []).catch((e: unknown) => e)
    expect(again).toBeInstanceOf(GitHubApiError)
    expect((again as Error).message).toMatch(
      /^completing the check run with a short output failed \(HTTP 422\)/
    )
  })

  it('a 403 becomes a GitHubApiError saying why (read-only token)', async () => {
    nock(API)
      .post('/repos/o/r/check-runs')
      .reply(403, { message: 'Resource not accessible by integration' })
    const err = await startCheckRun(await client(), target).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(GitHubApiError)
    expect((err as GitHubApiError).status).toBe(403)
    expect((err as Error).message).toMatch(
      /creating the check run failed \(HTTP 403\).*read-only.*checks: write/
    )
  })
})

describe('the check-run reporter (start, then complete from the report)', () => {
  const logged = (): {
    lines: string[]
    log: { info(m: string): void; warning(m: string): void }
  } => {
    const lines: string[] = []
    return {
      lines,
      log: { info: (m) => lines.push(`info: ${m}`), warning: (m) => lines.push(`warning: ${m}`) }
    }
  }
  const spec = { headSha: target.headSha, name: target.name, externalId: target.externalId }

  it('creates the run, then completes it with the conclusion and annotations of the report', async () => {
    const seen: UpdateCheckRunBody[] = []
    const scope = nock(API)
      .post('/repos/o/r/check-runs', openapi('POST', '/repos/o/r/check-runs'))
      .reply(201, { id: 42 })
      .patch('/repos/o/r/check-runs/42', (b: UpdateCheckRunBody) => (seen.push(b), true))
      .times(3)
      .reply(200, { id: 42 })
    const { lines, log } = logged()
    const reporter = checkRunReporter({ client: await client(), repo: target, log })
    expect(reporter.id).toBeUndefined()
    expect(await reporter.start(spec)).toBe(42)
    const r = failingChecks(101)
    expect(await reporter.complete(r, { title: 't', summary: 's' }, { workspace: '/ws' })).toBe(
      true
    )
    expect(scope.isDone()).toBe(true)
    expect(seen[0]).toMatchObject({ status: 'completed', conclusion: 'failure' })
    expect(lines).toEqual([
      `info: check run 42 "${target.name}" in progress on ${target.headSha}`,
      'info: check run 42 completed: failure (101 annotations)'
    ])
  })

  it('never throws: a refused start or completion is a warning', async () => {
    nock(API).post('/repos/o/r/check-runs').reply(403, { message: 'Resource not accessible' })
    nock(API).patch('/repos/o/r/check-runs/7').reply(500, { message: 'Server Error' })
    const { lines, log } = logged()
    const c = await client()
    const refused = checkRunReporter({ client: c, repo: target, log })
    expect(await refused.start(spec)).toBeUndefined()
    expect(
      await refused.complete(failingChecks(1), { title: 't', summary: 's' }, { workspace: '/ws' })
    ).toBe(false)
    const post = checkRunReporter({ client: c, repo: target, log, id: 7 })
    expect(
      await post.complete(failingChecks(1), { title: 't', summary: 's' }, { workspace: '/ws' })
    ).toBe(false)
    expect(lines).toHaveLength(2)
    expect(lines[0]).toMatch(/^warning: creating the check run failed \(HTTP 403\)/)
    expect(lines[1]).toMatch(/^warning: completing the check run failed \(HTTP 500\)/)
  })
})

describe('the failure-kind table', () => {
  it('has a row for every failure kind; only a cancelled run is neither a failure nor annotated', () => {
    expect(Object.keys(FAILURE_TABLE).sort()).toEqual([...FAILURE_KINDS].sort())
    for (const kind of FAILURE_KINDS) {
      const row = failureKind(kind)
      expect(row.conclusion).toBe(kind === 'cancelled' ? 'cancelled' : 'failure')
      expect(row.annotation).toBe(
        kind === 'cancelled' ? null : kind === 'check-failed' ? 'checks-file' : 'workflow'
      )
    }
    const f = {
      stage: 'services',
      kind: 'check-failed' as const,
      message: '',
      excerpt: '',
      check: 'x'
    }
    expect(failureKind('check-failed').title(f, 'vm (x86_64-linux)')).toBe(
      'Failed: check-failed in services (x)'
    )
    expect(failureKind('cancelled').title({ ...f, kind: 'cancelled' }, 'vm (x86_64-linux)')).toBe(
      'Cancelled: vm (x86_64-linux)'
    )
  })

  it('failureOf: a classified failure as the report records it, with its check and position', () => {
    const f = new ValidationFailure('check-failed', 'boom', 'ev', {
      check: 'c',
      file: 'f.yml',
      line: 3
    })
    expect(failureOf('users', f)).toEqual({
      stage: 'users',
      kind: 'check-failed',
      message: 'boom',
      excerpt: 'ev',
      check: 'c',
      file: 'f.yml',
      line: 3
    })
    expect(failureOf('boot', new ValidationFailure('kernel-panic', 'p'))).toEqual({
      stage: 'boot',
      kind: 'kernel-panic',
      message: 'p',
      excerpt: ''
    })
  })
})

describe('sticky PR comment', () => {
  const marker = commentMarker('nixos-vm-x86_64', 'x86_64-linux')

  it('the marker names configuration and system; the body starts with it and stays under 65,536 bytes', () => {
    expect(marker).toBe('<!-- nixos-vm-validate:nixos-vm-x86_64:x86_64-linux -->')
    expect(commentMarker('a --> <b>', 'x86_64-linux')).toBe(
      '<!-- nixos-vm-validate:a --_ _b_:x86_64-linux -->'
    )
    for (const md of [
      'x'.repeat(100_000),
      '✅'.repeat(40_000),
      commentMarkdown(degradedBoot(), {})
    ]) {
      const body = commentBody(marker, md)
      expect(body.startsWith(`${marker}\n`)).toBe(true)
      expect(Buffer.byteLength(body)).toBeLessThanOrEqual(65_536)
      expect(
        validator.validate('POST', '/repos/o/r/issues/9/comments', new URLSearchParams(), { body })
          .errors
      ).toEqual([])
    }
  })

  it('findMarked ignores other legs’ markers', () => {
    const other = commentMarker('nixos-vm-x86_64', 'aarch64-linux')
    expect(
      findMarked(
        [
          { id: 1, body: other },
          { id: 2, body: null },
          { id: 3, body: `${marker}\nx` }
        ],
        marker
      )?.id
    ).toBe(3)
    expect(
      findMarked([{ id: 1, body: `${marker.replace(' -->', ':emulated -->')}` }], marker)
    ).toBeUndefined()
  })

  it('finds the marked comment on a later page and updates it in place', async () => {
    const page1 = Array.from({ length: 100 }, (_, i) => ({ id: i + 1, body: `hello ${i}` }))
    const scope = nock(API)
      .get('/repos/o/r/issues/9/comments')
      .query({ per_page: '100' })
      .reply(200, page1, {
        link: `<${API}/repositories/1/issues/9/comments?per_page=100&page=2>; rel="next"`
      })
      .get('/repositories/1/issues/9/comments')
      .query({ per_page: '100', page: '2' })
      .reply(200, [{ id: 555, body: `${marker}\nold` }])
      .patch(
        '/repos/o/r/issues/comments/555',
        (b: { body: string }) =>
          openapi('PATCH', '/repos/o/r/issues/comments/555')(b) && b.body.startsWith(marker)
      )
      .reply(200, { id: 555 })
    const res = await upsertComment(
      await client(),
      { owner: 'o', repo: 'r', issueNumber: 9 },
      marker,
      'new result'
    )
    expect(res).toEqual({ id: 555, created: false })
    expect(scope.isDone()).toBe(true)
  })

  it('creates it when no comment holds the marker', async () => {
    const scope = nock(API)
      .get('/repos/o/r/issues/9/comments')
      .query(true)
      .reply(200, [{ id: 1, body: 'unrelated' }])
      .post('/repos/o/r/issues/9/comments', openapi('POST', '/repos/o/r/issues/9/comments'))
      .reply(201, { id: 77 })
    expect(
      await upsertComment(
        await client(),
        { owner: 'o', repo: 'r', issueNumber: 9 },
        marker,
        'first'
      )
    ).toEqual({ id: 77, created: true })
    expect(scope.isDone()).toBe(true)
  })
})
