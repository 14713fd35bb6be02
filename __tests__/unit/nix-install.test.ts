import { describe, expect, it } from '@jest/globals'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { planEmulation, type BinfmtFacts } from '../../src/nix/binfmt.js'
import {
  DEFAULT_TRUSTED_PUBLIC_KEY,
  supportsBuildDir,
  nixConfLines,
  renderConf,
  splitList,
  withManagedBlock
} from '../../src/nix/conf.js'
import type { Command, ExecResult, Executor } from '../../src/nix/exec.js'
import { isFileWrite, renderCommand } from '../../src/nix/exec.js'
import type { HostFacts } from '../../src/nix/facts.js'
import { installerUrl, planNixSetup, setupNix, type NixSetupInput } from '../../src/nix/install.js'
import { silentLogger } from '../../src/util/log.js'
import { ValidationFailure } from '../../src/util/errors.js'
import { argvs, stepArgv, stepInput } from '../support/steps.js'

const noBinfmt: BinfmtFacts = {
  mounted: true,
  entries: [],
  interpreters: ['/usr/bin/qemu-aarch64-static']
}

/** A GitHub-hosted ubuntu runner before anything ran. */
function runnerFacts(over: Partial<HostFacts> = {}): HostFacts {
  return {
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
    binfmt: noBinfmt,
    githubServerUrl: 'https://github.com',
    ...over
  }
}

const input: NixSetupInput = {
  installerVersion: '2.35.2',
  extraSubstituters: ['https://extra.example.org'],
  extraTrustedPublicKeys: ['extra.example.org-1:AAAA'],
  githubToken: 'ghs_secret'
}

describe('planNixSetup: native x86_64 runner with systemd (multi-user)', () => {
  const plan = planNixSetup(input, runnerFacts())
  const work = '/home/runner/work/_temp/nixos-vm-validate'

  it('downloads the pinned installer and runs it with --daemon and our nix.conf', () => {
    expect(plan.mode).toBe('fresh-daemon')
    expect(plan.installerUrl).toBe('https://releases.nixos.org/nix/nix-2.35.2/install')
    expect(argvs(plan.commands)).toEqual([
      ['mkdir', '-p', work],
      ['sudo', '-n', 'install', '-d', '-m', '0700', `${work}/nix-build`],
      ['write', `${work}/nix-extra.conf`, '0644'],
      [
        'curl',
        '--fail',
        '--silent',
        '--show-error',
        '--location',
        '--retry',
        '5',
        '--retry-connrefused',
        '--output',
        `${work}/install-nix-2.35.2`,
        'https://releases.nixos.org/nix/nix-2.35.2/install'
      ],
      ['sha256sum', '--check', '--strict', '--status', '-'],
      [
        'sh',
        `${work}/install-nix-2.35.2`,
        '--daemon',
        '--no-channel-add',
        '--daemon-user-count',
        '8',
        '--nix-extra-conf-file',
        `${work}/nix-extra.conf`
      ],
      ['write', '/home/runner/.config/nix/nix.conf', '0600']
    ])
    expect(plan.path).toEqual([
      '/nix/var/nix/profiles/default/bin',
      '/home/runner/.nix-profile/bin'
    ])
    expect(plan.summary).toContain('multi-user')
  })

  it('writes the system settings through --nix-extra-conf-file, without the token', () => {
    const extra = stepInput(plan.commands[2])
    expect(extra).toBe(
      [
        'experimental-features = nix-command flakes',
        `substituters = https://cache.nixos.org https://extra.example.org`,
        `trusted-public-keys = ${DEFAULT_TRUSTED_PUBLIC_KEY} extra.example.org-1:AAAA`,
        'trusted-users = root runner',
        'max-jobs = auto',
        `build-dir = ${work}/nix-build`,
        ''
      ].join('\n')
    )
    expect(extra).not.toContain('ghs_secret')
  })

  it('puts the GitHub token only in the user nix.conf (0600) and never prints it', () => {
    const userConf = plan.commands[6]
    expect(stepInput(userConf)).toContain('access-tokens = github.com=ghs_secret')
    expect(stepArgv(userConf)).toContain('0600')
    expect(renderCommand(userConf)).not.toContain('ghs_secret')
  })

  it('uses the token only for github.com (not a GHES server)', () => {
    const ghes = planNixSetup(input, runnerFacts({ githubServerUrl: 'https://ghe.example.com' }))
    expect(ghes.conf.user).toEqual([])
    expect(ghes.commands.some((c) => stepInput(c).includes('ghs_secret'))).toBe(false)
  })
})

describe('planNixSetup: emulated leg (aarch64 guest on an x86_64 runner)', () => {
  const facts = runnerFacts()
  const emulation = planEmulation('aarch64-linux', 'x86_64-linux', facts.binfmt, facts.uid)
  const plan = planNixSetup({ ...input, emulation }, facts)

  it('adds extra-platforms and the interpreter as a sandbox path to the daemon settings', () => {
    // i686-linux: the setting replaces Nix's default, which has it on x86_64
    expect(plan.conf.system).toContainEqual(['extra-platforms', 'aarch64-linux i686-linux'])
    expect(plan.conf.system).toContainEqual(['extra-sandbox-paths', '/usr/bin/qemu-aarch64-static'])
    expect(stepInput(plan.commands[2])).toContain('extra-platforms = aarch64-linux i686-linux\n')
  })
})

describe('planNixSetup: act (ACT=true, root, no systemd, no sudo)', () => {
  const facts = runnerFacts({
    act: true,
    systemd: false,
    uid: 0,
    user: 'root',
    home: '/root',
    userConfPath: '/root/.config/nix/nix.conf',
    runnerTemp: '/tmp/act'
  })
  const plan = planNixSetup(input, facts)
  const work = '/tmp/act/nixos-vm-validate'

  it('installs single-user, creates /nix itself (no sudo) and writes the user nix.conf first', () => {
    expect(plan.mode).toBe('fresh-single')
    expect(argvs(plan.commands)).toEqual([
      ['mkdir', '-p', work],
      ['install', '-d', '-m', '0700', `${work}/nix-build`],
      ['install', '-d', '-m', '0755', '-o', 'root', '/nix'],
      ['write', '/root/.config/nix/nix.conf', '0600'],
      [
        'curl',
        '--fail',
        '--silent',
        '--show-error',
        '--location',
        '--retry',
        '5',
        '--retry-connrefused',
        '--output',
        `${work}/install-nix-2.35.2`,
        'https://releases.nixos.org/nix/nix-2.35.2/install'
      ],
      ['sha256sum', '--check', '--strict', '--status', '-'],
      ['sh', `${work}/install-nix-2.35.2`, '--no-daemon', '--no-channel-add']
    ])
    expect(plan.summary).toContain('act')
    expect(plan.path).toEqual(['/root/.nix-profile/bin'])
  })

  it('puts every setting in the user nix.conf, with an empty build-users-group (no nixbld as root)', () => {
    const conf = stepInput(plan.commands[3])
    expect(conf).toContain('experimental-features = nix-command flakes\n')
    expect(conf).toContain('trusted-users = root\n')
    expect(conf).toContain('build-users-group =\n')
    expect(conf).toContain('access-tokens = github.com=ghs_secret\n')
    expect(plan.conf.system).toEqual([])
  })

  it('a container without systemd (not act) is single-user too, with sudo for /nix', () => {
    const p = planNixSetup(input, runnerFacts({ systemd: false }))
    expect(p.mode).toBe('fresh-single')
    expect(stepArgv(p.commands[2])).toEqual([
      'sudo',
      '-n',
      'install',
      '-d',
      '-m',
      '0755',
      '-o',
      'runner',
      '/nix'
    ])
    expect(p.summary).toContain('no systemd')
  })
})

describe('planNixSetup: Nix already installed', () => {
  it('installs nothing, says so, and adds extra-* settings to the user nix.conf (single-user root, Debian nix-bin)', () => {
    const facts = runnerFacts({
      uid: 0,
      user: 'root',
      home: '/root',
      userConfPath: '/root/.config/nix/nix.conf',
      nix: { path: '/usr/bin/nix', version: '2.8.0' }
    })
    const plan = planNixSetup(input, facts)
    expect(plan.mode).toBe('existing')
    expect(plan.summary).toBe(
      'Nix is already installed (/usr/bin/nix, 2.8.0): not installing; our settings go to /root/.config/nix/nix.conf'
    )
    expect(plan.commands.some((c) => stepArgv(c).includes('curl'))).toBe(false)
    // Nix 2.8 has no build-dir setting ("unknown setting" on every command): left out
    expect(argvs(plan.commands)).toEqual([
      ['mkdir', '-p', '/home/runner/work/_temp/nixos-vm-validate'],
      ['write', '/root/.config/nix/nix.conf', '0600']
    ])
    expect(plan.conf.user.map(([k]) => k)).toEqual([
      'extra-experimental-features',
      'extra-substituters',
      'extra-trusted-public-keys',
      'access-tokens'
    ])
    const newer = planNixSetup(input, {
      ...facts,
      nix: { path: '/usr/bin/nix', version: '2.26.3' }
    })
    expect(newer.conf.user).toContainEqual([
      'build-dir',
      '/home/runner/work/_temp/nixos-vm-validate/nix-build'
    ])
    expect(stepArgv(newer.commands[1])).toEqual([
      'install',
      '-d',
      '-m',
      '0700',
      '/home/runner/work/_temp/nixos-vm-validate/nix-build'
    ])
    expect(plan.path).toEqual([])
  })

  it('keeps the user’s own nix.conf lines and replaces only our block', () => {
    const existing =
      'max-jobs = 2\n' + withManagedBlock(undefined, [['extra-substituters', 'https://old']])
    const facts = runnerFacts({
      nix: { path: '/nix/var/nix/profiles/default/bin/nix' },
      daemon: true,
      userConfText: existing
    })
    const written = stepInput(
      planNixSetup({ ...input, githubToken: undefined }, facts).commands.at(-1)
    )
    expect(written.startsWith('max-jobs = 2\n# BEGIN nixos-vm-validate')).toBe(true)
    expect(written).not.toContain('https://old')
    expect(written.match(/# BEGIN nixos-vm-validate/g)).toHaveLength(1)
  })

  it('with a daemon and an emulated leg: extra-platforms into /etc/nix/nix.conf and a daemon restart', () => {
    const facts = runnerFacts({
      nix: { path: '/nix/var/nix/profiles/default/bin/nix', version: '2.35.2' },
      daemon: true,
      systemConfText: 'build-users-group = nixbld\n'
    })
    const emulation = planEmulation('aarch64-linux', 'x86_64-linux', facts.binfmt, facts.uid)
    const plan = planNixSetup({ ...input, emulation }, facts)
    const tail = plan.commands.slice(-2)
    expect(stepArgv(tail[0])).toEqual(['write', '/etc/nix/nix.conf', '0644', 'via sudo'])
    expect(stepInput(tail[0])).toBe(
      'build-users-group = nixbld\n# BEGIN nixos-vm-validate (managed: replaced on every run)\nextra-platforms = aarch64-linux i686-linux\nextra-sandbox-paths = /usr/bin/qemu-aarch64-static\n# END nixos-vm-validate\n'
    )
    expect(tail[1]).toMatchObject({
      argv: ['sudo', '-n', 'systemctl', 'restart', 'nix-daemon.service'],
      optional: true
    })
    // the daemon builds: no build-dir in the user's file
    expect(plan.conf.user.map(([k]) => k)).not.toContain('build-dir')
  })
})

describe('installer version', () => {
  it('is pinned and configurable; anything but a release number is an input error', () => {
    expect(installerUrl('2.24.10')).toBe('https://releases.nixos.org/nix/nix-2.24.10/install')
    expect(installerUrl('2.24.10', 'https://mirror.example/install')).toBe(
      'https://mirror.example/install'
    )
    expect(() => installerUrl('latest; rm -rf /')).toThrow(/not a Nix release number/)
    expect(
      planNixSetup({ ...input, installerVersion: undefined }, runnerFacts()).installerUrl
    ).toContain('nix-2.35.2')
  })
})

describe('nix.conf helpers', () => {
  it('splitList accepts spaces, newlines and commas and drops duplicates', () => {
    expect(splitList('a b\nc,a  ')).toEqual(['a', 'b', 'c'])
    expect(splitList(undefined)).toEqual([])
  })

  it('build-dir only for a Nix that knows it (2.22+)', () => {
    expect(
      ['2.8.0', '2.21.4', '2.22.0', '2.35.2', '3.0.1', undefined, 'x'].map(supportsBuildDir)
    ).toEqual([false, false, true, true, true, false, false])
    expect(
      planNixSetup({ ...input, installerVersion: '2.18.9' }, runnerFacts()).conf.system.map(
        ([k]) => k
      )
    ).not.toContain('build-dir')
  })

  it('renderConf writes an empty value as "name ="', () => {
    expect(
      renderConf([
        ['build-users-group', ''],
        ['max-jobs', 'auto']
      ])
    ).toBe('build-users-group =\nmax-jobs = auto\n')
  })

  it('adds Cachix substituter, key and netrc', () => {
    const conf = nixConfLines(
      {
        extraSubstituters: [],
        extraTrustedPublicKeys: [],
        cachix: {
          name: 'mycache',
          substituter: 'https://mycache.cachix.org',
          publicKeys: ['mycache.cachix.org-1:KEY'],
          netrcFile: '/t/netrc'
        },
        emulation: [],
        buildDir: '/t/b',
        user: 'runner',
        daemon: false
      },
      'fresh-daemon'
    )
    expect(conf.system).toContainEqual([
      'substituters',
      'https://cache.nixos.org https://mycache.cachix.org'
    ])
    expect(conf.system).toContainEqual([
      'trusted-public-keys',
      `${DEFAULT_TRUSTED_PUBLIC_KEY} mycache.cachix.org-1:KEY`
    ])
    expect(conf.system).toContainEqual(['netrc-file', '/t/netrc'])
  })
})

/** Records commands; answers `nix --version`; fails the commands whose argv[0] is listed. */
function recorder(fail: string[] = []): Executor & { ran: Command[] } {
  const ran: Command[] = []
  return {
    ran,
    async run(cmd): Promise<ExecResult> {
      ran.push(cmd)
      const code = fail.includes(cmd.argv[0]) ? 7 : 0
      const stdout = cmd.argv[1] === '--version' ? 'nix (Nix) 2.35.2\n' : ''
      return {
        code,
        signal: null,
        stdout,
        stderr: code === 0 ? '' : 'curl: (6) Could not resolve host',
        durationMs: 1
      }
    }
  }
}

describe('setupNix', () => {
  it('runs the plan in order, writes its files, puts Nix on PATH and reports the version', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nvv-setup-'))
    try {
      const facts = runnerFacts({
        runnerTemp: join(dir, 'temp'),
        home: join(dir, 'home'),
        userConfPath: join(dir, 'home/.config/nix/nix.conf')
      })
      const plan = planNixSetup(input, facts)
      const exec = recorder()
      const env: NodeJS.ProcessEnv = { PATH: '/usr/bin:/bin' }
      const which = (name: string, pathVar: string | undefined): string | undefined =>
        pathVar?.startsWith('/nix/var/nix/profiles/default/bin:') === true
          ? `/nix/var/nix/profiles/default/bin/${name}`
          : undefined
      const result = await setupNix(plan, { exec, log: silentLogger, env, which })
      // Processes through the executor; files written by this process (fs), for real.
      expect(exec.ran.map((c) => c.argv)).toEqual([
        ...plan.commands.filter((c) => !isFileWrite(c)).map(stepArgv),
        ['/nix/var/nix/profiles/default/bin/nix', '--version']
      ])
      const extra = join(dir, 'temp/nixos-vm-validate/nix-extra.conf')
      expect(await readFile(extra, 'utf8')).toBe(stepInput(plan.commands[2]))
      expect((await stat(extra)).mode & 0o777).toBe(0o644)
      const userConf = join(dir, 'home/.config/nix/nix.conf')
      expect(await readFile(userConf, 'utf8')).toContain('access-tokens = github.com=ghs_secret')
      expect((await stat(userConf)).mode & 0o777).toBe(0o600)
      expect(env.PATH?.split(':').slice(0, 3)).toEqual([
        '/nix/var/nix/profiles/default/bin',
        `${dir}/home/.nix-profile/bin`,
        '/usr/bin'
      ])
      expect(result).toMatchObject({ mode: 'fresh-daemon', installed: true, version: '2.35.2' })
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('stops at a failed download with the command and its output', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nvv-setup-'))
    const plan = planNixSetup(
      input,
      runnerFacts({ runnerTemp: dir, home: dir, userConfPath: join(dir, 'nix.conf') })
    )
    const exec = recorder(['curl'])
    const err = await setupNix(plan, { exec, log: silentLogger, env: { PATH: '/usr/bin' } }).catch(
      (e: unknown) => e
    )
    expect(err).toBeInstanceOf(ValidationFailure)
    expect((err as ValidationFailure).message).toMatch(
      /download the Nix 2\.35\.2 installer failed \(exit 7\): curl --fail .*: curl: \(6\) Could not resolve host$/
    )
    expect((err as ValidationFailure).excerpt).toContain('Could not resolve host')
    expect(exec.ran.some((c) => c.argv[0] === 'sh')).toBe(false)
    await rm(dir, { recursive: true, force: true })
  })
})
