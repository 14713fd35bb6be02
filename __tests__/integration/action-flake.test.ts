/**
 * The action's Nix path, run as a runner runs it: dist/main with `flake` + `configuration` on the
 * fixture flake (tests/fixtures/flake, nixosSystem's shape without nixpkgs), the Nix that is on
 * this machine (Debian's nix-bin: root, no daemon, and on a fresh machine no nixbld group), a
 * fresh HOME whose nix.conf the action writes for real, a real build through extendModules with
 * the run's key, a real boot of the x86_64 test guest, and the loopback GitHub API, artifact and
 * cache services. With `cache: true` the store cache makes a real round trip: run 1 exports the
 * closure and saves it, run 2 restores it and Nix substitutes the runner from it.
 * Build first: npm run package.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals'
import { spawnSync } from 'node:child_process'
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Report } from '../../src/report/model.js'
import {
  MAIN,
  ROOT,
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

const NIX = ['nix', '--extra-experimental-features', 'nix-command flakes']
/** Single-user root Nix without the nixbld group (Debian's nix-bin on a fresh machine). */
const noNixbld = spawnSync('getent', ['group', 'nixbld']).status !== 0

let guest: Guest
let validator: OpenApiValidator
const startedPids: number[] = []
const servers: { stop(): Promise<void> }[] = []
const dirs: string[] = []

beforeAll(() => {
  if (!existsSync(MAIN)) throw new Error('dist/ is missing: run "npm run package" first')
  for (const tool of ['nix', 'qemu-system-x86_64', 'zstd', 'tar']) {
    if (spawnSync('sh', ['-c', 'command -v "$1"', 'sh', tool]).status !== 0)
      throw new Error(`${tool} is not on PATH (bash scripts/setup.sh installs it)`)
  }
  guest = buildGuest('x86_64', 'ok')
  validator = new OpenApiValidator()
})

afterEach(async () => {
  while (servers.length > 0) await servers.pop()?.stop()
})

afterAll(() => {
  killStarted(startedPids)
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

async function services(): Promise<{ api: FakeGitHubApi; results: FakeResultsService }> {
  const api = new FakeGitHubApi({}, validator)
  const results = new FakeResultsService()
  await api.start()
  await results.start()
  servers.push(api, results)
  return { api, results }
}

interface Leg {
  run: BundleRun
  files: ReturnType<typeof actionEnv>['files']
  home: string
  machine: string
  out: Record<string, string>
  report: Report
  log: string
}

/**
 * One step of a workflow that checked out a repository holding the fixture flake and uses the
 * action with `flake: .` and `configuration: fixture`. The step's HOME is new (no nix.conf).
 */
async function leg(
  api: FakeGitHubApi,
  results: FakeResultsService,
  inputs: Record<string, string>,
  o: { attempt?: string; machine?: string } = {}
): Promise<Leg> {
  // A runner's paths are the same on every job (HOME, the workspace): the cache archive holds
  // paths relative to the workspace. Each job starts with them empty.
  const machine = o.machine ?? mkdtempSync(join(tmpdir(), 'nvv-machine-'))
  dirs.push(machine)
  const home = join(machine, 'home')
  const workspace = join(machine, 'workspace')
  for (const d of [home, workspace]) {
    rmSync(d, { recursive: true, force: true })
    mkdirSync(d)
  }
  const { env, files } = actionEnv({
    apiUrl: api.url,
    runAttempt: o.attempt ?? '1',
    inputs: {
      flake: '.',
      configuration: 'fixture',
      system: 'x86_64-linux',
      stages: 'boot,ssh',
      accel: 'tcg',
      'boot-timeout': '8m',
      'github-token': 'ghs_testtoken',
      ...inputs
    },
    extra: {
      ...results.env(),
      HOME: home,
      GITHUB_WORKSPACE: workspace,
      NVV_FIXTURE_GUEST: guest.dir,
      // No network here (no binary cache), and no build sandbox: the fixture builds with the
      // host's /bin/sh (flake.test.ts says why). The store cache adds its own substituter.
      NIX_CONFIG: 'substituters =\nsandbox = false\n'
    }
  })
  dirs.push(files.dir)
  cpSync(join(ROOT, 'tests/fixtures/flake'), workspace, { recursive: true })
  const run = await runBundle(MAIN, env, { timeoutMs: 15 * 60_000 })
  const state = readCommandFile(files.state)
  if (state['qemu-pid'] !== undefined) startedPids.push(Number(state['qemu-pid']))
  const out = readCommandFile(files.output)
  if (run.code !== 0 || out['report-path'] === undefined)
    throw new Error(`action exited ${run.code}\n${run.stdout}\n${run.stderr}`)
  const report = JSON.parse(readFileSync(out['report-path'], 'utf8')) as Report
  return { run, files, home, machine, out, report, log: run.stdout + run.stderr }
}

/** The VM runner's store path, from the out-link the build left under RUNNER_TEMP. */
function runnerStorePath(l: Leg): string {
  return readlinkSync(join(l.files.temp, 'nixos-vm-validate', 'result'))
}

describe('action: flake + configuration, built with the Nix on this machine', () => {
  it('configures Nix in a fresh HOME, builds through extendModules, boots, reports; the cache round-trips', async () => {
    const { api, results } = await services()

    // Run 1: nothing cached yet.
    const first = await leg(api, results, { cache: 'true' })
    expect(first.report).toMatchObject({ conclusion: 'success', configuration: 'fixture' })
    expect(first.report.timings.buildMs).toBeGreaterThan(0)
    expect(first.out.conclusion).toBe('success')

    // The user's nix.conf, written by this process (not through a child's /dev/stdin), 0600.
    const conf = join(first.home, '.config/nix/nix.conf')
    expect(statSync(conf).mode & 0o777).toBe(0o600)
    const confText = readFileSync(conf, 'utf8')
    expect(confText).toContain('# BEGIN nixos-vm-validate')
    expect(confText).toContain('extra-experimental-features = nix-command flakes')
    // The token went to github.com only; the loopback API is not github.com.
    expect(confText).toContain('access-tokens = github.com=ghs_testtoken')
    expect(
      first.log
        .split('\n')
        .filter((l) => l.includes('ghs_testtoken') && !l.startsWith('::add-mask::'))
    ).toEqual([])
    // Nix itself reads what was written.
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: first.home }
    delete env.XDG_CONFIG_HOME
    delete env.NIX_USER_CONF_FILES
    const shown = spawnSync(NIX[0], ['show-config'], { encoding: 'utf8', env })
    expect(shown.status).toBe(0)
    expect(shown.stdout).toMatch(/^access-tokens = github\.com=ghs_testtoken$/m)

    if (noNixbld) expect(first.log).toContain("builds pass --option build-users-group ''")
    expect(first.log).toMatch(/building '\/nix\/store\/\w{32}-nixos-vm\.drv'/)
    expect(first.log).toContain('store cache miss')
    expect(first.log).toMatch(
      /store cache key nixos-vm-validate-x86_64-linux-fixture-[0-9a-f]{16}-[0-9a-f]{16} \(inputs from nix flake metadata\)/
    )
    const storePath = runnerStorePath(first)
    const saved = results.cache.entries.filter((e) => e.finalized)
    expect(saved).toHaveLength(1)
    expect(saved[0].key).toMatch(
      /^nixos-vm-validate-x86_64-linux-fixture-[0-9a-f]{16}-[0-9a-f]{16}$/
    )
    expect(saved[0].data?.length ?? 0).toBeGreaterThan(500)
    expect(first.log).toContain(`store cache saved: ${saved[0].key}`)

    // Check run and artifact against the loopback services, schema-clean.
    expect(api.violations.map((r) => r.errors)).toEqual([])
    const [checkRun] = [...api.checkRuns.values()]
    expect(checkRun.history).toEqual(['in_progress', 'completed'])
    expect(checkRun.conclusion).toBe('success')
    const artifact = results.artifacts.artifacts.get('vm-validation-fixture-x86_64-linux-1')
    expect(artifact?.files).toEqual(
      expect.arrayContaining(['report.json', 'console.log', 'build.log', 'summary.md'])
    )
    expect(artifact?.files.some((f) => f.includes('id_ed25519'))).toBe(false)
    expect(results.artifacts.errors).toEqual([])

    // Between the runs the VM's closure leaves this machine's store: run 2 can only get the
    // system from the cache, or build it again, which it must not. (The runner itself holds the
    // run's own SSH key, so every run builds it.)
    const closure = spawnSync('nix-store', ['--query', '--requisites', storePath], {
      encoding: 'utf8'
    })
      .stdout.trim()
      .split('\n')
    const system = closure.find((p) => /-nixos-system-fixture$/.test(p)) ?? ''
    expect(system).not.toBe('')
    rmSync(join(first.files.temp, 'nixos-vm-validate', 'result'))
    // With every runner that refers to it (earlier runs' runners, each with its own key).
    const referrers = spawnSync('nix-store', ['--query', '--referrers-closure', system], {
      encoding: 'utf8'
    })
      .stdout.trim()
      .split('\n')
    expect(referrers).toContain(storePath)
    const del = spawnSync('nix-store', ['--delete', ...referrers], { encoding: 'utf8' })
    expect(del.status).toBe(0)
    expect(existsSync(system)).toBe(false)

    // Run 2: a new job (fresh HOME, fresh RUNNER_TEMP) restores run 1's entry.
    const second = await leg(
      api,
      results,
      { cache: 'true' },
      { attempt: '2', machine: first.machine }
    )
    expect(second.report.conclusion).toBe('success')
    expect(second.log).toMatch(
      new RegExp(`store cache exact hit: ${saved[0].key} \\(0\\.[0-9] MiB\\)`)
    )
    expect(second.log).not.toContain('restored nothing')
    expect(second.log).toMatch(
      new RegExp(`copying path '${system.replace(/[.+]/g, '\\$&')}' from 'file://`)
    )
    expect(second.log).not.toMatch(/building '\/nix\/store\/\w{32}-nixos-system-fixture\.drv'/)
    expect(second.log).toMatch(/building '\/nix\/store\/\w{32}-nixos-vm\.drv'/)
    expect(second.log).toContain(`store cache not saved: ${saved[0].key} was restored`)
    expect(results.cache.entries.filter((e) => e.finalized)).toHaveLength(1)
    expect(results.cache.downloads.length).toBeGreaterThan(0)
    expect(results.cache.errors).toEqual([])
  })

  it('matrix legs saving the same key at once: one saves, the other warns and passes', async () => {
    const { api, results } = await services()
    // Both creates are held until both have arrived: a real race, every time.
    results.cache.gate('CreateCacheEntry', 2)
    const [a, b] = await Promise.all([
      leg(api, results, { cache: 'true', 'artifact-name': 'leg-a' }),
      leg(api, results, { cache: 'true', 'artifact-name': 'leg-b' })
    ])
    expect([a.report.conclusion, b.report.conclusion]).toEqual(['success', 'success'])
    expect(results.cache.entries.filter((e) => e.finalized)).toHaveLength(1)
    const logs = [a.log, b.log]
    expect(logs.filter((l) => l.includes('store cache saved:'))).toHaveLength(1)
    const loser = logs.find((l) => !l.includes('store cache saved:')) ?? ''
    expect(workflowCommands(loser, 'warning').join('\n')).toMatch(/another job may be saving it/)
    expect(results.cache.errors).toEqual([])
  })

  it('a setup failure names the step and the command, with its stderr in the error, not on the checks file', async () => {
    const { api, results } = await services()
    // A HOME whose .config is a file: the user's nix.conf cannot be written.
    const home = mkdtempSync(join(tmpdir(), 'nvv-home-'))
    dirs.push(home)
    const { env, files } = actionEnv({
      apiUrl: api.url,
      inputs: {
        flake: '.',
        configuration: 'fixture',
        system: 'x86_64-linux',
        stages: 'boot,ssh',
        cache: 'false',
        'github-token': 'ghs_testtoken'
      },
      extra: { ...results.env(), HOME: home, XDG_CONFIG_HOME: join(home, 'not-a-dir/x') }
    })
    dirs.push(files.dir)
    cpSync(join(ROOT, 'tests/fixtures/flake'), files.workspace, { recursive: true })
    cpSync(join(ROOT, 'tests/vm/checks.yml'), join(files.workspace, 'checks.yml'))
    spawnSync('sh', ['-c', 'echo file > "$1"', 'sh', join(home, 'not-a-dir')])
    const run = await runBundle(MAIN, { ...env, INPUT_CHECKS: 'checks.yml' })
    expect(run.code).toBe(1)
    const out = readCommandFile(files.output)
    const report = JSON.parse(readFileSync(out['report-path'], 'utf8')) as Report
    expect(report.failure).toMatchObject({ kind: 'tool-error' })
    expect(report.failure?.message).toMatch(
      /write the user's nix\.conf .*failed: cannot write .*not-a-dir\/x\/nix\/nix\.conf: ENOTDIR/
    )
    const errors = workflowCommands(run.stdout, 'error')
    expect(
      errors.some((e) => /file=\.github\/workflows\/vm\.yml,line=1::.*nix\.conf/.test(e))
    ).toBe(true)
    expect(errors.some((e) => e.includes('checks.yml'))).toBe(false)
    expect(api.violations.map((r) => r.errors)).toEqual([])
  })
})
