import { execFileSync } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import ssh2 from 'ssh2'
import { buildRunner, findRunner, parseBuildJson } from '../../src/nix/build.js'
import type { Command, ExecOptions, ExecResult, Executor } from '../../src/nix/exec.js'
import { BUILD_EXPRESSION, nixBuildArgv, validationModuleText } from '../../src/nix/expr.js'
import type { HostFacts } from '../../src/nix/facts.js'
import { parseFlakeTarget, type FlakeTarget } from '../../src/nix/flakeref.js'
import { nixPlanSections } from '../../src/nix/plan.js'
import { createEphemeralKey, ed25519Pair, provePair, publicKeyOf } from '../../src/nix/sshkey.js'
import { ValidationFailure } from '../../src/util/errors.js'

let tmp: string
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'nvv-nix-build-'))
})
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true })
})

describe('parseFlakeTarget', () => {
  const files = new Set([
    '/repo/flake.nix',
    '/repo/.git',
    '/repo/sub/flake.nix',
    '/plain/flake.nix'
  ])
  const exists = (p: string): boolean => files.has(p)

  it('makes local references absolute (getFlake accepts nothing relative) and finds the repository', () => {
    expect(parseFlakeTarget('.#nixos-vm-x86_64', { cwd: '/repo', exists })).toEqual({
      flakeRef: '/repo',
      configuration: 'nixos-vm-x86_64',
      localDir: '/repo',
      repoRoot: '/repo',
      display: '.#nixos-vm-x86_64'
    })
    expect(
      parseFlakeTarget('./sub#nixosConfigurations.vm', { cwd: '/repo', exists })
    ).toMatchObject({ flakeRef: '/repo/sub', configuration: 'vm', repoRoot: '/repo' })
    expect(parseFlakeTarget('path:/plain#vm', { exists })).toMatchObject({
      flakeRef: 'path:/plain',
      localDir: '/plain'
    })
    expect(parseFlakeTarget('/plain#vm', { exists }).repoRoot).toBeUndefined()
  })

  it('takes the configuration from the action input when the reference has no fragment', () => {
    expect(parseFlakeTarget('.', { cwd: '/repo', exists, configuration: 'vm' }).configuration).toBe(
      'vm'
    )
    expect(parseFlakeTarget('github:owner/repo', { configuration: 'vm' })).toEqual({
      flakeRef: 'github:owner/repo',
      configuration: 'vm',
      display: 'github:owner/repo'
    })
  })

  it('rejects what cannot work, before anything runs', () => {
    expect(() => parseFlakeTarget('.', { cwd: '/repo', exists })).toThrow(/name the configuration/)
    expect(() => parseFlakeTarget('.#a b', { cwd: '/repo', exists })).toThrow(
      /not a nixosConfigurations name/
    )
    expect(() => parseFlakeTarget('/nowhere#vm', { exists })).toThrow(/flake\.nix does not exist/)
    expect(() => parseFlakeTarget('.#a', { cwd: '/repo', exists, configuration: 'b' })).toThrow(
      /names configuration "a" but configuration is "b"/
    )
    expect(() => parseFlakeTarget('owner/repo#vm', { exists })).toThrow(/neither a path/)
  })
})

const target: FlakeTarget = {
  flakeRef: '/repo',
  configuration: 'nixos-vm-aarch64',
  localDir: '/repo',
  repoRoot: '/repo',
  display: '.#nixos-vm-aarch64'
}

describe('the build command', () => {
  it('is nix build --impure --expr with every input as --argstr (native)', () => {
    expect(
      nixBuildArgv({
        target,
        sshUser: 'root',
        sshPublicKey: 'ssh-ed25519 AAAA k',
        hostSystem: 'x86_64-linux',
        outLink: '/w/result'
      })
    ).toEqual([
      'nix',
      '--extra-experimental-features',
      'nix-command flakes',
      'build',
      '--impure',
      '--print-build-logs',
      '--json',
      '--out-link',
      '/w/result',
      '--expr',
      BUILD_EXPRESSION,
      '--argstr',
      'flakeRef',
      '/repo',
      '--argstr',
      'configuration',
      'nixos-vm-aarch64',
      '--argstr',
      'sshUser',
      'root',
      '--argstr',
      'sshPublicKey',
      'ssh-ed25519 AAAA k',
      '--argstr',
      'hostSystem',
      'x86_64-linux'
    ])
  })

  it('emulated: extra-platforms, the sandbox path and the restored cache as options', () => {
    const argv = nixBuildArgv({
      target,
      sshUser: 'root',
      sshPublicKey: 'k',
      hostSystem: 'x86_64-linux',
      outLink: '/w/result',
      emulation: [
        ['extra-platforms', 'aarch64-linux'],
        ['extra-sandbox-paths', '/usr/bin/qemu-aarch64-static']
      ],
      extraSubstituters: ['file:///t/c?trusted=1']
    })
    const at = argv.indexOf('--option')
    expect(argv.slice(at, at + 9)).toEqual([
      '--option',
      'extra-platforms',
      'aarch64-linux',
      '--option',
      'extra-sandbox-paths',
      '/usr/bin/qemu-aarch64-static',
      '--option',
      'extra-substituters',
      'file:///t/c?trusted=1'
    ])
  })

  it('the expression extends the configuration and never splices inputs into its text', () => {
    expect(BUILD_EXPRESSION).toMatch(
      /^\{ flakeRef, configuration, sshUser, sshPublicKey, hostSystem \}:/
    )
    expect(BUILD_EXPRESSION).toContain('builtins.getFlake flakeRef')
    expect(BUILD_EXPRESSION).toContain(
      'base.extendModules { modules = [ validation ]; }).config.system.build.vm'
    )
    expect(BUILD_EXPRESSION).toContain('virtualisation.vmVariant = {')
    expect(BUILD_EXPRESSION).toContain(
      'virtualisation.host.pkgs = lib.mkIf (pkgs.stdenv.hostPlatform.system != hostSystem)'
    )
    expect(BUILD_EXPRESSION).toContain('import pkgs.path { system = hostSystem; }')
    expect(BUILD_EXPRESSION).toContain(
      'users.users.${sshUser}.openssh.authorizedKeys.keys = [ sshPublicKey ];'
    )
  })

  it('the module as the plan shows it: host.pkgs only when emulated, PermitRootLogin only for root', () => {
    expect(
      validationModuleText({ sshUser: 'root', guest: 'x86_64-linux', host: 'x86_64-linux' }).join(
        '\n'
      )
    ).not.toContain('host.pkgs')
    const emulated = validationModuleText({
      sshUser: 'baleen',
      guest: 'aarch64-linux',
      host: 'x86_64-linux'
    }).join('\n')
    expect(emulated).toContain(
      'virtualisation.vmVariant.virtualisation.host.pkgs = lib.mkForce (import pkgs.path { system = "x86_64-linux"; })'
    )
    expect(emulated).not.toContain('PermitRootLogin')
    expect(emulated).toContain('users.users.baleen.openssh.authorizedKeys.keys')
  })
})

/** Plays back a build: lines on stderr, then the given exit and stdout. */
function playback(lines: string[], code: number, stdout = ''): Executor & { ran: Command[] } {
  const ran: Command[] = []
  return {
    ran,
    async run(cmd: Command, opts?: ExecOptions): Promise<ExecResult> {
      ran.push(cmd)
      for (const l of lines) opts?.onLine?.(l, 'stderr')
      return { code, signal: null, stdout, stderr: lines.join('\n'), durationMs: 5 }
    }
  }
}

describe('buildRunner', () => {
  it('streams the log to the callback and build.log, and finds bin/run-*-vm from --json', async () => {
    const store = join(tmp, 'store-nixos-vm')
    await mkdir(join(store, 'bin'), { recursive: true })
    await writeFile(join(store, 'bin', 'run-fixture-vm'), '#!/bin/sh\n')
    const json = JSON.stringify([{ drvPath: '/nix/store/x-nixos-vm.drv', outputs: { out: store } }])
    const seen: string[] = []
    const r = await buildRunner({
      target,
      system: 'x86_64-linux',
      sshUser: 'root',
      sshPublicKey: 'k',
      workDir: join(tmp, 'w'),
      outDir: join(tmp, 'out'),
      hostSystem: 'x86_64-linux',
      exec: playback(["building '/nix/store/x-nixos-vm.drv'...", 'nixos-vm> done'], 0, json),
      onLine: (l) => seen.push(l)
    })
    expect(r).toMatchObject({
      runner: join(store, 'bin', 'run-fixture-vm'),
      storePath: store,
      drvPath: '/nix/store/x-nixos-vm.drv',
      outLink: join(tmp, 'w', 'result')
    })
    expect(seen).toEqual(["building '/nix/store/x-nixos-vm.drv'...", 'nixos-vm> done'])
    expect(await readFile(join(tmp, 'out', 'build.log'), 'utf8')).toBe(
      "building '/nix/store/x-nixos-vm.drv'...\nnixos-vm> done\n"
    )
  })

  it('a failed evaluation is build-failed with the repository file and line', async () => {
    const repo = join(tmp, 'repo')
    await mkdir(repo, { recursive: true })
    await writeFile(join(repo, 'configuration.nix'), '{ }\n')
    const log = [
      "error: undefined variable 'hostname'",
      '',
      '       at /nix/store/0000000000000000000000000000000z-source/configuration.nix:5:25:', // not in this store: existence decides
      '',
      '            5|   networking.hostName = hostname;'
    ]
    const err = await buildRunner({
      target: { ...target, flakeRef: repo, localDir: repo, repoRoot: repo },
      system: 'x86_64-linux',
      sshUser: 'root',
      sshPublicKey: 'k',
      workDir: join(tmp, 'w2'),
      outDir: join(tmp, 'out2'),
      hostSystem: 'x86_64-linux',
      exec: playback(log, 1)
    }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ValidationFailure)
    const f = err as ValidationFailure
    expect(f.kind).toBe('build-failed')
    expect(f.message).toBe(
      "nix build of .#nixos-vm-aarch64 failed (configuration.nix:5): undefined variable 'hostname'"
    )
    expect(f.details).toMatchObject({
      file: 'configuration.nix',
      line: 5,
      column: 25,
      logFile: join(tmp, 'out2', 'build.log')
    })
    expect(f.excerpt).toContain('networking.hostName = hostname;')
  })

  it('a build without a runner script is build-failed too', async () => {
    const store = join(tmp, 'store-norunner')
    await mkdir(join(store, 'bin'), { recursive: true })
    const json = JSON.stringify([{ outputs: { out: store } }])
    await expect(
      buildRunner({
        target,
        system: 'x86_64-linux',
        sshUser: 'root',
        sshPublicKey: 'k',
        workDir: join(tmp, 'w3'),
        outDir: join(tmp, 'o3'),
        hostSystem: 'x86_64-linux',
        exec: playback([], 0, json)
      })
    ).rejects.toMatchObject({ kind: 'build-failed' })
    expect(await findRunner(store)).toBeUndefined()
    expect(parseBuildJson('not json')).toEqual({})
  })
})

describe('ephemeral SSH key', () => {
  it('is an OpenSSH ed25519 pair, private 0600, and publicKeyOf gives the same public line', async () => {
    const key = await createEphemeralKey(tmp, 'nvv-test')
    const text = await readFile(key.privateKeyPath)
    expect(text.toString()).toMatch(/^-----BEGIN OPENSSH PRIVATE KEY-----/)
    expect(key.publicKey).toMatch(/^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5\S+ nvv-test$/)
    expect(publicKeyOf(text).split(' ').slice(0, 2)).toEqual(key.publicKey.split(' ').slice(0, 2))
    const parsed = ssh2.utils.parseKey(text)
    expect(parsed instanceof Error).toBe(false)
    expect(() => publicKeyOf('not a key')).toThrow(/not a private key/)
    expect(() => publicKeyOf(key.publicKey)).toThrow(/this is a public key/)
  })

  it('OpenSSH itself reads the private key and derives the same public key', async () => {
    const key = await createEphemeralKey(tmp, 'nvv-openssh')
    const derived = execFileSync('ssh-keygen', ['-y', '-f', key.privateKeyPath], {
      encoding: 'utf8'
    })
    expect(derived.trim().split(' ').slice(0, 2)).toEqual(key.publicKey.split(' ').slice(0, 2))
  })

  it('every pair of 2,000 parses and signs (ssh2 generator failed 5 in 3,000)', () => {
    for (let i = 0; i < 2000; i++) {
      const pair = ed25519Pair(`k${i}`)
      expect(() => provePair(pair.private, pair.public)).not.toThrow()
    }
  })
})

describe('dry-run sections', () => {
  const facts: HostFacts = {
    hostSystem: 'x86_64-linux',
    uid: 1001,
    user: 'runner',
    home: '/home/runner',
    runnerTemp: '/home/runner/work/_temp',
    act: false,
    systemd: true,
    udev: true,
    daemon: false,
    cpus: 4,
    userConfPath: '/home/runner/.config/nix/nix.conf',
    kvm: 'no-access',
    binfmt: { mounted: true, entries: [], interpreters: [] },
    githubServerUrl: 'https://github.com'
  }

  it('action, emulated leg: install, KVM rule, binfmt registration, extra-platforms, host.pkgs, caches', () => {
    const text = nixPlanSections({
      frontEnd: 'action',
      target,
      system: 'aarch64-linux',
      sshUser: 'root',
      facts,
      setup: { extraSubstituters: [], extraTrustedPublicKeys: [], githubToken: 'ghs_x' },
      cache: {
        keys: { key: 'k', restoreKeys: ['k-', 'p-'], inputsFrom: 'flake.lock' },
        dir: '/t/c'
      },
      cachix: { name: 'mycache', push: true },
      workDir: '/t/w',
      outDir: '/t/out'
    })
      .map((s) => `${s.title}:\n${s.lines.join('\n')}`)
      .join('\n')
    expect(text).toContain('installing Nix 2.35.2 multi-user')
    expect(text).toContain('udevadm trigger --name-match=kvm')
    expect(text).toContain('/proc/sys/fs/binfmt_misc/register')
    expect(text).toContain('nix setting: extra-platforms = aarch64-linux')
    expect(text).toContain('extra-platforms = aarch64-linux')
    expect(text).toContain(
      'host.pkgs = lib.mkForce (import pkgs.path { system = "x86_64-linux"; })'
    )
    expect(text).toContain('file:///t/c?trusted=1')
    expect(text).toContain('access-tokens = github.com=***')
    expect(text).not.toContain('ghs_x')
  })
})
