// Dry runs: the accelerator the plan and the outputs name, the outputs a dry run sets, and the
// check that the configuration exists (a fake Nix, then Debian's nix-bin on the fixture flake).
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals'
import { spawnSync } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { isEntryPoint } from '../../src/action/entry.js'
import { parseInputs, type InputName } from '../../src/action/inputs.js'
import { OUTPUT_NAMES, run } from '../../src/action/main.js'
import { dryRunOutputs, planDryRun } from '../../src/action/plan.js'
import { runIdentity } from '../../src/action/identity.js'
import { readRunContext } from '../../src/github/context.js'
import type { Command, ExecResult, Executor } from '../../src/nix/exec.js'
import { main as cliMain } from '../../src/cli/main.js'
import {
  checkConfigurationExists,
  listConfigurationsCommand
} from '../../src/pipeline/configurations.js'
import { plannedAccelerator, renderPlan } from '../../src/pipeline/plan.js'
import { InputError } from '../../src/util/errors.js'
import { hostSystem } from '../../src/vm/system.js'
import { ROOT } from '../support/action-runner.js'
import { captureStdout } from '../support/stdout.js'

const host = hostSystem() ?? 'x86_64-linux'
const other = host === 'x86_64-linux' ? 'aarch64-linux' : 'x86_64-linux'

describe('the accelerator a real run would try', () => {
  it.each<[string, string, boolean, string]>([
    ['tcg', host, true, 'tcg'],
    ['kvm', host, false, 'kvm'],
    ['auto', host, true, 'kvm'],
    ['auto', host, false, 'tcg'],
    ['auto', other, true, 'tcg']
  ])('accel %s, guest %s, KVM usable %s → %s', (choice, system, kvm, expected) => {
    expect(
      plannedAccelerator(choice, system as 'x86_64-linux', { host: host as 'x86_64-linux', kvm })
    ).toBe(expected)
  })

  const plan = (accel: string, kvm: boolean, system = host): string =>
    renderPlan({
      runner: '/r/bin/run-vm-vm',
      system: system as 'x86_64-linux',
      stages: ['boot'],
      accel,
      outDir: '/out',
      kvm
    })

  it('the plan’s QEMU_OPTS carry the accel input, not always TCG', () => {
    expect(plan('kvm', true)).toMatch(/QEMU_OPTS: .*-machine accel=kvm/)
    expect(plan('kvm', true)).not.toMatch(/accel=tcg/)
    expect(plan('tcg', true)).toMatch(/QEMU_OPTS: .*-machine accel=tcg/)
    expect(plan('auto', true)).toMatch(
      /QEMU_OPTS: .*-machine accel=kvm \(accel=tcg if the KVM probe fails\)/
    )
    expect(plan('auto', false)).toMatch(/QEMU_OPTS: .*-machine accel=tcg$/m)
    expect(plan('auto', true, other)).toMatch(/→ TCG \(architectures differ\)/)
    expect(plan('kvm', true, other)).toMatch(/the run would fail: KVM needs/)
    expect(plan('kvm', false)).toMatch(/the run would fail: \/dev\/kvm/)
  })
})

describe('dry-run outputs', () => {
  it('names every output of action.yml: conclusion skipped, the accelerator, the rest empty', () => {
    const o = dryRunOutputs('kvm')
    expect(Object.keys(o)).toEqual([...OUTPUT_NAMES])
    expect(o).toEqual({
      conclusion: 'skipped',
      'report-path': '',
      'boot-seconds': '',
      accelerator: 'kvm',
      'artifact-id': '',
      'artifact-url': '',
      'check-run-id': ''
    })
  })
})

describe('entry points (src/main.ts, src/post.ts)', () => {
  it('start the step only as Node’s script; imported, they export run for local runners', async () => {
    const file = join(ROOT, 'src/main.ts')
    const url = pathToFileURL(file).href
    expect(isEntryPoint(url, ['node', file])).toBe(true)
    expect(isEntryPoint(url, ['node', join(ROOT, 'src/../src/main.ts')])).toBe(true)
    expect(isEntryPoint(url, ['node', join(ROOT, 'node_modules/.bin/jest')])).toBe(false)
    expect(isEntryPoint(url, ['node'])).toBe(true)

    process.exitCode = undefined
    const main = await import('../../src/main.js')
    const post = await import('../../src/post.js')
    expect(typeof main.run).toBe('function')
    expect(post.run).toBe(post.runPost)
    // Imported under jest (not Node's script): neither ran, so nothing failed the step.
    expect(process.exitCode).toBeUndefined()
  })
})

/** An Executor that answers every command with `result` and records what it was asked. */
function fakeNix(result: Partial<ExecResult>): Executor & { commands: Command[] } {
  const commands: Command[] = []
  return {
    commands,
    run(cmd) {
      commands.push(cmd)
      return Promise.resolve({
        code: 0,
        signal: null,
        stdout: '',
        stderr: '',
        durationMs: 1,
        ...result
      })
    }
  }
}

const target = { flakeRef: '/src/flake', configuration: 'web', display: '.' }

describe('checkConfigurationExists (fake nix)', () => {
  it('lists the names with nix eval, without writing a lock file, with the host’s options', async () => {
    const exec = fakeNix({ stdout: '["db","web"]' })
    const r = await checkConfigurationExists(target, {
      exec,
      nix: '/usr/bin/nix',
      options: [['build-users-group', '']],
      what: 'input "configuration"'
    })
    expect(r).toMatchObject({ status: 'found', names: ['db', 'web'] })
    expect(exec.commands[0].argv).toEqual([
      '/usr/bin/nix',
      '--extra-experimental-features',
      'nix-command flakes',
      'eval',
      '--json',
      '--no-write-lock-file',
      '--apply',
      'builtins.attrNames',
      '--option',
      'build-users-group',
      '',
      '/src/flake#nixosConfigurations'
    ])
  })

  it('an unknown configuration is an input error naming the ones that exist', async () => {
    const exec = fakeNix({ stdout: '["db","mail"]' })
    await expect(
      checkConfigurationExists(target, { exec, nix: 'nix', what: 'input "configuration"' })
    ).rejects.toThrow(
      new InputError(
        'input "configuration": "web" is not in the nixosConfigurations of . (/src/flake); allowed values: db, mail'
      )
    )
  })

  it('a flake without nixosConfigurations is an input error too', async () => {
    const exec = fakeNix({
      code: 1,
      stderr:
        "error: flake 'path:/src/flake' does not provide attribute 'packages.x86_64-linux.nixosConfigurations', 'legacyPackages.x86_64-linux.nixosConfigurations' or 'nixosConfigurations'\n"
    })
    await expect(
      checkConfigurationExists(target, { exec, nix: 'nix', what: '--flake' })
    ).rejects.toThrow(/--flake: the flake . \(\/src\/flake\) has no nixosConfigurations/)
  })

  it('no Nix, or Nix that cannot answer (inputs not fetchable): unchecked, not an error', async () => {
    expect(
      await checkConfigurationExists(target, { exec: fakeNix({}), nix: undefined, what: 'x' })
    ).toMatchObject({ status: 'unchecked', reason: expect.stringMatching(/nix is not on PATH/) })
    const offline = fakeNix({
      code: 1,
      stderr: "error: unable to download 'https://api.github.com/…': Couldn't resolve host name (6)"
    })
    expect(
      await checkConfigurationExists(target, { exec: offline, nix: 'nix', what: 'x' })
    ).toMatchObject({ status: 'unchecked', reason: expect.stringMatching(/resolve host name/) })
  })

  it('the command a plan shows', () => {
    expect(listConfigurationsCommand('github:o/r').argv.slice(-1)).toEqual([
      'github:o/r#nixosConfigurations'
    ])
  })
})

// Debian's nix-bin evaluates the fixture flake (no nixpkgs, no network). Listing the names needs
// neither --impure nor NVV_FIXTURE_GUEST: no configuration is evaluated.
const nix = spawnSync('sh', ['-c', 'command -v nix']).stdout?.toString().trim() || undefined
const withNix = nix !== undefined ? describe : describe.skip

withNix('with real Nix on tests/fixtures/flake', () => {
  let ws: string
  beforeAll(() => {
    // A copy outside any git work tree: a path flake, as a user's unpacked flake would be.
    ws = mkdtempSync(join(tmpdir(), 'nvv-dry-run-'))
    cpSync(join(ROOT, 'tests/fixtures/flake'), join(ws, 'flake'), { recursive: true })
  })
  afterAll(() => rmSync(ws, { recursive: true, force: true }))

  const options: [string, string][] =
    spawnSync('getent', ['group', 'nixbld']).status === 0 ? [] : [['build-users-group', '']]

  it('finds the configuration, and names the existing ones for an unknown one', async () => {
    const { spawnExecutor } = await import('../../src/nix/exec.js')
    const flakeRef = join(ws, 'flake')
    const check = (configuration: string): ReturnType<typeof checkConfigurationExists> =>
      checkConfigurationExists(
        { flakeRef, configuration, display: './flake' },
        { exec: spawnExecutor(), nix, options, what: 'input "configuration"' }
      )
    expect(await check('fixture')).toMatchObject({
      status: 'found',
      names: ['fixture', 'fixture-aarch64', 'fixture-mismatch']
    })
    await expect(check('nixos-vm-x86_64')).rejects.toThrow(
      /input "configuration": "nixos-vm-x86_64" is not in the nixosConfigurations of \.\/flake \(.*\); allowed values: fixture, fixture-aarch64, fixture-mismatch/
    )
    expect(spawnSync('ls', [flakeRef]).stdout.toString()).not.toMatch(/flake\.lock/)
  })

  it('the action’s dry run: plan with the check, or the input error before any plan', async () => {
    const ctx = readRunContext({ GITHUB_WORKSPACE: ws })
    const inputs = (values: Partial<Record<InputName, string>>): ReturnType<typeof parseInputs> =>
      parseInputs((name) => values[name] ?? '', { workspace: ws, host })
    const good = inputs({
      flake: './flake',
      configuration: 'fixture',
      system: host,
      accel: 'tcg',
      'dry-run': 'true'
    })
    const dry = await planDryRun(good, runIdentity(good, ctx), ctx, join(ws, 'out'))
    expect(dry.accelerator).toBe('tcg')
    expect(dry.configuration).toMatchObject({ status: 'found' })
    expect(dry.plan).toMatch(
      /Configuration:\n {2}- nixosConfigurations\.fixture exists in \.\/flake \(it has: fixture, fixture-aarch64, fixture-mismatch;/
    )
    expect(dry.plan).toMatch(/QEMU_OPTS: .*-machine accel=tcg/)

    const bad = inputs({ flake: './flake', configuration: 'nope', 'dry-run': 'true' })
    await expect(planDryRun(bad, runIdentity(bad, ctx), ctx, join(ws, 'out'))).rejects.toThrow(
      /"nope" is not in the nixosConfigurations of \.\/flake .*allowed values: fixture, fixture-aarch64, fixture-mismatch/
    )
  })

  it('the action’s main step: outputs of a dry run, and an unknown configuration fails it', async () => {
    const files = mkdtempSync(join(tmpdir(), 'nvv-dry-run-files-'))
    const output = join(files, 'output')
    const summary = join(files, 'summary')
    writeFileSync(output, '')
    writeFileSync(summary, '')
    const env = {
      GITHUB_WORKSPACE: ws,
      GITHUB_OUTPUT: output,
      GITHUB_STEP_SUMMARY: summary,
      RUNNER_TEMP: files,
      INPUT_FLAKE: './flake',
      INPUT_CONFIGURATION: 'fixture',
      INPUT_SYSTEM: host,
      INPUT_ACCEL: 'kvm',
      'INPUT_DRY-RUN': 'true'
    }
    const saved = { ...process.env }
    const { written: printed, restore } = captureStdout()
    try {
      Object.assign(process.env, env)
      process.exitCode = undefined
      await run()
      expect(process.exitCode).toBeUndefined()
      const out = readFileSync(output, 'utf8')
      expect(out).toMatch(/conclusion<<.*\nskipped\n/)
      expect(out).toMatch(/accelerator<<.*\nkvm\n/)
      expect(out).toMatch(/boot-seconds<<.*\n\n/)
      expect(printed.join('')).toMatch(/-machine accel=kvm/)
      expect(readFileSync(summary, 'utf8')).toContain('dry run')

      printed.length = 0
      writeFileSync(output, '')
      process.env.INPUT_CONFIGURATION = 'nixos-vm-x86_64'
      await run()
      expect(process.exitCode).toBe(1)
      expect(printed.join('')).toMatch(
        /::error::Input error: input "configuration": "nixos-vm-x86_64" is not in the nixosConfigurations of \.\/flake .*allowed values: fixture, fixture-aarch64, fixture-mismatch/
      )
      expect(printed.join('')).not.toMatch(/Plan \(dry run/)
      expect(readFileSync(output, 'utf8')).toBe('')
    } finally {
      restore()
      process.exitCode = undefined
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k]
      Object.assign(process.env, saved)
      rmSync(files, { recursive: true, force: true })
    }
  })

  it('the CLI’s --dry-run: exit 2 naming the configurations, 0 with the check in the plan', async () => {
    const errs: string[] = []
    const stderr = jest.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
      errs.push(String(chunk))
      return true
    })
    let out = ''
    try {
      const argv = (name: string): string[] => [
        'validate',
        '--dry-run',
        '--flake',
        `${join(ws, 'flake')}#${name}`,
        '--system',
        host,
        '--out',
        join(ws, 'cli-out')
      ]
      expect(await cliMain(argv('nope'), (s) => (out += s))).toBe(2)
      expect(errs.join('')).toMatch(
        /error: --flake: "nope" is not in the nixosConfigurations of .*allowed values: fixture, fixture-aarch64, fixture-mismatch/
      )
      expect(await cliMain(argv('fixture'), (s) => (out += s))).toBe(0)
      expect(out).toMatch(/nixosConfigurations\.fixture exists in/)
    } finally {
      stderr.mockRestore()
    }
  })
})
