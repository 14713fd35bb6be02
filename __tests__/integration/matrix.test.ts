/**
 * Issues 12 and 13 as a runner runs them, on real guests: the bundled action (dist/main) boots the
 * x86_64 ok guest three times on `main` (push events), each run restoring the performance history
 * from the loopback Actions cache and saving it again with itself added; then pull request runs
 * compare themselves with that history — the ok guest again (not flagged), the slow guest (a
 * oneshot sleeping 20 s during boot, after docker: flagged on userspace, `warn` passes, `fail` fails). The pull
 * request's x86_64 leg and an aarch64 leg then roll up (`mode: roll-up`) with a third, different
 * leg into one check run and one comment against the loopback GitHub API.
 * Build first: npm run package.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DefaultArtifactClient } from '@actions/artifact'
import type { Report } from '../../src/report/model.js'
import {
  MAIN,
  actionEnv,
  killStarted,
  readCommandFile,
  runBundle,
  workflowCommands,
  type BundleRun
} from '../support/action-runner.js'
import { buildGuest, type Guest } from '../support/guests.js'
import { FakeGitHubApi } from '../support/github-api.js'
import { OpenApiValidator } from '../support/openapi.js'
import { FakeResultsService } from '../support/results-service.js'

const PR_RUN = '7000'
const CHECKS =
  'packages:\n  - { name: sh, run: "sh -c true" }\n  - { name: tar, run: "tar --version" }\n'

let ok: Guest
let slow: Guest
let arm: Guest
let results: FakeResultsService
let api: FakeGitHubApi
let work: string
const startedPids: number[] = []

beforeAll(async () => {
  if (!existsSync(MAIN)) throw new Error('dist/ is missing: run "npm run package" first')
  for (const tool of ['qemu-system-x86_64', 'qemu-system-aarch64', 'zstd', 'tar']) {
    if (spawnSync('sh', ['-c', 'command -v "$1"', 'sh', tool]).status !== 0)
      throw new Error(`${tool} is not on PATH (bash scripts/setup.sh installs it)`)
  }
  ok = buildGuest('x86_64', 'ok')
  slow = buildGuest('x86_64', 'slow')
  arm = buildGuest('aarch64', 'ok')
  work = mkdtempSync(join(tmpdir(), 'nvv-matrix-'))
  writeFileSync(join(work, 'checks.yml'), CHECKS)
  mkdirSync(join(work, 'home'))
  results = new FakeResultsService()
  api = new FakeGitHubApi({}, new OpenApiValidator())
  await results.start()
  await api.start()
})

afterAll(async () => {
  killStarted(startedPids)
  await results.stop()
  await api.stop()
  rmSync(work, { recursive: true, force: true })
})

interface Step {
  run: BundleRun
  out: Record<string, string>
  report: Report
  summary: string
}

/** One leg's step: push to main, or a pull request into main (its run id is PR_RUN). */
async function leg(
  guest: Guest,
  event: 'push' | 'pull_request',
  o: { runId?: string; inputs?: Record<string, string> } = {}
): Promise<Step> {
  const { env, files } = actionEnv({
    apiUrl: api.url,
    inputs: {
      'vm-runner': guest.runner,
      'ssh-key': guest.sshKey,
      system: guest.system,
      stages: 'boot,ssh,packages,performance',
      checks: join(work, 'checks.yml'),
      accel: 'tcg',
      'boot-timeout': '8m',
      // The TCG noise of a shared 2-core machine stays well inside 50 %; 12 s on a few seconds
      // of userspace does not.
      'perf-threshold': '50%',
      ...o.inputs
    },
    extra: {
      ...results.env(),
      // The history's directory is under HOME (~/.cache/nixos-vm-validate/perf): the test's own.
      HOME: join(work, 'home'),
      GITHUB_EVENT_NAME: event,
      GITHUB_RUN_ID: o.runId ?? PR_RUN,
      ...(event === 'push'
        ? {
            GITHUB_REF: 'refs/heads/main',
            GITHUB_REF_NAME: 'main',
            GITHUB_SHA: `${o.runId}`.padEnd(40, 'c')
          }
        : { GITHUB_REF_NAME: '17/merge', GITHUB_BASE_REF: 'main', GITHUB_HEAD_REF: 'feature' })
    }
  })
  const run = await runBundle(MAIN, env)
  const state = readCommandFile(files.state)
  if (state['qemu-pid'] !== undefined) startedPids.push(Number(state['qemu-pid']))
  const out = readCommandFile(files.output)
  if (out['report-path'] === undefined) console.log(run.stdout, run.stderr)
  const report = JSON.parse(readFileSync(out['report-path'], 'utf8')) as Report
  return { run, out, report, summary: readFileSync(files.summary, 'utf8') }
}

const perfEntries = (): number =>
  results.cache.entries.filter((e) => e.key.startsWith('nvv-perf-v1-') && e.finalized).length

describe('performance history against the loopback Actions cache', () => {
  let prOk: Step

  it('three runs on main build the history, each saved as a new cache entry', async () => {
    for (const [i, runId] of ['101', '102', '103'].entries()) {
      const s = await leg(ok, 'push', { runId, inputs: { 'artifact-name': `perf-base-${runId}` } })
      if (s.run.code !== 0) console.log(s.run.stdout)
      expect(s.run.code).toBe(0)
      expect(s.report.perf).toMatchObject({
        baseline: 'main',
        baseRuns: i,
        recorded: true,
        regressions: []
      })
      expect(s.report.responsiveness?.sshRoundTripMs).toBeGreaterThan(0)
      expect(perfEntries()).toBe(i + 1)
    }
    expect(results.cache.errors).toEqual([])
  })

  it('a pull request run of the same guest compares with main and is not flagged', async () => {
    prOk = await leg(ok, 'pull_request')
    if (prOk.run.code !== 0) console.log(prOk.run.stdout)
    expect(prOk.run.code).toBe(0)
    const perf = prOk.report.perf
    expect(perf).toMatchObject({ baseline: 'main', baseRuns: 3, recorded: false, regressions: [] })
    expect(perf?.metrics.find((m) => m.id === 'userspace')?.verdict).toBe('unchanged')
    expect(perfEntries()).toBe(3) // a pull request records nothing
    expect(prOk.summary).toContain('### Performance')
    expect(prOk.summary).toContain('xychart-beta')
    expect(
      workflowCommands(prOk.run.stdout, 'warning').filter((w) => /regression/.test(w))
    ).toEqual([])
  })

  it('the slow guest is flagged on userspace: warn passes with a warning', async () => {
    const s = await leg(slow, 'pull_request', { inputs: { 'artifact-name': 'perf-slow-warn' } })
    expect(s.run.code).toBe(0)
    expect(s.report.conclusion).toBe('success')
    expect(s.report.perf?.regressions).toContain('userspace')
    const warnings = workflowCommands(s.run.stdout, 'warning').join('\n')
    expect(warnings).toMatch(/performance regression: userspace: \d+\.\ds vs a base median of/)
    expect(s.summary).toMatch(/\| userspace \| .* \| 🔺 regression \|/)
  })

  it('with perf-regression: fail the slow guest fails, naming the metric', async () => {
    const s = await leg(slow, 'pull_request', {
      inputs: { 'artifact-name': 'perf-slow-fail', 'perf-regression': 'fail' }
    })
    expect(s.run.code).toBe(1)
    expect(s.out.conclusion).toBe('failure')
    expect(s.report.failure).toMatchObject({ kind: 'perf-regression', stage: 'performance' })
    expect(s.report.failure?.check).toContain('userspace')
    expect(workflowCommands(s.run.stdout, 'error').join('\n')).toMatch(/perf-regression.*userspace/)
  })

  describe('roll-up of the pull request legs', () => {
    it('rolls the real x86_64 and aarch64 legs and a differing one into one check run and comment', async () => {
      const armLeg = await leg(arm, 'pull_request', { inputs: { 'perf-baseline': 'off' } })
      if (armLeg.run.code !== 0) console.log(armLeg.run.stdout)
      expect(armLeg.run.code).toBe(0)
      await uploadDifferingLeg(prOk.report)

      const { env, files } = actionEnv({
        apiUrl: api.url,
        inputs: {
          mode: 'roll-up',
          legs: 'x86_64-linux, aarch64-linux/emulated, aarch64-linux/native, other-vm/x86_64-linux',
          'github-token': 'ghs_testtoken',
          'pr-comment': 'true'
        },
        extra: { ...results.env(), GITHUB_RUN_ID: PR_RUN }
      })
      const run = await runBundle(MAIN, env, { timeoutMs: 120_000 })
      if (run.code !== 1) console.log(run.stdout, run.stderr)
      expect(run.code).toBe(1) // a leg failed and one is missing
      expect(api.violations.map((r) => r.errors)).toEqual([])
      const rollUps = [...api.checkRuns.values()].filter(
        (c) => c.name === 'VM validation (all legs)'
      )
      expect(rollUps).toHaveLength(1)
      expect(rollUps[0].conclusion).toBe('failure')
      const comments = api.comments.filter((c) => c.body.includes('nixos-vm-validate roll-up'))
      expect(comments).toHaveLength(1)
      const body = comments[0].body
      // Both real legs and the differing one, each with its verdict; the lost leg is named.
      expect(body).toMatch(/x86_64-linux[^\n]*✅/)
      expect(body).toMatch(/aarch64-linux[^\n]*emulated[^\n]*✅/)
      expect(body).toMatch(/aarch64-linux[^\n]*❌/)
      expect(body).toMatch(/other-vm[^\n]*x86_64-linux/)
      expect(body).toMatch(/tar/)
      // The pull request's x86_64 leg compared itself with main's three runs; the others did not.
      expect(body).toContain('| Performance |')
      expect(body).toMatch(/x86_64-linux\) \| ✅ passed \|[^|\n]*\| ✅ within noise of 3 runs \|/)
      expect(readFileSync(files.summary, 'utf8')).toContain('VM validation: all legs')
      expect(readCommandFile(files.output).conclusion).toBe('failure')
    })
  })
})

/**
 * The third leg: the x86_64 run's report as a native aarch64 leg (an ARM runner's) whose tar check
 * failed, uploaded by the real artifact client as a leg's job would.
 */
async function uploadDifferingLeg(base: Report): Promise<void> {
  const r = structuredClone(base)
  r.system = 'aarch64-linux'
  r.emulated = false
  r.perf = undefined
  const packages = r.stages.find((s) => s.name === 'packages')
  const tar = packages?.checks.find((c) => c.name.includes('tar'))
  if (packages === undefined || tar === undefined) throw new Error('no tar check in the leg')
  tar.status = 'failed'
  tar.output = 'tar: command not found'
  packages.status = 'failed'
  r.conclusion = 'failure'
  r.failure = {
    stage: 'packages',
    kind: 'check-failed',
    message: 'tar: not found',
    excerpt: '',
    check: tar.name
  }
  const dir = mkdtempSync(join(work, 'leg-'))
  writeFileSync(join(dir, 'report.json'), JSON.stringify(r))
  const saved = { ...process.env }
  Object.assign(process.env, results.env(), { GITHUB_RUN_ID: PR_RUN })
  try {
    await new DefaultArtifactClient().uploadArtifact(
      'vm-validation-nixos-vm-aarch64-linux-1',
      [join(dir, 'report.json')],
      dir
    )
  } finally {
    process.env = saved
  }
}
