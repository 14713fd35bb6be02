// --flake end to end with real Nix (Debian's nix-bin 2.8 here) and a real guest: the fixture flake
// (tests/fixtures/flake: nixosSystem's shape, no nixpkgs, no network) is built through our
// extendModules expression, its runner boots the project's Debian test guest, and the CLI
// validates it with the SSH key it generated and injected. Run after `npm run package`.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { spawn, spawnSync } from 'node:child_process'
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { BUILD_EXPRESSION } from '../../src/nix/expr.js'
import { packagePathResolver } from '../../src/nix/build.js'
import { parseFlakeTarget } from '../../src/nix/flakeref.js'
import {
  buildAttr,
  copyToCache,
  guestNixParams,
  serveCache,
  signingKey,
  type ServedCache
} from '../support/binary-cache.js'
import { buildGuest, holdGuest } from '../support/guests.js'
import type { Report } from '../../src/report/model.js'

const root = resolve(dirname(new URL(import.meta.url).pathname), '../..')
const cli = process.env.NVV_CLI ?? join(root, 'dist/cli/index.js')
const fixture = join(root, 'tests/fixtures/flake')

let tmp: string
let guest: string
let releaseGuest: (() => void) | undefined
let cache: ServedCache | undefined

interface CliRun {
  code: number | null
  stdout: string
  stderr: string
}

function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [cli, ...args], {
      cwd: tmp,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('close', (code) => done({ code, stdout, stderr }))
  })
}

/**
 * The environment of the builds: the guest for the fixture, no binary cache (no network), and no
 * build sandbox: the fixture (no nixpkgs here) builds with the host's /bin/sh and tools, which a
 * sandbox hides (Debian's nix-bin sandboxes by default and has no sandbox shell). Nothing else of
 * the machine's Nix is changed: no nixbld group is made, the tool has to cope without one.
 */
function nixEnv(): NodeJS.ProcessEnv {
  return { NVV_FIXTURE_GUEST: guest, NIX_CONFIG: 'substituters =\nsandbox = false\n' }
}

/** Single-user root Nix without the nixbld group (Debian's nix-bin on a fresh machine). */
const noNixbld = spawnSync('getent', ['group', 'nixbld']).status !== 0

beforeAll(async () => {
  for (const tool of ['nix', 'qemu-system-x86_64', 'flock']) {
    if (spawnSync('sh', ['-c', 'command -v "$1"', 'sh', tool]).status !== 0)
      throw new Error(`${tool} is not on PATH`)
  }
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run npm run package first`)
  const g = buildGuest('x86_64')
  guest = g.dir
  releaseGuest = holdGuest(g)
  tmp = await mkdtemp(join(tmpdir(), 'nvv-flake-it-'))
  // Outside any git work tree, so Nix copies the directory as it is (untracked files included).
  await cp(fixture, join(tmp, 'flake'), { recursive: true })
})

afterAll(async () => {
  await cache?.close()
  releaseGuest?.()
  if (tmp !== undefined) await rm(tmp, { recursive: true, force: true })
})

describe('vm-automation validate --flake (real nix build, real boot)', () => {
  it('builds the fixture through extendModules, boots it and logs in with the key it injected', async () => {
    // The network stage's package check by name: `hello` is evaluated from the configuration's
    // pkgs at build time, and the guest installs it from a signed cache it trusts (its Nix takes
    // substituters from QEMU_KERNEL_PARAMS, which the fixture's runner passes on).
    const key = await signingKey('nvv-flake-test-1')
    const hello = buildAttr(join(fixture, 'pkgs/default.nix'), 'hello')
    const cacheDir = join(tmp, 'binary-cache')
    copyToCache(cacheDir, [hello], key)
    cache = await serveCache(cacheDir)
    const checks = join(tmp, 'checks.yml')
    await writeFile(checks, 'network:\n  substitute: [hello]\n')
    const out = join(tmp, 'out-ok')
    const r = await runCli(
      [
        'validate',
        '--flake',
        `${join(tmp, 'flake')}#fixture`,
        '--system',
        'x86_64-linux',
        '--stages',
        'boot,ssh,network',
        '--checks',
        checks,
        '--out',
        out,
        '--accel',
        'tcg',
        '--boot-timeout',
        '8m'
      ],
      { ...nixEnv(), QEMU_KERNEL_PARAMS: guestNixParams([cache.guestUrl], [key.publicKey]) }
    )
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8'))
    if (r.code !== 0)
      throw new Error(
        `exit ${r.code}\n${r.stdout}\n${r.stderr}\n${JSON.stringify(report.failure, null, 2)}`
      )
    expect(report).toMatchObject({
      conclusion: 'success',
      configuration: 'fixture',
      system: 'x86_64-linux',
      failure: null
    })
    expect(report.timings.buildMs).toBeGreaterThan(0)
    expect(report.stages.map((s: { name: string; status: string }) => [s.name, s.status])).toEqual([
      ['boot', 'passed'],
      ['ssh', 'passed'],
      ['network', 'passed']
    ])
    expect(report.stages[1].checks[0].output).toContain('uid=0(root)')
    expect(report.stages[2].checks).toMatchObject([
      {
        name: 'substitute hello',
        status: 'passed',
        output: `realised ${hello} from the VM's substituters (${cache.guestUrl}); bin/hello: Hello, world!`
      }
    ])
    expect(report.artifacts).toContain('build.log')
    // Without the group, the build ran as root for this run only (the host's nix.conf untouched).
    if (noNixbld) expect(r.stderr).toContain("building with --option build-users-group ''")
    else expect(r.stderr).not.toContain('build-users-group')
    expect(await readFile(join(out, 'build.log'), 'utf8')).toMatch(
      /building '\/nix\/store\/\w{32}-nixos-vm\.drv'/
    )

    // What the build baked into the VM came from our module: sshd on, root by key only, and the
    // run's own ed25519 key — not the guest's fixed one (which no longer opens root's account).
    const runner = /runner (\/nix\/store\/\S+\/bin\/run-fixture-vm)/.exec(r.stderr)?.[1]
    expect(runner).toBeDefined()
    const cpio = await readFile(
      join(dirname(dirname(runner as string)), 'share', 'nixos.cpio'),
      'latin1'
    )
    expect(cpio).toContain('nvv/sshd-enabled')
    expect(cpio).toContain('PermitRootLogin prohibit-password')
    expect(cpio).toMatch(/ssh-ed25519 AAAAC3NzaC1lZDI1NTE5\S+ nixos-vm-validate/)
    const fixedKey = (await readFile(join(guest, 'ssh', 'id_ed25519.pub'), 'utf8')).split(' ')[1]
    expect(cpio).not.toContain(fixedKey)
  })

  it('evaluates package paths from the configuration’s pkgs with real Nix, and names a missing one', async () => {
    const target = parseFlakeTarget(`${join(tmp, 'flake')}#fixture`)
    const saved = process.env.NIX_CONFIG
    process.env.NIX_CONFIG = nixEnv().NIX_CONFIG
    try {
      const resolve = packagePathResolver({ target, options: [['build-users-group', '']] })
      expect(await resolve('hello')).toBe(buildAttr(join(fixture, 'pkgs/default.nix'), 'hello'))
      await expect(resolve('nope')).rejects.toThrow(
        /^cannot evaluate nixosConfigurations\.fixture\.pkgs\.nope \(to realise it in the VM\): .*nixos-vm-validate: nixosConfigurations\.fixture\.pkgs has no package nope/s
      )
      // stdenv exists in the fixture's pkgs but is no package (no outPath).
      await expect(resolve('stdenv')).rejects.toThrow(/has no package stdenv/)
    } finally {
      if (saved === undefined) delete process.env.NIX_CONFIG
      else process.env.NIX_CONFIG = saved
    }
  })

  it('a syntax error in the flake is build-failed with the file and line, and nothing boots', async () => {
    const broken = join(tmp, 'broken')
    await cp(join(tmp, 'flake'), broken, { recursive: true })
    const conf = join(broken, 'configuration.nix')
    await writeFile(
      conf,
      (await readFile(conf, 'utf8')).replace(
        'networking.hostName = "fixture";',
        'networking.hostName = "fixture"'
      )
    )
    const out = join(tmp, 'out-broken')
    const started = Date.now()
    const r = await runCli(
      [
        'validate',
        '--flake',
        `${broken}#fixture`,
        '--system',
        'x86_64-linux',
        '--stages',
        'boot,ssh',
        '--out',
        out
      ],
      nixEnv()
    )
    expect(r.code).toBe(1)
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8'))
    expect(report.conclusion).toBe('failure')
    expect(report.failure).toMatchObject({
      stage: 'build',
      kind: 'build-failed',
      file: 'configuration.nix',
      line: 6
    })
    expect(report.failure.message).toContain("syntax error, unexpected '='")
    expect(report.failure.excerpt).toContain('services.openssh.settings.PermitRootLogin')
    expect(report.stages).toEqual([expect.objectContaining({ name: 'build', status: 'failed' })])
    expect(report.accelerator).toBe('none')
    expect(report.artifacts).toEqual(
      expect.arrayContaining(['build.log', 'report.json', 'junit.xml', 'summary.md'])
    )
    expect(existsSync(join(out, 'console.log'))).toBe(false)
    expect(r.stdout).toContain('build-failed')
    expect(Date.now() - started).toBeLessThan(60_000)
  })

  it('plans the emulated leg: binfmt, extra-platforms, and the host.pkgs override', async () => {
    const r = await runCli(
      [
        'validate',
        '--dry-run',
        '--flake',
        `${join(tmp, 'flake')}#fixture-aarch64`,
        '--system',
        'aarch64-linux'
      ],
      nixEnv()
    )
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/binfmt/)
    expect(r.stdout).toContain('nix setting: extra-platforms = aarch64-linux')
    expect(r.stdout).toMatch(/nix setting: extra-sandbox-paths = \/\S+/)
    expect(r.stdout).toContain(
      'virtualisation.vmVariant.virtualisation.host.pkgs = lib.mkForce (import pkgs.path { system = "x86_64-linux"; })'
    )
    expect(r.stdout).toContain("--option extra-platforms 'aarch64-linux i686-linux'")
  })

  it('the emulated leg end to end: aarch64 guest, runner built for the x86_64 host, TCG', async () => {
    const armBuilt = buildGuest('aarch64')
    const arm = { dir: armBuilt.dir, release: holdGuest(armBuilt) }
    const armGuest = arm.dir
    try {
      const out = join(tmp, 'out-arm')
      const r = await runCli(
        [
          'validate',
          '--flake',
          `${join(tmp, 'flake')}#fixture-aarch64`,
          '--system',
          'aarch64-linux',
          '--stages',
          'boot,ssh',
          '--out',
          out,
          '--boot-timeout',
          '8m'
        ],
        { ...nixEnv(), NVV_FIXTURE_GUEST: armGuest }
      )
      const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8'))
      if (r.code !== 0)
        throw new Error(
          `exit ${r.code}\n${r.stdout}\n${r.stderr}\n${JSON.stringify(report.failure, null, 2)}`
        )
      expect(report).toMatchObject({
        conclusion: 'success',
        system: 'aarch64-linux',
        emulated: true,
        accelerator: 'tcg'
      })
      expect(report.stages[1].checks[0].output).toMatch(/aarch64 GNU\/Linux[\s\S]*uid=0\(root\)/)
      expect(r.stderr).toMatch(/binfmt entry \S+ runs aarch64-linux binaries/)
    } finally {
      arm.release()
    }
  })

  it('the host.pkgs override reaches the VM runner: an aarch64 guest’s runner is an x86_64 derivation', () => {
    const evalVm = (configuration: string): Record<string, string> => {
      // nix-instantiate calls the function with the --argstr values (nix eval 2.8 does not).
      const r = spawnSync(
        'nix-instantiate',
        [
          '--extra-experimental-features',
          'nix-command flakes',
          '--eval',
          '--strict',
          '--json',
          '--expr',
          // The build's own expression, with the attributes of its derivation picked out.
          `{ flakeRef, configuration, sshUser, sshPublicKey, hostSystem }@args: let d = (${BUILD_EXPRESSION}) args; in { inherit (d) system guestSystem hostSystem graphics sshd permitRootLogin rootAuthorizedKeys; }`,
          '--argstr',
          'flakeRef',
          join(tmp, 'flake'),
          '--argstr',
          'configuration',
          configuration,
          '--argstr',
          'sshUser',
          'root',
          '--argstr',
          'sshPublicKey',
          'ssh-ed25519 AAAA test',
          '--argstr',
          'hostSystem',
          'x86_64-linux'
        ],
        { encoding: 'utf8', env: { ...process.env, ...nixEnv() } }
      )
      if (r.status !== 0) throw new Error(r.stderr)
      return JSON.parse(r.stdout) as Record<string, string>
    }
    expect(evalVm('fixture-aarch64')).toEqual({
      system: 'x86_64-linux',
      guestSystem: 'aarch64-linux',
      hostSystem: 'x86_64-linux',
      graphics: '',
      sshd: '1',
      permitRootLogin: 'prohibit-password',
      rootAuthorizedKeys: 'ssh-ed25519 AAAA test'
    })
    expect(evalVm('fixture')).toMatchObject({ system: 'x86_64-linux', guestSystem: 'x86_64-linux' })
  })
})

describe('checks derived from the configuration (real Nix, real guest; docs/derived-checks.md)', () => {
  interface Check {
    name: string
    status: string
    output: string
    declared?: { option: string; value: string }
  }
  const derivedRun = async (
    configuration: string
  ): Promise<{ r: CliRun; report: Report; derived: Check[] }> => {
    const out = join(tmp, `out-${configuration}`)
    // No checks file (the working directory has none): the generic defaults and the derived.
    const r = await runCli(
      [
        'validate',
        '--flake',
        `${join(tmp, 'flake')}#${configuration}`,
        '--system',
        'x86_64-linux',
        '--stages',
        'boot,ssh,system,services,users,home-manager,packages',
        '--out',
        out,
        '--accel',
        'tcg',
        '--boot-timeout',
        '8m'
      ],
      nixEnv()
    )
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')) as Report
    const derived = report.stages.flatMap((s) => s.checks as Check[]).filter((c) => c.declared)
    return { r, report, derived }
  }

  it('the fixture: every declared item is found, each check marked with its option', async () => {
    const { r, report, derived } = await derivedRun('fixture')
    if (r.code !== 0)
      throw new Error(`exit ${r.code}\n${r.stderr}\n${JSON.stringify(report.failure, null, 2)}`)
    const byOption = Object.fromEntries(derived.map((c) => [`${c.declared?.option} ${c.name}`, c]))
    expect(Object.keys(byOption).sort()).toEqual([
      'environment.systemPackages curl on the PATH',
      'environment.systemPackages make on the PATH',
      'environment.systemPackages vim on the PATH',
      'home-manager.users.baleen.home.file baleen: ~/.config/nvv/home-manager',
      'home-manager.users.baleen.home.file home-manager-baleen.service',
      'networking.firewall.allowedTCPPorts TCP port 22 listening',
      'networking.hostName hostname',
      'systemd.services.docker docker.service',
      'systemd.services.sshd sshd.service',
      'systemd.sockets.docker docker.socket',
      'time.timeZone time zone',
      'users.users.baleen user baleen',
      'users.users.baleen.extraGroups docker as baleen (no sudo)',
      'users.users.baleen.packages git on the PATH of baleen',
      'virtualisation.docker.enable docker daemon answers'
    ])
    expect(derived.filter((c) => c.status !== 'passed')).toEqual([])
    expect(report.declared).toEqual({ checks: 13, excluded: [] })
    const summary = await readFile(join(tmp, 'out-fixture', 'summary.md'), 'utf8')
    expect(summary).toContain('### Declared vs found')
    expect(summary).toContain(
      '15 items the configuration declares: 15 found as declared, 0 missing'
    )
  })

  it('the mismatched variant fails, naming each option and what the VM had', async () => {
    const { r, report, derived } = await derivedRun('fixture-mismatch')
    expect(r.code).toBe(1)
    const failed = derived
      .filter((c) => c.status === 'failed')
      .map((c) => [c.declared?.option, c.name, c.output])
    expect(failed).toEqual([
      [
        'users.users.baleen',
        'user baleen',
        expect.stringMatching(
          /^baleen is not in group wheel \(groups: baleen sudo docker\)\nbaleen: uid 1000/
        )
      ],
      [
        'users.users.baleen.packages',
        'rg on the PATH of baleen',
        expect.stringMatching(/^\$ command -v rg .*\nexit 1/s)
      ],
      [
        'networking.firewall.allowedTCPPorts',
        'TCP port 8080 listening',
        expect.stringContaining('nothing listens on TCP port 8080')
      ]
    ])
    // The stages after the boot's end do not run once a stage failed (the declared-only unit is
    // judged by the unit tests of the services stage and of the derivation).
    expect(report.stages.find((st) => st.name === 'services')?.message).toBe(
      'not run: users failed'
    )
    expect(report.failure?.kind).toBe('check-failed')
    const summary = await readFile(join(tmp, 'out-fixture-mismatch', 'summary.md'), 'utf8')
    expect(summary).toMatch(
      /\| ❌ \| users.users.baleen \| groups baleen, sudo, docker, wheel.*\| baleen is not in group wheel/
    )
  })

  it('an unseen healthy guest with no checks file and no flake passes the default stages', async () => {
    const g = buildGuest('x86_64')
    const out = join(tmp, 'out-generic')
    const r = await runCli([
      'validate',
      '--runner',
      g.runner,
      '--ssh-key',
      g.sshKey,
      '--system',
      g.system,
      '--out',
      out,
      '--accel',
      'tcg',
      '--boot-timeout',
      '8m'
    ])
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')) as Report
    if (r.code !== 0)
      throw new Error(`exit ${r.code}\n${r.stderr}\n${JSON.stringify(report.failure, null, 2)}`)
    expect(report.conclusion).toBe('success')
    expect(report.declared).toBeUndefined()
    expect(JSON.stringify(report.stages)).not.toContain('baleen')
  })
})
