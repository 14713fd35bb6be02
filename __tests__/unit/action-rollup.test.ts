import {
  afterAll,
  afterEach,
  beforeAll,
  beforeEach,
  describe,
  expect,
  it,
  jest
} from '@jest/globals'
import { DefaultArtifactClient } from '@actions/artifact'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { RollUpInputs } from '../../src/action/inputs.js'
import { readMode, readRollUpInputs } from '../../src/action/inputs.js'
import { ROLL_UP_MARKER, runRollUp, type ArtifactDownloader } from '../../src/action/rollup.js'
import { createGitHubClient, type GitHubClient } from '../../src/github/client.js'
import type { RunContext } from '../../src/github/context.js'
import type { HomeConsistency } from '../../src/home/model.js'
import { newReport, type Report } from '../../src/report/model.js'
import { parseLegs } from '../../src/rollup/collect.js'
import { FakeArtifactService, runtimeToken } from '../support/artifact-service.js'
import { FakeGitHubApi } from '../support/github-api.js'
import { captureStdout } from '../support/stdout.js'

/**
 * The roll-up step end to end without a VM: the real @actions/artifact client uploads three legs'
 * report.json to the loopback artifact service (as the matrix legs do), then lists and downloads
 * them again; the verdict goes to the loopback GitHub API (checked against GitHub's OpenAPI).
 */

let artifacts: FakeArtifactService
let api: FakeGitHubApi
let github: GitHubClient
let work: string
let stdout: string[]
const saved = { ...process.env }

function legReport(
  configuration: string,
  system: Report['system'],
  emulated: boolean,
  jq: 'passed' | 'failed'
): Report {
  const r = newReport({
    system,
    startedAt: 0,
    configuration,
    accelerator: emulated ? 'tcg' : 'kvm'
  })
  r.emulated = emulated
  r.timings = { totalMs: 60_000, bootMs: emulated ? 90_000 : 11_000 }
  const pkg = (name: string, status: 'passed' | 'failed') => ({
    name: `${name} on the PATH`,
    status,
    durationMs: 3,
    output: status === 'passed' ? `/run/current-system/sw/bin/${name}` : 'not found',
    declared: { option: 'environment.systemPackages', value: `package ${name}` }
  })
  r.stages = [
    { name: 'boot', status: 'passed', durationMs: 10, checks: [] },
    { name: 'ssh', status: 'passed', durationMs: 10, checks: [] },
    {
      name: 'packages',
      status: jq === 'passed' ? 'passed' : 'failed',
      durationMs: 10,
      checks: [pkg('git', 'passed'), pkg('jq', jq)]
    }
  ]
  r.conclusion = jq === 'passed' ? 'success' : 'failure'
  r.failure =
    jq === 'passed'
      ? null
      : {
          stage: 'packages',
          kind: 'check-failed',
          message: 'jq: not found',
          excerpt: '',
          check: 'jq on the PATH'
        }
  return r
}

/** What a leg's job does at its end: report.json and its console log, uploaded by the real client. */
async function uploadLeg(name: string, files: Record<string, string>): Promise<void> {
  const dir = mkdtempSync(join(work, 'leg-'))
  for (const [f, text] of Object.entries(files)) writeFileSync(join(dir, f), text)
  await new DefaultArtifactClient().uploadArtifact(
    name,
    Object.keys(files).map((f) => join(dir, f)),
    dir
  )
}

const home: HomeConsistency = {
  schemaVersion: 1,
  flake: '.',
  homes: [
    {
      name: 'alice@x86_64-linux',
      system: 'x86_64-linux',
      files: ['.bashrc', '.config/foot/foot.ini'],
      packages: []
    },
    { name: 'alice@aarch64-darwin', system: 'aarch64-darwin', files: ['.bashrc'], packages: [] }
  ],
  differences: [
    {
      kind: 'file',
      item: '.config/foot/foot.ini',
      present: ['alice@x86_64-linux'],
      absent: ['alice@aarch64-darwin']
    }
  ]
}

const ctx = (): RunContext => ({
  owner: 'o',
  repo: 'r',
  eventName: 'pull_request',
  headSha: 'a'.repeat(40),
  prNumber: 12,
  runId: '77',
  runAttempt: '1',
  serverUrl: 'https://github.com',
  apiUrl: api.url,
  workspace: work,
  act: false
})

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'nvv-rollup-test-'))
  artifacts = new FakeArtifactService()
  await artifacts.start()
  process.env.ACTIONS_RUNTIME_TOKEN = runtimeToken()
  process.env.ACTIONS_RESULTS_URL = `${artifacts.url}/`
  process.env.GITHUB_SERVER_URL = 'https://github.com'
  process.env.GITHUB_WORKSPACE = work
  captureStdout()
  await uploadLeg('vm-validation-demo-x86_64-x86_64-linux-1', {
    'report.json': JSON.stringify(legReport('demo-x86_64', 'x86_64-linux', false, 'passed')),
    'console.log': 'Welcome to NixOS\n'
  })
  await uploadLeg('vm-validation-demo-aarch64-aarch64-linux-emulated-1', {
    'report.json': JSON.stringify(legReport('demo-aarch64', 'aarch64-linux', true, 'passed'))
  })
  await uploadLeg('vm-validation-demo-aarch64-aarch64-linux-1', {
    'report.json': JSON.stringify(legReport('demo-aarch64', 'aarch64-linux', false, 'failed'))
  })
  await uploadLeg('home-consistency-aarch64-darwin', {
    'home-consistency.json': JSON.stringify(home)
  })
  await uploadLeg('unrelated-coverage', { 'lcov.info': 'TN:\n' })
  jest.restoreAllMocks()
})

afterAll(async () => {
  await artifacts.stop()
  process.env = saved
})

beforeEach(async () => {
  stdout = captureStdout().written
  api = new FakeGitHubApi()
  await api.start()
  github = await createGitHubClient('ghs_unit', api.url, (...a: Parameters<typeof fetch>) =>
    globalThis.fetch(...a)
  )
  process.env.GITHUB_STEP_SUMMARY = join(mkdtempSync(join(work, 'summary-')), 'summary.md')
  writeFileSync(process.env.GITHUB_STEP_SUMMARY, '')
  process.env.GITHUB_OUTPUT = join(work, `output-${Date.now()}`)
  writeFileSync(process.env.GITHUB_OUTPUT, '')
  process.exitCode = undefined
})

afterEach(async () => {
  jest.restoreAllMocks()
  process.exitCode = undefined
  await api.stop()
})

const inputs = (legs: string): RollUpInputs => ({
  mode: 'roll-up',
  legs: parseLegs(legs),
  prComment: true
})

describe('mode: roll-up against the loopback artifact service and GitHub API', () => {
  it('one check run, one comment, the table in the summary; a missing and a failed leg fail the step', async () => {
    const r = await runRollUp({
      inputs: inputs('x86_64-linux\naarch64-linux\ndemo-riscv/x86_64-linux'),
      ctx: ctx(),
      artifacts: new DefaultArtifactClient(),
      github,
      tempRoot: work
    })
    expect(artifacts.errors).toEqual([])
    expect(r.legs).toHaveLength(3)
    expect(r.home).toHaveLength(1)
    expect(r.missing.map((m) => m.entry)).toEqual(['demo-riscv/x86_64-linux'])

    expect(api.violations.map((v) => v.errors)).toEqual([])
    const runs = [...api.checkRuns.values()]
    expect(runs).toHaveLength(1)
    expect(runs[0]).toMatchObject({
      name: 'VM validation (all legs)',
      status: 'completed',
      conclusion: 'failure'
    })
    expect(runs[0].output?.title).toBe('2 of 4 legs passed, 1 missing')
    expect(runs[0].output?.summary).toContain(
      '| Leg | Verdict | Boot | boot | ssh | packages | Artifact |'
    )

    expect(api.comments).toHaveLength(1)
    const body = api.comments[0].body
    expect(body.startsWith(`${ROLL_UP_MARKER}\n`)).toBe(true)
    expect(body).toContain('**Missing legs:** `demo-riscv/x86_64-linux`')
    expect(body).toMatch(
      /📦 \*\*demo\*\*: package jq is found on .* and fails on demo-aarch64 \(aarch64-linux\)/
    )
    expect(body).toContain('file `.config/foot/foot.ini`: missing on alice@aarch64-darwin')
    expect(body).toMatch(
      /\[vm-validation-demo-x86_64-x86_64-linux-1\]\(https:\/\/github\.com\/o\/r\/actions\/runs\/77\/artifacts\/\d+\)/
    )

    const summary = readFileSync(process.env.GITHUB_STEP_SUMMARY ?? '', 'utf8')
    expect(summary).toContain('## VM validation: all legs')
    expect(summary).toContain(
      '| demo-x86_64 (x86_64-linux) | ✅ passed | 11.0s (KVM) | ✅ | ✅ | ✅ |'
    )
    expect(summary).toContain(
      '| demo-aarch64 (aarch64-linux) | ❌ packages: check-failed (jq on the PATH) — jq: not found |'
    )
    const outputs = readFileSync(process.env.GITHUB_OUTPUT ?? '', 'utf8')
    expect(outputs).toMatch(/conclusion<<.*\nfailure\n/)
    expect(outputs).toMatch(/check-run-id<<.*\n\d+\n/)
    expect(process.exitCode).toBe(1)
    expect(stdout.join('')).toContain(
      '::error::VM validation roll-up: 2 of 4 legs passed, 1 missing'
    )
    expect(stdout.join('')).not.toContain('unrelated-coverage (id')
  })

  it('run again: the same comment is updated, not a second one', async () => {
    const run = (): Promise<unknown> =>
      runRollUp({
        inputs: inputs(''),
        ctx: ctx(),
        artifacts: new DefaultArtifactClient(),
        github,
        tempRoot: work
      })
    await run()
    await run()
    expect(api.comments).toHaveLength(1)
    expect(api.operations().filter((o) => o === 'issues/create-comment')).toHaveLength(1)
    expect(api.operations().filter((o) => o === 'issues/update-comment')).toHaveLength(1)
  })
})

describe('mode: roll-up with an injected artifact client', () => {
  it('a download that fails is a failed leg saying why; other artifacts are not downloaded', async () => {
    const downloaded: number[] = []
    const fake: ArtifactDownloader = {
      listArtifacts: () =>
        Promise.resolve({
          artifacts: [
            { name: 'vm-validation-demo-x86_64-x86_64-linux-1', id: 1 },
            { name: 'coverage', id: 2 }
          ]
        }),
      downloadArtifact: (id) => {
        downloaded.push(id)
        return Promise.reject(new Error('blob storage answered 503'))
      }
    }
    const r = await runRollUp({
      inputs: inputs('x86_64-linux'),
      ctx: ctx(),
      artifacts: fake,
      github,
      tempRoot: work
    })
    expect(downloaded).toEqual([1])
    expect(r.missing).toEqual([])
    expect(r.legs[0]).toMatchObject({
      configuration: 'demo-x86_64',
      system: 'x86_64-linux',
      conclusion: 'failure',
      failure: 'no report: download failed: blob storage answered 503'
    })
    expect(stdout.join('')).toContain(
      '::warning::roll-up: artifact "vm-validation-demo-x86_64-x86_64-linux-1" (id 1) not read: blob storage answered 503'
    )
    expect([...api.checkRuns.values()].map((c) => c.conclusion)).toEqual(['failure'])
  })
})

describe('the roll-up inputs', () => {
  const reader = (values: Record<string, string>) => (name: string) => values[name] ?? ''
  it('mode defaults to validate and names its allowed values', () => {
    expect(readMode(reader({}))).toBe('validate')
    expect(readMode(reader({ mode: 'roll-up' }))).toBe('roll-up')
    expect(() => readMode(reader({ mode: 'rollup' }))).toThrow(
      'input "mode": "rollup" is not allowed; allowed values: validate, roll-up'
    )
  })

  it('needs no configuration; bad legs and pr-comment are reported together', () => {
    expect(
      readRollUpInputs(reader({ mode: 'roll-up', legs: 'x86_64-linux', 'pr-comment': 'true' }))
    ).toEqual({
      mode: 'roll-up',
      legs: [{ entry: 'x86_64-linux', system: 'x86_64-linux' }],
      githubToken: undefined,
      checkName: undefined,
      prComment: true
    })
    expect(() => readRollUpInputs(reader({ legs: 'x86', 'pr-comment': 'yes' }))).toThrow(
      /2 input errors:\n {2}- input "legs": "x86" is not a leg;.*\n {2}- input "pr-comment": "yes" is not a boolean/
    )
  })
})
