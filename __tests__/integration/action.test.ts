/**
 * The bundled action (dist/main, dist/post) run as the runner runs it, against loopback GitHub
 * API and artifact services, with the project's real x86_64 test guest under QEMU. Every GitHub
 * API request is checked against GitHub's OpenAPI description. Build first: npm run package.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals'
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import type { Report } from '../../src/report/model.js'
import {
  HEAD_SHA,
  MAIN,
  MERGE_SHA,
  OWNER,
  POST,
  REPO,
  RUN_ID,
  actionEnv,
  killStarted,
  postEnv,
  processRunning,
  readCommandFile,
  runBundle,
  waitFor,
  workflowCommands
} from '../support/action-runner.js'
import { buildGuest, type Guest } from '../support/guests.js'
import { FakeArtifactService, runtimeToken } from '../support/artifact-service.js'
import { FakeGitHubApi } from '../support/github-api.js'
import { OpenApiValidator } from '../support/openapi.js'

/** Output of the guest itself: SeaBIOS, kernel printk timestamps, systemd. */
const GUEST_BOOTING = /Booting from ROM|SeaBIOS|Linux version|\[\s*\d+\.\d+\]|Welcome to/

let guest: Guest
let validator: OpenApiValidator
const startedPids: number[] = []
const servers: { stop(): Promise<void> }[] = []

beforeAll(() => {
  if (!existsSync(MAIN) || !existsSync(POST))
    throw new Error('dist/ is missing: run "npm run package" first')
  guest = buildGuest('x86_64', 'ok')
  validator = new OpenApiValidator()
})

afterEach(async () => {
  while (servers.length > 0) await servers.pop()?.stop()
})

afterAll(() => {
  // Only the QEMU processes these tests started: other developers' runs may share the machine.
  killStarted(startedPids)
})

async function services(
  o: ConstructorParameters<typeof FakeGitHubApi>[0] = {}
): Promise<{ api: FakeGitHubApi; artifacts: FakeArtifactService }> {
  const api = new FakeGitHubApi(o, validator)
  const artifacts = new FakeArtifactService()
  await api.start()
  await artifacts.start()
  servers.push(api, artifacts)
  return { api, artifacts }
}

function listFiles(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((n) => statSync(join(dir, n)).isFile()) : []
}

describe('action: success path', () => {
  it('passes boot+ssh: outputs, summary, check run on the head SHA, artifact, sticky comment', async () => {
    const marker = '<!-- nixos-vm-validate:nixos-vm:x86_64-linux -->'
    // 130 comments: the marked one is on the second page (per_page 100).
    const comments = Array.from({ length: 130 }, (_, i) => ({
      id: 100 + i,
      body: i === 115 ? `${marker}\nold result` : `comment ${i}`
    }))
    const { api, artifacts } = await services({ comments })
    const keyText = readFileSync(guest.sshKey, 'utf8')
    const { env, files } = actionEnv({
      apiUrl: api.url,
      resultsUrl: artifacts.url,
      runtimeToken: runtimeToken(),
      runAttempt: '2',
      inputs: {
        'vm-runner': guest.runner,
        // The key text itself (as from a secret): masked, written to a 0600 file under RUNNER_TEMP.
        'ssh-key': keyText,
        system: 'x86_64-linux',
        stages: 'boot,ssh',
        'boot-timeout': '5m',
        'github-token': 'ghs_testtoken',
        'pr-comment': 'true',
        'retention-days': '5'
      }
    })
    const run = await runBundle(MAIN, env)
    const state = readCommandFile(files.state)
    if (state['qemu-pid'] !== undefined) startedPids.push(Number(state['qemu-pid']))
    if (run.code !== 0) console.log(run.stdout, run.stderr)
    expect(run.code).toBe(0)

    // The key never shows in the log; it was registered as a secret line by line.
    const keyBody = keyText.split('\n').find((l) => l.length > 20 && !l.startsWith('-----')) ?? ''
    expect(keyBody).not.toBe('')
    expect(run.stdout).toContain(`::add-mask::${keyBody}`)
    expect(
      run.stdout.split('\n').filter((l) => l.includes(keyBody) && !l.startsWith('::add-mask::'))
    ).toEqual([])
    expect(existsSync(join(files.temp))).toBe(true)
    expect(readdirSync(files.temp).filter((n) => n.startsWith('nvv-key-'))).toEqual([]) // removed after the run

    const out = readCommandFile(files.output)
    expect(out.conclusion).toBe('success')
    expect(out['report-path']).toMatch(/report\.json$/)
    const report = JSON.parse(readFileSync(out['report-path'], 'utf8')) as Report
    expect(report.conclusion).toBe('success')
    expect(Number(out['boot-seconds'])).toBeGreaterThan(0)
    expect(out['boot-seconds']).toBe((report.timings.bootMs! / 1000).toFixed(1))
    expect(['kvm', 'tcg']).toContain(out.accelerator)
    expect(out.accelerator).toBe(report.accelerator)

    // Check run: in_progress on the PR head (not the merge SHA), then success.
    expect(api.violations.map((r) => r.errors)).toEqual([])
    const create = api.requests.find((r) => r.operationId === 'checks/create')
    expect(create?.body).toMatchObject({
      head_sha: HEAD_SHA,
      status: 'in_progress',
      external_id: 'nixos-vm/x86_64-linux',
      name: 'VM validation (nixos-vm, x86_64-linux)'
    })
    expect(JSON.stringify(create?.body)).not.toContain(MERGE_SHA)
    expect(create?.authorization).toBe('token ghs_testtoken')
    const [checkRun] = [...api.checkRuns.values()]
    expect(out['check-run-id']).toBe(String(checkRun.id))
    expect(checkRun.history).toEqual(['in_progress', 'completed'])
    expect(checkRun.conclusion).toBe('success')
    expect(checkRun.output?.title).toMatch(/^Passed: /)
    expect(checkRun.output?.summary).toContain('| Stage |')
    expect(checkRun.annotations).toEqual([])

    // Artifact: default name per leg and attempt, every file of the run, retention passed on.
    const artifact = artifacts.artifacts.get('vm-validation-nixos-vm-x86_64-linux-2')
    expect(artifacts.errors).toEqual([])
    expect(artifact).toBeDefined()
    expect(artifact?.files).toEqual(
      expect.arrayContaining(['report.json', 'console.log', 'junit.xml', 'summary.md'])
    )
    expect(artifact?.createRequest.expires_at).toBeDefined()
    expect(out['artifact-id']).toBe(String(artifact?.id))
    expect(out['artifact-url']).toBe(
      `https://github.com/${OWNER}/${REPO}/actions/runs/${RUN_ID}/artifacts/${artifact?.id}`
    )

    // Job summary: conclusion, stage table with durations, timeline, accelerator, artifact link.
    const summary = readFileSync(files.summary, 'utf8')
    expect(summary).toContain('VM validation passed')
    expect(summary).toMatch(/\| boot \| ✅ passed \| \d/)
    expect(summary).toMatch(/\| ssh \| ✅ passed \| \d/)
    expect(summary).toContain('```mermaid')
    expect(summary).toContain('gantt')
    expect(summary).toContain('native architecture')
    expect(summary).toContain(out['artifact-url'])

    // Sticky comment: found on page 2 and updated in place, no new comment.
    expect(api.comments).toHaveLength(130)
    expect(api.comments[115].body.startsWith(marker)).toBe(true)
    expect(api.comments[115].body).toContain('VM validation passed')
    expect(api.operations().filter((o) => o === 'issues/list-comments')).toHaveLength(2)
    expect(api.operations()).toContain('issues/update-comment')
    expect(api.operations()).not.toContain('issues/create-comment')

    // Main finished: the post step has nothing to do, and no QEMU of this run is left.
    expect(state['main-finished']).toBe('true')
    expect(processRunning(Number(state['qemu-pid']))).toBe(false)
    const post = await runBundle(POST, postEnv(env, files))
    expect(post.code).toBe(0)
    expect(post.stdout).toContain('nothing to do')
  })
})

describe('action: a failing guest', () => {
  it('kernel panic: job fails with annotations, check run failure at the workflow file, summary with the evidence', async () => {
    const panic = buildGuest('x86_64', 'panic')
    const { api, artifacts } = await services()
    const { env, files } = actionEnv({
      apiUrl: api.url,
      resultsUrl: artifacts.url,
      runtimeToken: runtimeToken(),
      inputs: {
        'vm-runner': panic.runner,
        'ssh-key': panic.sshKey,
        stages: 'boot,ssh',
        'github-token': 'ghs_testtoken',
        configuration: 'nixos-vm-x86_64'
      }
    })
    const run = await runBundle(MAIN, env)
    const state = readCommandFile(files.state)
    if (state['qemu-pid'] !== undefined) startedPids.push(Number(state['qemu-pid']))
    expect(run.code).toBe(1)
    const out = readCommandFile(files.output)
    expect(out.conclusion).toBe('failure')
    expect(out['boot-seconds']).toBe('')
    const errors = workflowCommands(run.stdout, 'error')
    expect(
      errors.some((e) =>
        e.startsWith(
          '::error title=kernel-panic in stage boot (x86_64-linux),file=.github/workflows/vm.yml,line=1::'
        )
      )
    ).toBe(true)
    expect(errors.at(-1)).toMatch(
      /VM validation failed for nixos-vm-x86_64 \(x86_64-linux\) — boot: kernel-panic/
    )

    expect(api.violations.map((r) => r.errors)).toEqual([])
    const [checkRun] = [...api.checkRuns.values()]
    expect(checkRun.conclusion).toBe('failure')
    expect(checkRun.output?.title).toBe('Failed: kernel-panic in boot')
    expect(checkRun.annotations).toEqual([
      expect.objectContaining({
        path: '.github/workflows/vm.yml',
        start_line: 1,
        annotation_level: 'failure',
        title: 'kernel-panic in stage boot (x86_64-linux)'
      })
    ])
    const summary = readFileSync(files.summary, 'utf8')
    expect(summary).toContain('Failure: kernel-panic')
    expect(summary).toContain('Kernel panic - not syncing')
    expect(artifacts.artifacts.get('vm-validation-nixos-vm-x86_64-x86_64-linux-1')?.files).toEqual(
      expect.arrayContaining(['console.log', 'report.json'])
    )
    expect(processRunning(Number(state['qemu-pid']))).toBe(false)
  })
})

describe('action: GitHub refuses the check run', () => {
  it('a 403 on check-run create (fork PR token) warns and the validation still passes', async () => {
    const { api, artifacts } = await services({ failCheckRunCreate: 403 })
    const { env, files } = actionEnv({
      apiUrl: api.url,
      resultsUrl: artifacts.url,
      runtimeToken: runtimeToken(),
      inputs: {
        'vm-runner': guest.runner,
        stages: 'boot',
        'github-token': 'ghs_readonly',
        configuration: 'nixos-vm-x86_64'
      }
    })
    const run = await runBundle(MAIN, env)
    const state = readCommandFile(files.state)
    if (state['qemu-pid'] !== undefined) startedPids.push(Number(state['qemu-pid']))
    expect(run.code).toBe(0)
    const warnings = workflowCommands(run.stdout, 'warning')
    expect(
      warnings.some((w) => /creating the check run failed \(HTTP 403\).*read-only/.test(w))
    ).toBe(true)
    expect(api.violations.map((r) => r.errors)).toEqual([])
    expect(api.operations()).toEqual(['checks/create'])
    const out = readCommandFile(files.output)
    expect(out.conclusion).toBe('success')
    expect(out['check-run-id']).toBeUndefined()
    expect(artifacts.artifacts.has('vm-validation-nixos-vm-x86_64-x86_64-linux-1')).toBe(true)
    expect(readFileSync(files.summary, 'utf8')).toContain('VM validation passed')
  })
})

describe('action: cancellation', () => {
  it('main killed mid-boot: post kills QEMU, writes a cancelled report, completes the check run cancelled', async () => {
    const { api, artifacts } = await services()
    const { env, files } = actionEnv({
      apiUrl: api.url,
      resultsUrl: artifacts.url,
      runtimeToken: runtimeToken(),
      inputs: {
        'vm-runner': guest.runner,
        'ssh-key': guest.sshKey,
        stages: 'boot,ssh',
        'github-token': 'ghs_testtoken',
        configuration: 'nixos-vm-x86_64'
      }
    })
    let pid = 0
    let outDir = ''
    const main = await runBundle(MAIN, env, {
      onSpawn: (child) => {
        void (async () => {
          // The guest is booting: QEMU's pid is saved and the guest writes to its console
          // (firmware, kernel timestamps, systemd), not only the runner script's own lines.
          await waitFor(
            'QEMU pid in GITHUB_STATE and the guest on the console',
            () => {
              if (child.exitCode !== null || child.signalCode !== null) return true
              const st = readCommandFile(files.state)
              if (st['qemu-pid'] === undefined || st.plan === undefined) return false
              pid = Number(st['qemu-pid'])
              outDir = (JSON.parse(st.plan) as { outDir: string }).outDir
              const consoleLog = join(outDir, 'console.log')
              return existsSync(consoleLog) && GUEST_BOOTING.test(readFileSync(consoleLog, 'utf8'))
            },
            5 * 60_000,
            50
          )
          if (pid > 0) startedPids.push(pid)
          // What a runner does once its cancellation grace period is over.
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
        })().catch((err: unknown) => {
          console.error(err)
          child.kill('SIGKILL')
        })
      }
    })
    expect(main.signal).toBe('SIGKILL')
    expect(pid).toBeGreaterThan(0)
    expect(processRunning(pid)).toBe(true) // QEMU outlived main: its own process group
    expect(existsSync(join(outDir, 'report.json'))).toBe(false)

    const post = await runBundle(POST, postEnv(env, files), { timeoutMs: 120_000 })
    if (post.code !== 0) console.log(post.stdout, post.stderr)
    expect(post.code).toBe(0)
    expect(processRunning(pid)).toBe(false)

    const report = JSON.parse(readFileSync(join(outDir, 'report.json'), 'utf8')) as Report
    expect(report.failure?.kind).toBe('cancelled')
    expect(report.failure?.stage).toBe('boot')
    expect(['tcg', 'kvm']).toContain(report.accelerator) // read from QEMU's command line before the kill
    expect(listFiles(outDir)).toEqual(
      expect.arrayContaining(['report.json', 'console.log', 'junit.xml', 'summary.md'])
    )

    expect(api.violations.map((r) => r.errors)).toEqual([])
    const [checkRun] = [...api.checkRuns.values()]
    expect(checkRun.head_sha).toBe(HEAD_SHA)
    expect(checkRun.history).toEqual(['in_progress', 'completed'])
    expect(checkRun.conclusion).toBe('cancelled')
    expect(checkRun.output?.title).toMatch(/^Cancelled: /)

    const postSummary = readFileSync(files.postSummary, 'utf8')
    expect(postSummary).toContain('cancelled')
    expect(postSummary).toContain('| boot |')
    const artifact = artifacts.artifacts.get('vm-validation-nixos-vm-x86_64-x86_64-linux-1')
    expect(artifact?.files).toEqual(expect.arrayContaining(['report.json', 'console.log']))
  })
})

describe('action: cancellation with a grace period', () => {
  it('SIGINT (the runner’s first cancel signal): main stops QEMU, reports cancelled, completes everything; post has nothing to do', async () => {
    const { api, artifacts } = await services()
    const { env, files } = actionEnv({
      apiUrl: api.url,
      resultsUrl: artifacts.url,
      runtimeToken: runtimeToken(),
      inputs: {
        'vm-runner': guest.runner,
        'ssh-key': guest.sshKey,
        stages: 'boot,ssh',
        'github-token': 'ghs_testtoken',
        configuration: 'nixos-vm-x86_64'
      }
    })
    let pid = 0
    const main = await runBundle(MAIN, env, {
      onSpawn: (child) => {
        void waitFor(
          'QEMU pid in GITHUB_STATE',
          () => {
            if (child.exitCode !== null || child.signalCode !== null) return true
            pid = Number(readCommandFile(files.state)['qemu-pid'] ?? '0')
            return pid > 0
          },
          5 * 60_000
        )
          .then(() => {
            startedPids.push(pid)
            child.kill('SIGINT')
          })
          .catch(() => child.kill('SIGKILL'))
      }
    })
    expect(main.code).toBe(1)
    expect(processRunning(pid)).toBe(false)
    const out = readCommandFile(files.output)
    expect(out.conclusion).toBe('failure')
    const report = JSON.parse(readFileSync(out['report-path'], 'utf8')) as Report
    expect(report.failure?.kind).toBe('cancelled')
    const [checkRun] = [...api.checkRuns.values()]
    expect(checkRun.conclusion).toBe('cancelled')
    expect(api.violations.map((r) => r.errors)).toEqual([])
    expect(artifacts.artifacts.size).toBe(1)
    expect(readCommandFile(files.state)['main-finished']).toBe('true')
    const post = await runBundle(POST, postEnv(env, files), { timeoutMs: 60_000 })
    expect(post.stdout).toContain('nothing to do')
  })
})

describe('action: before anything starts', () => {
  it('bad input (system: sparc-linux) fails naming the allowed values; nothing starts', async () => {
    const { api, artifacts } = await services()
    const { env, files } = actionEnv({
      apiUrl: api.url,
      resultsUrl: artifacts.url,
      runtimeToken: runtimeToken(),
      inputs: {
        'vm-runner': guest.runner,
        'ssh-key': guest.sshKey,
        system: 'sparc-linux',
        'github-token': 'ghs_testtoken'
      }
    })
    const run = await runBundle(MAIN, env, { timeoutMs: 60_000 })
    expect(run.code).toBe(1)
    const errors = workflowCommands(run.stdout, 'error')
    expect(errors).toHaveLength(1)
    expect(errors[0]).toContain(
      'input "system": "sparc-linux" is not supported; allowed values: x86_64-linux, aarch64-linux'
    )
    expect(api.requests).toEqual([])
    expect(artifacts.artifacts.size).toBe(0)
    expect(readCommandFile(files.state)).toEqual({})
    expect(readCommandFile(files.output)).toEqual({})
    expect(readdirSync(files.temp)).toEqual([])
    const post = await runBundle(POST, postEnv(env, files), { timeoutMs: 60_000 })
    expect(post.code).toBe(0)
    expect(post.stdout).toContain('nothing to finish')
  })

  it('dry-run under act prints the whole plan and boots nothing', async () => {
    const { api, artifacts } = await services()
    const { env, files } = actionEnv({
      apiUrl: api.url,
      inputs: {
        'vm-runner': guest.runner,
        'ssh-key': guest.sshKey,
        'dry-run': 'true',
        'github-token': 'ghs_testtoken',
        configuration: 'nixos-vm-x86_64'
      },
      extra: { ACT: 'true' }
    })
    const run = await runBundle(MAIN, env, { timeoutMs: 60_000 })
    expect(run.code).toBe(0)
    for (const section of [
      'Plan (dry run',
      'Install (Nix):',
      'Build:',
      'Boot and check:',
      'Report:',
      'VM:',
      'Stages:'
    ]) {
      expect(run.stdout).toContain(section)
    }
    expect(run.stdout).toContain(`nothing: prebuilt runner ${guest.runner}`)
    expect(run.stdout).toContain('SKIPPED here: no ACTIONS_RUNTIME_TOKEN')
    expect(run.stdout).toContain('no check run (act')
    expect(api.requests).toEqual([])
    expect(artifacts.artifacts.size).toBe(0)
    expect(readCommandFile(files.state)).toEqual({})
    expect(readdirSync(files.temp)).toEqual([])
    expect(readFileSync(files.summary, 'utf8')).toContain('dry run')
  })
})
