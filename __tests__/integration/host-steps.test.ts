/**
 * The host layer, run for real: every kind of step the action's Nix path takes on a runner is
 * carried out here by the same code, in a disposable place, and its effect is read back —
 * an argv is a description, not a proof (a correct argv once fed a pipe to `install /dev/stdin`).
 *
 * - /etc (nix.conf, the KVM udev rule): a private mount namespace (`unshare --mount`) whose /etc
 *   is a throwaway copy, driven by src/nix through a small bundled harness.
 * - The user's nix.conf: a temp HOME; Nix itself then reads what was written.
 * - Privileged writes go through the real `sudo -n install` (as root here, so sudo lets it by;
 *   a runner's user has password-less sudo the same way).
 * - binfmt_misc is the kernel's own: an entry is registered, proven, and removed.
 * - The GitHub token: written as main writes it, taken out by the post step's own code.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import {
  existsSync,
  lstatSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync
} from 'node:fs'
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  planEmulation,
  binfmtEntryName,
  BINFMT_DIR,
  ensureEmulation
} from '../../src/nix/binfmt.js'
import { KVM_RULE_PATH, KVM_UDEV_RULE } from '../../src/nix/kvm.js'
import { spawnExecutor, runCommands, writeFileStep, type Step } from '../../src/nix/exec.js'
import { gatherHostFacts, nixRunOptions } from '../../src/nix/facts.js'
import { CACHIX_API, pushToCachix, resolveCachix } from '../../src/nix/cachix.js'
import { installerCheckCommand, planNixSetup, setupNix } from '../../src/nix/install.js'
import { withManagedBlock, withoutAccessTokens } from '../../src/nix/conf.js'
import { setupNixForRun } from '../../src/action/nix.js'
import { runPost } from '../../src/action/post.js'
import { STATE_KEYS, type StateKey } from '../../src/action/state.js'
import { hostSystem } from '../../src/vm/system.js'
import { silentLogger } from '../../src/util/log.js'
import { ROOT } from '../support/action-runner.js'

const NIX = ['nix', '--extra-experimental-features', 'nix-command flakes']
let work: string
let harness: string

beforeAll(() => {
  for (const tool of ['unshare', 'sudo', 'nix', 'sha256sum', 'install']) {
    if (spawnSync('sh', ['-c', 'command -v "$1"', 'sh', tool]).status !== 0)
      throw new Error(`${tool} is not on PATH (bash scripts/setup.sh installs it)`)
  }
  work = mkdtempSync(join(tmpdir(), 'nvv-host-'))
  // Bundled like dist/ (scripts/package.mjs): an ES module with require() for CommonJS deps.
  harness = join(work, 'harness', 'index.mjs')
  execFileSync(
    join(ROOT, 'node_modules/.bin/esbuild'),
    [
      join(ROOT, '__tests__/support/host-harness.ts'),
      '--bundle',
      '--platform=node',
      '--format=esm',
      '--target=node20',
      '--log-level=warning',
      `--banner:js=import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);`,
      `--outfile=${harness}`
    ],
    { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] }
  )
}, 60_000)

afterAll(() => {
  if (work !== undefined) rmSync(work, { recursive: true, force: true })
})

interface HarnessAnswer {
  ok: boolean
  result?: Record<string, unknown>
  kind?: string
  message?: string
  log: string[]
}

/**
 * Runs the harness in a private mount namespace whose /etc is a fresh copy of this machine's
 * (so sudo, users and the Nix on PATH work as here). `prep` and `post` run as root inside the
 * namespace before and after; what the step left in /etc is read back from the copy.
 */
async function inNamespace(
  request: object,
  o: { prep?: string; post?: string } = {}
): Promise<{ answer: HarnessAnswer; etc: string; post: string }> {
  const dir = mkdtempSync(join(work, 'ns-'))
  const etc = join(dir, 'etc')
  execFileSync('cp', ['-a', '/etc', etc])
  rmSync(join(etc, 'nix'), { recursive: true, force: true })
  await mkdir(join(etc, 'nix'))
  await mkdir(join(etc, 'udev', 'rules.d'), { recursive: true })
  const script = [
    'set -e',
    'mount --bind "$1" /etc',
    o.prep ?? ':',
    'node "$2" "$3" > "$4/answer.json"',
    `{ ${o.post ?? ':'} ; } > "$4/post.txt" 2>&1 || true`
  ].join('\n')
  const r = await new Promise<{ code: number | null; stderr: string }>((done) => {
    const child = spawn(
      'unshare',
      [
        '--mount',
        '--propagation',
        'private',
        '--',
        'sh',
        '-c',
        script,
        'sh',
        etc,
        harness,
        JSON.stringify(request),
        dir
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] }
    )
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('close', (code) => done({ code, stderr }))
  })
  if (r.code !== 0) throw new Error(`namespace run failed (${r.code}): ${r.stderr}`)
  return {
    answer: JSON.parse(readFileSync(join(dir, 'answer.json'), 'utf8')) as HarnessAnswer,
    etc,
    post: readFileSync(join(dir, 'post.txt'), 'utf8')
  }
}

const guest = hostSystem() === 'aarch64-linux' ? 'x86_64-linux' : 'aarch64-linux'

describe('file writes (fs, or sudo install from a private temp copy)', () => {
  it('a pipe is not a file: `install /dev/stdin` fed from Node fails, which is why writes use fs', async () => {
    const target = join(work, 'via-dev-stdin')
    const r = await spawnExecutor().run({
      argv: ['install', '-D', '-m', '0600', '/dev/stdin', target],
      input: 'x\n',
      why: 'the first release’s file write'
    })
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/No such device or address/)
    expect(existsSync(target)).toBe(false)
  })

  it('a root-owned file written as root: fs, atomic, its mode', async () => {
    const { answer, etc } = await inNamespace({
      op: 'steps',
      steps: [
        writeFileStep('/etc/nix/nix.conf', 'max-jobs = 2\n', {
          mode: '0644',
          uid: 0,
          privileged: true,
          why: 'system nix.conf'
        })
      ]
    })
    expect(answer).toMatchObject({ ok: true })
    expect(readFileSync(join(etc, 'nix/nix.conf'), 'utf8')).toBe('max-jobs = 2\n')
    expect(statSync(join(etc, 'nix/nix.conf')).mode & 0o777).toBe(0o644)
    expect(readdirSync(join(etc, 'nix'))).toEqual(['nix.conf'])
  })

  it('a root-owned file written by a runner user: the real `sudo -n install`, temp copy removed', async () => {
    const temp = mkdtempSync(join(work, 'temp-'))
    const { answer, etc } = await inNamespace({
      op: 'steps',
      tempRoot: temp,
      steps: [
        writeFileStep(KVM_RULE_PATH, KVM_UDEV_RULE + '\n', {
          mode: '0644',
          uid: 1001,
          privileged: true,
          why: 'udev rule'
        })
      ]
    })
    expect(answer).toMatchObject({ ok: true })
    expect(answer.log.join('\n')).toContain(
      `sudo -n install -D -m 0644 <private temp copy> ${KVM_RULE_PATH}`
    )
    const rule = join(etc, 'udev/rules.d', '99-nixos-vm-validate-kvm.rules')
    expect(readFileSync(rule, 'utf8')).toBe(KVM_UDEV_RULE + '\n')
    expect(statSync(rule).mode & 0o777).toBe(0o644)
    expect(readdirSync(temp)).toEqual([])
  })

  it('a user file: fs in a temp HOME, 0600, parent directories made', async () => {
    const home = mkdtempSync(join(work, 'home-'))
    const path = join(home, '.config/nix/nix.conf')
    await runCommands(
      [
        writeFileStep(path, 'a = b\n', {
          mode: '0600',
          uid: 0,
          privileged: false,
          why: 'user conf'
        })
      ],
      spawnExecutor(),
      silentLogger
    )
    expect(readFileSync(path, 'utf8')).toBe('a = b\n')
    expect(statSync(path).mode & 0o777).toBe(0o600)
  })
})

describe('nix.conf: merged, replaced, or left to its owner', () => {
  it("the user's nix.conf: their lines kept, our block replaced, and Nix reads the result", async () => {
    const home = mkdtempSync(join(work, 'home-'))
    const conf = join(home, '.config/nix/nix.conf')
    await mkdir(join(home, '.config/nix'), { recursive: true })
    await writeFile(
      conf,
      'max-jobs = 3\n' +
        withManagedBlock(undefined, [['extra-substituters', 'https://old.example']])
    )
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: home }
    // Unset, not empty: Nix 2.8 reads an empty XDG_CONFIG_HOME as "/" (then /nix/nix.conf).
    delete env.XDG_CONFIG_HOME
    delete env.NIX_USER_CONF_FILES
    const exec = spawnExecutor(env)
    const facts = await gatherHostFacts(exec, env)
    const plan = planNixSetup(
      {
        extraSubstituters: ['https://new.example'],
        extraTrustedPublicKeys: ['new.example-1:AAAA']
      },
      facts
    )
    expect(plan.mode).toBe('existing')
    await setupNix(plan, { exec, log: silentLogger, env })
    const text = await readFile(conf, 'utf8')
    expect(text.startsWith('max-jobs = 3\n# BEGIN nixos-vm-validate')).toBe(true)
    expect(text).not.toContain('old.example')
    expect(text.match(/# BEGIN nixos-vm-validate/g)).toHaveLength(1)
    const shown = execFileSync(NIX[0], [...NIX.slice(1), 'show-config'], { encoding: 'utf8', env })
    expect(shown).toMatch(/^max-jobs = 3$/m)
    expect(shown).toMatch(/^substituters = .*https:\/\/new\.example/m)
  })

  it("a symlinked user nix.conf (Home Manager's) is left alone: this run's settings go to NIX_USER_CONF_FILES", async () => {
    const home = mkdtempSync(join(work, 'home-'))
    await mkdir(join(home, '.config/nix'), { recursive: true })
    const managed = join(home, 'hm-nix.conf')
    await writeFile(managed, 'max-jobs = 4\n')
    await symlink(managed, join(home, '.config/nix/nix.conf'))
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      HOME: home,
      RUNNER_TEMP: join(home, 'temp')
    }
    delete env.XDG_CONFIG_HOME
    delete env.NIX_USER_CONF_FILES
    const exec = spawnExecutor(env)
    const facts = await gatherHostFacts(exec, env)
    expect(facts.userConfSymlink).toBe(managed)
    const plan = planNixSetup(
      { extraSubstituters: ['https://new.example'], extraTrustedPublicKeys: [] },
      facts
    )
    await setupNix(plan, { exec, log: silentLogger, env })
    expect(lstatSync(join(home, '.config/nix/nix.conf')).isSymbolicLink()).toBe(true)
    expect(readFileSync(managed, 'utf8')).toBe('max-jobs = 4\n')
    expect(env.NIX_USER_CONF_FILES).toBe(
      `${join(home, 'temp/nixos-vm-validate/nix.conf')}:${join(home, '.config/nix/nix.conf')}`
    )
    const shown = execFileSync(NIX[0], [...NIX.slice(1), 'show-config'], { encoding: 'utf8', env })
    expect(shown).toMatch(/^max-jobs = 4$/m)
    expect(shown).toMatch(/^substituters = .*https:\/\/new\.example/m)
  })

  it('/etc/nix/nix.conf with a daemon and an emulated leg: merged through sudo; the daemon restart is tried, its failure only warns', async () => {
    const emulation = planEmulation(
      guest,
      hostSystem() ?? 'x86_64-linux',
      { mounted: true, entries: [], interpreters: [] },
      1001
    )
    const { answer, etc, post } = await inNamespace(
      {
        op: 'setup',
        facts: {
          daemon: true,
          uid: 1001,
          user: 'runner',
          systemConfText: 'build-users-group = nixbld\nmax-jobs = 2\n'
        },
        emulation
      },
      {
        prep: "printf 'build-users-group = nixbld\\nmax-jobs = 2\\n' > /etc/nix/nix.conf",
        post: `${NIX.map((a) => `'${a}'`).join(' ')} show-config`
      }
    )
    expect(answer).toMatchObject({ ok: true })
    const text = readFileSync(join(etc, 'nix/nix.conf'), 'utf8')
    expect(
      text.startsWith('build-users-group = nixbld\nmax-jobs = 2\n# BEGIN nixos-vm-validate')
    ).toBe(true)
    expect(text).toContain(`extra-platforms = ${guest}`)
    expect(post).toMatch(new RegExp(`^extra-platforms = .*${guest}`, 'm'))
    const log = answer.log.join('\n')
    expect(log).toContain('sudo -n install -D -m 0644 <private temp copy> /etc/nix/nix.conf')
    // No systemd here: the restart is attempted and reported, and the setup goes on.
    expect(log).toMatch(/warning: the daemon reads nix\.conf at start failed/)
  })

  it('no daemon: /etc/nix is not touched and nothing is restarted', async () => {
    const emulation = planEmulation(
      guest,
      hostSystem() ?? 'x86_64-linux',
      { mounted: true, entries: [], interpreters: [] },
      0
    )
    const { answer, etc } = await inNamespace({ op: 'setup', facts: { daemon: false }, emulation })
    expect(answer).toMatchObject({ ok: true })
    expect(readdirSync(join(etc, 'nix'))).toEqual([])
    expect(answer.log.join('\n')).not.toContain('systemctl')
  })

  it('/etc/nix/nix.conf that is a symlink (a NixOS host) is never replaced: the error says what to set instead', async () => {
    const emulation = planEmulation(
      guest,
      hostSystem() ?? 'x86_64-linux',
      { mounted: true, entries: [], interpreters: [] },
      0
    )
    const { answer, etc } = await inNamespace(
      { op: 'setup', facts: { daemon: true }, emulation },
      { prep: 'ln -s /etc/static/nix/nix.conf /etc/nix/nix.conf' }
    )
    expect(answer).toMatchObject({ ok: false, kind: 'tool-error' })
    expect(answer.message).toContain('/etc/nix/nix.conf is a symlink (to /etc/static/nix/nix.conf)')
    expect(answer.message).toContain(`boot.binfmt.emulatedSystems = [ "${guest}" ]`)
    expect(lstatSync(join(etc, 'nix/nix.conf')).isSymbolicLink()).toBe(true)
  })
})

describe('the GitHub token leaves with the job (post)', () => {
  const TOKEN = 'ghs_hostStepsTokenValue0123456789'

  /** A temp HOME with Nix's view of it: the user's nix.conf under ~/.config/nix. */
  async function tempHome(): Promise<{ home: string; env: NodeJS.ProcessEnv }> {
    const home = mkdtempSync(join(work, 'home-'))
    await mkdir(join(home, '.config/nix'), { recursive: true })
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, RUNNER_TEMP: join(home, 'temp') }
    delete env.XDG_CONFIG_HOME
    delete env.NIX_USER_CONF_FILES
    return { home, env }
  }

  /** main's Nix setup (the state it saves for post goes to the returned map). */
  async function mainSetup(env: NodeJS.ProcessEnv): Promise<Map<StateKey, string>> {
    const state = new Map<StateKey, string>()
    const exec = spawnExecutor(env)
    const facts = await gatherHostFacts(exec, env)
    const plan = planNixSetup(
      {
        extraSubstituters: ['https://new.example'],
        extraTrustedPublicKeys: [],
        githubToken: TOKEN
      },
      facts
    )
    await setupNixForRun(plan, { exec, log: silentLogger, env, save: (k, v) => state.set(k, v) })
    return state
  }

  const show = (env: NodeJS.ProcessEnv): string =>
    execFileSync(NIX[0], [...NIX.slice(1), 'show-config'], { encoding: 'utf8', env })

  it("the user's nix.conf: main writes the token into our block, post takes that line out and nothing else", async () => {
    const { home, env } = await tempHome()
    const conf = join(home, '.config/nix/nix.conf')
    const own = '# my settings\nmax-jobs = 3\naccess-tokens = gitlab.example=mine\n'
    await writeFile(conf, own, { mode: 0o600 })
    const state = await mainSetup(env)
    expect(JSON.parse(state.get(STATE_KEYS.githubTokenFile) ?? '')).toEqual({
      path: conf,
      kind: 'block'
    })
    const written = readFileSync(conf, 'utf8')
    expect(written).toContain(`access-tokens = github.com=${TOKEN}\n`)
    expect(show(env)).toContain(TOKEN)

    await runPost((k) => state.get(k) ?? '')
    const after = readFileSync(conf, 'utf8')
    expect(after).not.toContain(TOKEN)
    // Byte for byte: what main wrote, less the one line.
    expect(after).toBe(written.replace(`access-tokens = github.com=${TOKEN}\n`, ''))
    expect(after).toBe(withoutAccessTokens(written))
    expect(after.startsWith(own)).toBe(true)
    expect(statSync(conf).mode & 0o777).toBe(0o600)
    expect(readdirSync(join(home, '.config/nix'))).toEqual(['nix.conf'])
    // Nix still reads the user's settings and ours; the token is nowhere.
    const shown = show(env)
    expect(shown).not.toContain(TOKEN)
    expect(shown).toMatch(/^max-jobs = 3$/m)
    expect(shown).toMatch(/^substituters = .*https:\/\/new\.example/m)

    // A post that runs again (or after a main that wrote nothing) changes nothing.
    await runPost((k) => state.get(k) ?? '')
    expect(readFileSync(conf, 'utf8')).toBe(after)
  })

  it("a symlinked nix.conf (Home Manager's): post removes the run's own file; the link and its target are untouched", async () => {
    const { home, env } = await tempHome()
    const managed = join(home, 'hm-nix.conf')
    await writeFile(managed, 'max-jobs = 4\n')
    const link = join(home, '.config/nix/nix.conf')
    await symlink(managed, link)
    const state = await mainSetup(env)
    const runConf = join(home, 'temp/nixos-vm-validate/nix.conf')
    expect(JSON.parse(state.get(STATE_KEYS.githubTokenFile) ?? '')).toEqual({
      path: runConf,
      kind: 'file'
    })
    expect(readFileSync(runConf, 'utf8')).toContain(TOKEN)
    expect(show(env)).toContain(TOKEN)

    await runPost((k) => state.get(k) ?? '')
    expect(existsSync(runConf)).toBe(false)
    expect(lstatSync(link).isSymbolicLink()).toBe(true)
    expect(readFileSync(managed, 'utf8')).toBe('max-jobs = 4\n')
    expect(show(env)).not.toContain(TOKEN)
  })
})

describe('Cachix', () => {
  it('a private cache: key from the API (loopback), netrc 0600, Nix reads both; a push without cachix warns', async () => {
    const server = createServer((req, res) => {
      res.setHeader('content-type', 'application/json')
      if (req.url === '/api/v1/cache/private' && req.headers.authorization === 'Bearer tok') {
        res.end(
          JSON.stringify({ isPublic: false, publicSigningKeys: ['private.cachix.org-1:KEY='] })
        )
        return
      }
      res.statusCode = 404
      res.end('{}')
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const port = (server.address() as AddressInfo).port
    try {
      const home = mkdtempSync(join(work, 'home-'))
      const workDir = join(home, 'work')
      // The real fetch, sent to the loopback API instead of cachix.org.
      const viaLoopback = ((url: string, init?: RequestInit) =>
        fetch(url.replace(CACHIX_API, `http://127.0.0.1:${port}/api/v1`), init)) as never
      const cachix = await resolveCachix(
        { name: 'private', authToken: 'tok', extraTrustedPublicKeys: [] },
        { workDir, uid: 0, fetch: viaLoopback }
      )
      expect(cachix.source).toBe('cachix-api')
      const exec = spawnExecutor()
      await runCommands(cachix.commands, exec, silentLogger)
      const netrc = join(workDir, 'netrc')
      expect(readFileSync(netrc, 'utf8')).toBe('machine private.cachix.org password tok\n')
      expect(statSync(netrc).mode & 0o777).toBe(0o600)
      const env: NodeJS.ProcessEnv = { ...process.env, HOME: home }
      delete env.XDG_CONFIG_HOME
      delete env.NIX_USER_CONF_FILES
      const facts = await gatherHostFacts(spawnExecutor(env), env)
      const plan = planNixSetup(
        { extraSubstituters: [], extraTrustedPublicKeys: [], cachix: cachix.settings },
        facts
      )
      await setupNix(plan, { exec: spawnExecutor(env), log: silentLogger, env })
      const shown = execFileSync(NIX[0], [...NIX.slice(1), 'show-config'], {
        encoding: 'utf8',
        env
      })
      expect(shown).toMatch(/^substituters = .*https:\/\/private\.cachix\.org/m)
      expect(shown).toMatch(/^trusted-public-keys = .*private\.cachix\.org-1:KEY=/m)
      expect(shown).toContain(`netrc-file = ${netrc}`)
      // No cachix on PATH and no nixpkgs to build it from here: the push is skipped with a warning.
      const warnings: string[] = []
      const pushed = await pushToCachix({
        name: 'private',
        authToken: 'tok',
        storePath: '/nix/store/00000000000000000000000000000000-none',
        workDir,
        exec: spawnExecutor(env),
        log: { ...silentLogger, warning: (m) => warnings.push(m) },
        options: nixRunOptions(facts)
      })
      expect(pushed.pushed).toBe(false)
      expect(warnings.join('\n')).toMatch(/cachix push (skipped|to private failed)/)
      expect(warnings.join('\n')).not.toContain('tok\n')
    } finally {
      server.close()
    }
  })
})

describe('KVM, binfmt, the installer check', () => {
  it('KVM udev rule: written through sudo; without udev the reload fails and only warns (TCG remains)', async () => {
    const device = join(work, 'no-kvm')
    const { answer, etc } = await inNamespace({
      op: 'kvm',
      facts: { kvm: 'no-access', act: false, udev: true, uid: 1001 },
      device
    })
    expect(answer).toMatchObject({ ok: true, result: { state: 'fix', accessible: false } })
    expect(String(answer.result?.message)).toMatch(
      /could not apply the udev rule: reload the udev rules failed/
    )
    expect(readFileSync(join(etc, 'udev/rules.d/99-nixos-vm-validate-kvm.rules'), 'utf8')).toBe(
      KVM_UDEV_RULE + '\n'
    )
  })

  it(`binfmt_misc: registers ${guest} with flag F, proves it enabled, then removes it`, async () => {
    const name = binfmtEntryName(guest)
    const entry = join(BINFMT_DIR, name)
    const facts = await gatherHostFacts(spawnExecutor())
    if (!facts.binfmt.mounted)
      throw new Error(`${BINFMT_DIR} is not mounted (bash scripts/setup.sh mounts it)`)
    // Planned as on a runner that has no usable entry yet (this machine's own is ignored).
    const plan = planEmulation(guest, facts.hostSystem, { ...facts.binfmt, entries: [] }, facts.uid)
    expect(plan.state).toBe('register')
    try {
      const done = await ensureEmulation(plan, { exec: spawnExecutor(), log: silentLogger })
      expect(done.state).toBe('ready')
      const text = readFileSync(entry, 'utf8')
      expect(text).toMatch(/^enabled$/m)
      expect(text).toMatch(/^flags: .*F/m)
      expect(text).toContain(`interpreter ${plan.interpreter}`)
      // Registering again replaces the entry rather than failing on "File exists".
      const again = planEmulation(
        guest,
        facts.hostSystem,
        {
          ...facts.binfmt,
          entries: (await gatherHostFacts(spawnExecutor())).binfmt.entries
            .filter((e) => e.name === name)
            .map((e) => ({ ...e, flags: '' }))
        },
        facts.uid
      )
      await ensureEmulation(again, { exec: spawnExecutor(), log: silentLogger })
      expect(readFileSync(entry, 'utf8')).toMatch(/^enabled$/m)
    } finally {
      if (existsSync(entry))
        await runCommands(
          [{ argv: ['tee', entry], input: '-1', why: 'remove the test entry' }],
          spawnExecutor(),
          silentLogger
        )
    }
    expect(existsSync(entry)).toBe(false)
  })

  it('the installer check: sha256sum reads the expected hash from a pipe; a changed file is refused', async () => {
    const script = join(work, 'install-nix')
    await writeFile(script, '#!/bin/sh\necho installer\n')
    const sha = execFileSync('sha256sum', [script], { encoding: 'utf8' }).split(' ')[0]
    await expect(
      runCommands([installerCheckCommand(script, sha)], spawnExecutor(), silentLogger)
    ).resolves.toEqual([])
    await writeFile(script, '#!/bin/sh\necho tampered\n')
    await expect(
      runCommands([installerCheckCommand(script, sha)] as Step[], spawnExecutor(), silentLogger)
    ).rejects.toMatchObject({
      kind: 'tool-error',
      message: expect.stringContaining('check the installer against its published sha256')
    })
  })
})
