// The configuration's spec (src/nix/spec.ts) evaluated by real Nix against an evaluated NixOS
// configuration in nixpkgs' option shapes (tests/fixtures/nixos-spec), and the checks derived
// from it (src/spec/derive.ts). The rules are in docs/derived-checks.md.
import { execFileSync, spawnSync } from 'node:child_process'
import { createServer, type AddressInfo } from 'node:net'
import { cpSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseDeclaredSpec, specArgv, type DeclaredSpec } from '../../src/nix/spec.js'
import { deriveChecks, excludedBy, listeningCommand, withDerived } from '../../src/spec/derive.js'
import type { ChecksConfig } from '../../src/checks/config.js'
import type { Report } from '../../src/report/model.js'
import { declaredTable } from '../../src/report/render.js'

let spec: DeclaredSpec
let dir: string

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nvv-spec-'))
  cpSync(resolve('tests/fixtures/nixos-spec'), dir, { recursive: true })
  const argv = specArgv({
    target: { flakeRef: `path:${dir}`, configuration: 'machine', display: 'machine' },
    sshUser: 'root',
    sshPublicKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB test',
    hostSystem: 'x86_64-linux',
    options: [['build-users-group', '']]
  })
  const out = execFileSync(argv[0]!, argv.slice(1), {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, HOME: dir }
  })
  spec = parseDeclaredSpec(out)
})

afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('the spec evaluated from a NixOS configuration', () => {
  it('keeps units wanted at boot and enabled; drops disabled ones and timer-started services', () => {
    expect(spec.units.map((u) => u.name).sort()).toEqual([
      'container@.service',
      'docker.service',
      'docker.socket',
      'home-manager-alice.service',
      'mount-pstore.service',
      'nix-daemon.socket',
      'nix-gc.timer',
      'nix-optimise-once.service',
      'sshd.service'
    ])
    const hm = spec.units.find((u) => u.name === 'home-manager-alice.service')
    expect(hm).toMatchObject({ type: 'oneshot', remainAfterExit: true })
    expect(spec.units.find((u) => u.name === 'nix-optimise-once.service')).toMatchObject({
      type: 'oneshot',
      remainAfterExit: false,
      option: 'systemd.services.nix-optimise-once'
    })
  })

  it('keeps normal users only, with primary and extra groups, shell basename and home', () => {
    expect(spec.users).toEqual([
      {
        name: 'alice',
        option: 'users.users.alice',
        groups: ['users', 'wheel', 'docker'],
        shell: 'zsh',
        home: '/home/alice'
      }
    ])
  })

  it("lists Home Manager's enabled file targets", () => {
    expect(spec.homeManager).toEqual([
      {
        user: 'alice',
        option: 'home-manager.users.alice.home.file',
        files: expect.arrayContaining(['.gitconfig', '.config/git/config']) as string[]
      }
    ])
    expect(spec.homeManager[0]!.files).not.toContain('.oldrc')
  })

  it("takes the flake's own package definitions, not nixpkgs' required packages", () => {
    const byName = Object.fromEntries(spec.packages.map((p) => [p.name, p]))
    expect(Object.keys(byName).sort()).toEqual(['coreutils-full', 'git', 'htop', 'ripgrep'])
    expect(byName.git).toMatchObject({
      mainProgram: 'git',
      file: 'configuration.nix',
      user: null,
      storePath: null
    })
    expect(byName.htop).toMatchObject({
      mainProgram: null,
      storePath: '/nix/store/11111111111111111111111111111111-htop-3.3.0'
    })
    expect(byName.ripgrep).toMatchObject({
      mainProgram: 'rg',
      user: 'alice',
      option: 'users.users.alice.packages'
    })
    // The required coreutils-full came from nixpkgs' system-path.nix and from the flake's own
    // file: it is listed once, as the flake's.
    expect(spec.packages.filter((p) => p.name === 'coreutils-full')).toHaveLength(1)
  })

  it('reads hostname, time zone, firewall and container engines', () => {
    expect(spec).toMatchObject({
      hostName: 'atlas',
      timeZone: 'Europe/Berlin',
      firewall: { enable: true, tcpPorts: [22, 8080] },
      containers: { docker: true, podman: false }
    })
  })
})

describe('checks derived from the spec', () => {
  it('judges every unit wanted at boot but templates; a plain oneshot only must not fail', () => {
    const d = deriveChecks(spec)
    const units = d.services.map((s) => s.unit)
    expect(units).not.toContain('container@.service')
    expect(units).not.toContain('home-manager-alice.service')
    expect(units).toContain('nix-gc.timer')
    const once = d.services.find((s) => s.unit === 'nix-optimise-once.service')
    expect(once).toMatchObject({ mayExit: true })
    expect(d.services.find((s) => s.unit === 'mount-pstore.service')).not.toHaveProperty('mayExit')
    expect(once?.declared.option).toBe('systemd.services.nix-optimise-once')
  })

  it('checks users with every declared group, and docker for its group members', () => {
    const d = deriveChecks(spec)
    expect(d.users[0]).toMatchObject({
      name: 'alice',
      groups: ['users', 'wheel', 'docker'],
      shell: 'zsh',
      home: '/home/alice',
      declared: { option: 'users.users.alice', value: expect.stringContaining('wheel, docker') }
    })
    expect(d.docker?.users.map((u) => [u.name, u.declared?.option])).toEqual([
      ['alice', 'users.users.alice.extraGroups']
    ])
  })

  it('looks programs up on the PATH of who declared them, never runs them', () => {
    const d = deriveChecks(spec)
    const rg = d.packages.find((p) => p.name.startsWith('rg'))
    expect(rg).toMatchObject({ run: 'command -v rg', user: 'alice' })
    const htop = d.packages.find((p) => p.name.startsWith('htop'))
    expect(htop?.run).toContain('test -e /nix/store/11111111111111111111111111111111-htop-3.3.0')
    expect(d.packages.find((p) => p.name.startsWith('git'))?.declared).toEqual({
      option: 'environment.systemPackages',
      value: 'package git (program git)',
      file: 'configuration.nix'
    })
  })

  it('probes hostname, time zone and each open port', () => {
    const d = deriveChecks(spec)
    expect(d.commands.map((c) => [c.name, c.run, c.expect])).toEqual([
      ['hostname', 'hostname', '^atlas$'],
      ['time zone', 'readlink /etc/localtime', '/Europe/Berlin$'],
      ['TCP port 22 listening', listeningCommand(22), '^listening on '],
      ['TCP port 8080 listening', listeningCommand(8080), '^listening on ']
    ])
  })
})

describe('parseDeclaredSpec', () => {
  it('names what is malformed', () => {
    expect(() => parseDeclaredSpec('[]')).toThrow(/malformed/)
    expect(() =>
      parseDeclaredSpec(
        JSON.stringify({
          hostName: null,
          timeZone: null,
          units: [{ name: 1 }],
          users: [],
          homeManager: [],
          packages: [],
          containers: { docker: false, podman: false },
          firewall: { enable: false, tcpPorts: [] }
        })
      )
    ).toThrow(/an item of units/)
  })
})

describe('withDerived', () => {
  const base = (): ChecksConfig => ({
    label: 'checks.yml',
    source: '/repo/checks.yml',
    services: [{ unit: 'sshd.service', timeoutMs: 1000, file: 'checks.yml', line: 3 }],
    users: [],
    homeManager: [],
    packages: [],
    commands: [],
    e2e: []
  })

  it("adds what the file lacks; the file's own entry for the same unit wins", () => {
    const { checks, added } = withDerived(base(), deriveChecks(spec), [])
    const sshd = checks.services.filter((s) => s.unit === 'sshd.service')
    expect(sshd).toEqual([{ unit: 'sshd.service', timeoutMs: 1000, file: 'checks.yml', line: 3 }])
    expect(checks.users.map((u) => u.name)).toEqual(['alice'])
    expect(checks.docker?.declared?.option).toBe('virtualisation.docker.enable')
    // Every derived service but sshd (the file has it), alice, her home, docker, the packages
    // and the probes.
    expect(added).toBe(
      checks.services.length - 1 + 1 + 1 + 1 + checks.packages.length + checks.commands.length
    )
    // Without a checks file, the derived entry replaces the default's (marked as declared).
    const onDefaults = withDerived({ ...base(), source: undefined }, deriveChecks(spec), [])
    expect(onDefaults.checks.services.filter((s) => s.unit === 'sshd.service')).toHaveLength(1)
    expect(
      onDefaults.checks.services.find((s) => s.unit === 'sshd.service')?.declared
    ).toBeDefined()
  })

  it('turns derived checks off by name, by option, or by option prefix', () => {
    const { checks } = withDerived(base(), deriveChecks(spec), [
      'docker.socket',
      'users.users.alice',
      'systemd.timers',
      'hostname'
    ])
    const units = checks.services.map((s) => s.unit)
    expect(units).not.toContain('docker.socket')
    expect(units).not.toContain('nix-gc.timer')
    expect(units).toContain('docker.service')
    expect(checks.users).toEqual([])
    expect(checks.commands.map((c) => c.name)).not.toContain('hostname')
    expect(excludedBy(['systemd.service'], 'x', { option: 'systemd.services.x', value: '' })).toBe(
      false
    )
  })
})

describe('the summary', () => {
  it('lists declared against found, differing items first', () => {
    const report = {
      declared: { checks: 2, excluded: ['hostname'] },
      stages: [
        {
          name: 'users',
          status: 'failed',
          durationMs: 1,
          checks: [
            {
              name: 'alice',
              status: 'failed',
              durationMs: 1,
              output: 'alice is not in group wheel (groups: users docker)',
              declared: { option: 'users.users.alice', value: 'groups users, wheel, docker' }
            },
            {
              name: 'bob',
              status: 'passed',
              durationMs: 1,
              output: 'bob: uid 1001',
              declared: { option: 'users.users.bob', value: 'exists' }
            }
          ]
        }
      ]
    } as unknown as Report
    const md = declaredTable(report)
    expect(md).toContain(
      '2 items the configuration declares: 1 found as declared, 1 missing or different (excluded: hostname)'
    )
    expect(md.indexOf('users.users.alice')).toBeLessThan(md.indexOf('Found as declared'))
    expect(md).toContain(
      '| groups users, wheel, docker | alice is not in group wheel (groups: users docker) |'
    )
    expect(
      declaredTable({ ...report, declared: { checks: 0, excluded: [], error: 'boom' } })
    ).toContain('Nothing could be derived from the configuration: boom')
  })
})

describe('the listening-port probe, run here', () => {
  it('finds a real listening socket and says when nothing listens', async () => {
    const server = createServer()
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
    const port = (server.address() as AddressInfo).port
    try {
      expect(execFileSync('sh', ['-c', listeningCommand(port)], { encoding: 'utf8' })).toBe(
        `listening on ${port}\n`
      )
    } finally {
      await new Promise((done) => server.close(done))
    }
    const closed = spawnSync('sh', ['-c', listeningCommand(port)], { encoding: 'utf8' })
    expect(closed.status).toBe(1)
    expect(closed.stdout).toBe(`nothing listens on TCP port ${port}\n`)
  })
})
