/**
 * Secrets stay with the job: the GitHub token the Nix setup writes to a nix.conf is taken out by
 * the post step, and no child process inherits the action's inputs (INPUT_*) or the runner's
 * credentials (ACTIONS_*).
 */
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals'
import {
  chmod,
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  rm,
  stat,
  symlink,
  writeFile
} from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runPost } from '../../src/action/post.js'
import { setupNixForRun } from '../../src/action/nix.js'
import { loadState, STATE_KEYS, type StateKey } from '../../src/action/state.js'
import { pushToCachix } from '../../src/nix/cachix.js'
import { withManagedBlock, withoutAccessTokens } from '../../src/nix/conf.js'
import { spawnExecutor, type Command, type ExecResult } from '../../src/nix/exec.js'
import type { HostFacts } from '../../src/nix/facts.js'
import { planNixSetup, removeGithubToken, type NixSetupInput } from '../../src/nix/install.js'
import { childEnv, isActionSecret } from '../../src/util/env.js'
import { silentLogger } from '../../src/util/log.js'
import { runKvmProbe } from '../../src/vm/accel.js'
import { buildRunnerEnv } from '../../src/vm/qemu-opts.js'

const TOKEN = 'ghs_0123456789abcdefSECRET'

/** What the runner hands the action: inputs and its service credentials. */
const RUNNER_SECRETS: Record<string, string> = {
  'INPUT_GITHUB-TOKEN': TOKEN,
  'INPUT_CACHIX-AUTH-TOKEN': 'cachix-secret',
  'INPUT_SSH-KEY': '-----BEGIN OPENSSH PRIVATE KEY-----',
  ACTIONS_RUNTIME_TOKEN: 'runtime-secret',
  ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'oidc-secret',
  ACTIONS_RESULTS_URL: 'https://results.example/',
  Actions_Cache_Url: 'https://cache.example/',
  input_lower: 'x',
  GITHUB_TOKEN: 'gh-env-secret'
}

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nvv-token-'))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

/** Parses `env` output (NAME=value lines; values here have no newlines). */
function parseEnv(text: string): Map<string, string> {
  const m = new Map<string, string>()
  for (const line of text.split('\n')) {
    const i = line.indexOf('=')
    if (i > 0) m.set(line.slice(0, i), line.slice(i + 1))
  }
  return m
}

/** Sets variables on process.env for the body, then restores the previous values. */
async function withProcessEnv<T>(vars: Record<string, string>, body: () => Promise<T>): Promise<T> {
  const before = new Map(Object.keys(vars).map((k) => [k, process.env[k]]))
  Object.assign(process.env, vars)
  try {
    return await body()
  } finally {
    for (const [k, v] of before) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  }
}

describe('childEnv', () => {
  it('drops INPUT_*, ACTIONS_* (any case) and GITHUB_TOKEN; keeps the rest, GITHUB_* included', () => {
    const env: NodeJS.ProcessEnv = {
      ...RUNNER_SECRETS,
      PATH: '/usr/bin:/bin',
      HOME: '/home/runner',
      RUNNER_TEMP: '/home/runner/work/_temp',
      GITHUB_WORKSPACE: '/home/runner/work/r/r',
      GITHUB_SERVER_URL: 'https://github.com',
      NIX_USER_CONF_FILES: '/t/nix.conf',
      MY_INPUT_X: 'kept',
      UNSET: undefined
    }
    expect(childEnv(env)).toEqual({
      PATH: '/usr/bin:/bin',
      HOME: '/home/runner',
      RUNNER_TEMP: '/home/runner/work/_temp',
      GITHUB_WORKSPACE: '/home/runner/work/r/r',
      GITHUB_SERVER_URL: 'https://github.com',
      NIX_USER_CONF_FILES: '/t/nix.conf',
      MY_INPUT_X: 'kept'
    })
    // A copy: the caller's environment is not changed.
    expect(env['INPUT_GITHUB-TOKEN']).toBe(TOKEN)
    expect(
      ['INPUT_', 'ACTIONS_', 'github_token', 'GITHUB_TOKENS', 'INPUTS'].map(isActionSecret)
    ).toEqual([true, true, true, false, false])
  })

  it('defaults to this process’s environment', async () => {
    await withProcessEnv(RUNNER_SECRETS, async () => {
      const env = childEnv()
      for (const k of Object.keys(RUNNER_SECRETS)) expect(env).not.toHaveProperty(k)
      expect(env.PATH).toBe(process.env.PATH)
    })
  })
})

describe('children see none of the runner’s secrets', () => {
  it('spawnExecutor (given base env): a real `env` sees no INPUT_/ACTIONS_; the command’s own env arrives', async () => {
    const exec = spawnExecutor({ ...process.env, ...RUNNER_SECRETS, KEPT_VAR: 'yes' })
    const r = await exec.run({
      argv: ['env'],
      env: { CACHIX_AUTH_TOKEN: 'explicit' },
      why: 'print the environment'
    })
    expect(r.code).toBe(0)
    const seen = parseEnv(r.stdout)
    for (const k of seen.keys()) expect(isActionSecret(k)).toBe(false)
    expect(r.stdout).not.toContain(TOKEN)
    expect(r.stdout).not.toContain('runtime-secret')
    expect(seen.get('CACHIX_AUTH_TOKEN')).toBe('explicit')
    expect(seen.get('KEPT_VAR')).toBe('yes')
    expect(seen.get('PATH')).toBe(process.env.PATH)
  })

  it('spawnExecutor (this process’s env, read at spawn time): `sh -c env` sees no INPUT_/ACTIONS_', async () => {
    const exec = spawnExecutor()
    const r = await withProcessEnv({ ...RUNNER_SECRETS, ADDED_LATER: '1' }, () =>
      exec.run({ argv: ['sh', '-c', 'env'], why: 'print the environment' })
    )
    const seen = parseEnv(r.stdout)
    for (const k of seen.keys()) expect(isActionSecret(k)).toBe(false)
    expect(seen.get('ADDED_LATER')).toBe('1')
  })

  it('cachix push gets its token as CACHIX_AUTH_TOKEN only, not the inputs', async () => {
    const bin = join(dir, 'bin')
    await mkdir(bin)
    const out = join(dir, 'cachix-env')
    await writeFile(join(bin, 'cachix'), `#!/bin/sh\nenv > '${out}'\n`)
    await chmod(join(bin, 'cachix'), 0o755)
    const pushed = await withProcessEnv(
      { ...RUNNER_SECRETS, PATH: `${bin}:${process.env.PATH ?? ''}` },
      () =>
        pushToCachix({
          name: 'mycache',
          authToken: 'cachix-secret',
          storePath: '/nix/store/00000000000000000000000000000000-x',
          workDir: dir,
          exec: spawnExecutor(),
          log: silentLogger
        })
    )
    expect(pushed.pushed).toBe(true)
    const seen = parseEnv(await readFile(out, 'utf8'))
    expect(seen.get('CACHIX_AUTH_TOKEN')).toBe('cachix-secret')
    for (const k of seen.keys()) expect(isActionSecret(k)).toBe(false)
  })

  it('the KVM probe’s QEMU sees no INPUT_/ACTIONS_', async () => {
    const qemu = join(dir, 'qemu-system-x86_64')
    const out = join(dir, 'qemu-env')
    await writeFile(qemu, `#!/bin/sh\nenv > '${out}'\necho K\nexec sleep 5\n`)
    await chmod(qemu, 0o755)
    const why = await withProcessEnv(RUNNER_SECRETS, () => runKvmProbe(qemu, [], 5000))
    expect(why).toBeUndefined()
    const seen = parseEnv(await readFile(out, 'utf8'))
    expect(seen.size).toBeGreaterThan(0)
    for (const k of seen.keys()) expect(isActionSecret(k)).toBe(false)
  })

  it('the runner env: the base without secrets, then the runner contract’s variables', () => {
    const env = buildRunnerEnv({
      diskImage: '/w/disk.qcow2',
      tmpDir: '/w/tmp',
      hostSshPort: 2222,
      guestSshPort: 22,
      qemuOpts: ['-display', 'none'],
      base: { ...RUNNER_SECRETS, PATH: '/bin', TMPDIR: '/tmp' }
    })
    expect(env).toEqual({
      PATH: '/bin',
      TMPDIR: '/w/tmp',
      NIX_DISK_IMAGE: '/w/disk.qcow2',
      USE_TMPDIR: '1',
      QEMU_NET_OPTS: 'hostfwd=tcp:127.0.0.1:2222-:22',
      QEMU_OPTS: '-display none'
    })
  })
})

const BEGIN = '# BEGIN nixos-vm-validate (managed: replaced on every run)'
const END = '# END nixos-vm-validate'

describe('withoutAccessTokens', () => {
  it('takes only the access-tokens line out of our block; every other byte stays', () => {
    const user = '# mine\nmax-jobs = 3\naccess-tokens = gitlab.example=mine\n\n'
    const ours = withManagedBlock(user, [
      ['extra-experimental-features', 'nix-command flakes'],
      ['extra-substituters', 'https://x.example'],
      ['access-tokens', `github.com=${TOKEN}`]
    ])
    const cleaned = withoutAccessTokens(ours)
    expect(cleaned).toBe(
      withManagedBlock(user, [
        ['extra-experimental-features', 'nix-command flakes'],
        ['extra-substituters', 'https://x.example']
      ])
    )
    expect(cleaned).not.toContain(TOKEN)
    expect(cleaned).toContain('access-tokens = gitlab.example=mine\n')
    expect(withoutAccessTokens(cleaned)).toBe(cleaned)
  })

  it('a block left empty goes with its markers (multi-user install: the token was all of it)', () => {
    const tokenOnly = withManagedBlock(undefined, [['access-tokens', `github.com=${TOKEN}`]])
    expect(withoutAccessTokens(tokenOnly)).toBe('')
    expect(withoutAccessTokens('a = 1\n' + tokenOnly)).toBe('a = 1\n')
    // Lines a user added after our block stay where they are.
    expect(withoutAccessTokens(`a = 1\n${tokenOnly}b = 2\n`)).toBe('a = 1\nb = 2\n')
  })

  it('leaves a file without our block, or without a newline at its end, as it is', () => {
    for (const text of ['', 'access-tokens = github.com=theirs\n', 'a = 1', `x\n${BEGIN}\n`])
      expect(withoutAccessTokens(text)).toBe(text)
  })

  it('an unterminated block (cut short) still loses its token, nothing else', () => {
    const text = `a = 1\n${BEGIN}\nextra-substituters = s\naccess-tokens = github.com=${TOKEN}\n`
    expect(withoutAccessTokens(text)).toBe(`a = 1\n${BEGIN}\nextra-substituters = s\n`)
  })

  it('every block of ours, and extra-access-tokens too', () => {
    const text = `${BEGIN}\naccess-tokens = t1\n${END}\nmid\n${BEGIN}\nextra-access-tokens = t2\nk = v\n${END}\n`
    expect(withoutAccessTokens(text)).toBe(`mid\n${BEGIN}\nk = v\n${END}\n`)
  })
})

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
    binfmt: { mounted: true, entries: [], interpreters: [] },
    githubServerUrl: 'https://github.com',
    ...over
  }
}

const input: NixSetupInput = {
  installerVersion: '2.35.2',
  extraSubstituters: [],
  extraTrustedPublicKeys: [],
  githubToken: TOKEN
}

describe('planNixSetup: which file gets the token', () => {
  it('the user’s nix.conf (our block) in every mode that writes it there', () => {
    const block = { path: '/home/runner/.config/nix/nix.conf', kind: 'block' }
    expect(planNixSetup(input, runnerFacts()).tokenFile).toEqual(block)
    expect(planNixSetup(input, runnerFacts({ systemd: false })).tokenFile).toEqual(block)
    expect(
      planNixSetup(input, runnerFacts({ nix: { path: '/usr/bin/nix', version: '2.8.0' } }))
        .tokenFile
    ).toEqual(block)
  })

  it('the run’s own file when the user’s is a symlink (Home Manager)', () => {
    const plan = planNixSetup(
      input,
      runnerFacts({ nix: { path: '/usr/bin/nix' }, userConfSymlink: '/nix/store/x-home-manager' })
    )
    expect(plan.tokenFile).toEqual({
      path: '/home/runner/work/_temp/nixos-vm-validate/nix.conf',
      kind: 'file'
    })
  })

  it('none without a token, or on GitHub Enterprise Server (the token is not written)', () => {
    expect(
      planNixSetup({ ...input, githubToken: undefined }, runnerFacts()).tokenFile
    ).toBeUndefined()
    expect(
      planNixSetup(input, runnerFacts({ githubServerUrl: 'https://ghe.example' })).tokenFile
    ).toBeUndefined()
  })
})

describe('state: the token file', () => {
  const reader =
    (values: Partial<Record<StateKey, string>>) =>
    (key: StateKey): string =>
      values[key] ?? ''

  it('is read back as saved; anything malformed is ignored', () => {
    const saved = { path: '/home/runner/.config/nix/nix.conf', kind: 'block' }
    expect(
      loadState(reader({ [STATE_KEYS.githubTokenFile]: JSON.stringify(saved) })).githubTokenFile
    ).toEqual(saved)
    for (const bad of [
      '',
      '{',
      '"x"',
      'null',
      '{"path":"rel/nix.conf","kind":"block"}',
      '{"path":"/a","kind":"dir"}'
    ])
      expect(
        loadState(reader({ [STATE_KEYS.githubTokenFile]: bad })).githubTokenFile
      ).toBeUndefined()
  })

  it('is saved before the file is written (a main killed during the write still leaves it)', async () => {
    const saved = new Map<StateKey, string>()
    const plan = planNixSetup(input, runnerFacts())
    const failing = {
      async run(cmd: Command): Promise<ExecResult> {
        throw new Error(`killed before ${cmd.argv[0]}`)
      }
    }
    await expect(
      setupNixForRun(plan, {
        exec: failing,
        log: silentLogger,
        save: (k, v) => saved.set(k, v)
      })
    ).rejects.toThrow()
    expect(JSON.parse(saved.get(STATE_KEYS.githubTokenFile) ?? '')).toEqual(plan.tokenFile)
    expect(saved.get(STATE_KEYS.githubTokenFile)).not.toContain(TOKEN)
  })
})

describe('removeGithubToken (fs)', () => {
  it('block: the token line goes, the rest and the mode stay; a second run changes nothing', async () => {
    const path = join(dir, 'nix.conf')
    const user = 'max-jobs = 3\n'
    await writeFile(
      path,
      withManagedBlock(user, [
        ['extra-substituters', 'https://x.example'],
        ['access-tokens', `github.com=${TOKEN}`]
      ]),
      { mode: 0o600 }
    )
    await chmod(path, 0o600)
    expect(await removeGithubToken({ path, kind: 'block' })).toBe(
      `removed the GitHub token from ${path}`
    )
    expect(await readFile(path, 'utf8')).toBe(
      withManagedBlock(user, [['extra-substituters', 'https://x.example']])
    )
    expect((await stat(path)).mode & 0o777).toBe(0o600)
    expect(await readdir(dir)).toEqual(['nix.conf'])
    expect(await removeGithubToken({ path, kind: 'block' })).toBe(`no GitHub token in ${path}`)
  })

  it('missing files are fine; a symlink is neither followed nor replaced', async () => {
    const missing = join(dir, 'none.conf')
    expect(await removeGithubToken({ path: missing, kind: 'block' })).toMatch(/does not exist/)
    expect(await removeGithubToken({ path: missing, kind: 'file' })).toMatch(/does not exist/)
    const target = join(dir, 'target.conf')
    const text = withManagedBlock(undefined, [['access-tokens', 'github.com=elsewhere']])
    await writeFile(target, text)
    const link = join(dir, 'link.conf')
    await symlink(target, link)
    expect(await removeGithubToken({ path: link, kind: 'block' })).toMatch(/symlink: left alone/)
    expect(await removeGithubToken({ path: link, kind: 'file' })).toMatch(/left alone/)
    expect(await readFile(target, 'utf8')).toBe(text)
    expect((await readdir(dir)).sort()).toEqual(['link.conf', 'target.conf'])
  })

  it('file: the run’s own nix.conf is removed', async () => {
    const path = join(dir, 'run-nix.conf')
    await writeFile(path, `access-tokens = github.com=${TOKEN}\n`)
    expect(await removeGithubToken({ path, kind: 'file' })).toMatch(/^removed /)
    expect(await readdir(dir)).toEqual([])
  })
})

describe('runPost', () => {
  it('takes the token out even when main started no validation (no plan saved)', async () => {
    const path = join(dir, 'nix.conf')
    await writeFile(path, withManagedBlock('a = 1\n', [['access-tokens', `github.com=${TOKEN}`]]))
    const state: Partial<Record<StateKey, string>> = {
      [STATE_KEYS.githubTokenFile]: JSON.stringify({ path, kind: 'block' })
    }
    await runPost((k) => state[k] ?? '')
    expect(await readFile(path, 'utf8')).toBe('a = 1\n')
  })

  it('without a saved token file, touches nothing', async () => {
    await expect(runPost(() => '')).resolves.toBeUndefined()
  })
})
