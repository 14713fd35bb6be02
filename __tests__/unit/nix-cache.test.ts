import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import nock from 'nock'
import {
  exportClosureCommand,
  flakeCacheIdentity,
  flakeMetadataCommand,
  lockedInputsHash,
  closureCoverage,
  closureInfoCommand,
  parseClosureInfo,
  isCacheConflict,
  localSubstituter,
  restoreStoreCache,
  saveStoreCache,
  storeCacheDir,
  STORE_CACHE_PATH,
  storeCacheKeys,
  type CacheClient,
  type StoreCacheResult
} from '../../src/nix/cache.js'
import {
  cachixInstallCommand,
  cachixPushCommand,
  pushToCachix,
  resolveCachix
} from '../../src/nix/cachix.js'
import { renderCommand, type Command, type ExecResult, type Executor } from '../../src/nix/exec.js'
import { silentLogger } from '../../src/util/log.js'
import { stepArgv, stepInput } from '../support/steps.js'

let tmp: string
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'nvv-nix-cache-'))
  nock.disableNetConnect()
})
afterAll(async () => {
  nock.cleanAll()
  nock.enableNetConnect()
  await rm(tmp, { recursive: true, force: true })
})

/** Records commands; `nix copy` writes a 1000-byte file into the target dir, like a NAR. */
function recorder(fail = false): Executor & { ran: Command[] } {
  const ran: Command[] = []
  return {
    ran,
    async run(cmd): Promise<ExecResult> {
      ran.push(cmd)
      const to = cmd.argv.indexOf('--to')
      if (to > 0 && !fail) {
        const dir = cmd.argv[to + 1].replace(/^file:\/\//, '').replace(/\?.*$/, '')
        await mkdir(join(dir, 'nar'), { recursive: true })
        await writeFile(join(dir, 'nar', 'x.nar.zst'), Buffer.alloc(1000))
      }
      return {
        code: fail ? 1 : 0,
        signal: null,
        stdout: '',
        stderr: fail ? 'error: cannot copy' : '',
        durationMs: 1
      }
    }
  }
}

function client(
  o: { restore?: string; saveId?: number; saveError?: Error; restoreInto?: string } = {}
): CacheClient & { saved: string[][]; restored: string[][] } {
  const saved: string[][] = []
  const restored: string[][] = []
  return {
    saved,
    restored,
    restore: async (paths) => {
      restored.push(paths)
      if (o.restore !== undefined && o.restoreInto !== undefined) {
        await mkdir(o.restoreInto, { recursive: true })
        await writeFile(join(o.restoreInto, 'a.narinfo'), Buffer.alloc(2048))
      }
      return o.restore
    },
    save: async (paths, key) => {
      saved.push([...paths, key])
      if (o.saveError !== undefined) throw o.saveError
      return o.saveId ?? 42
    }
  }
}

describe('store cache keys', () => {
  it('carry the system (runner.os is Linux on both architectures), the configuration and the lock hash', () => {
    expect(
      storeCacheKeys({
        guest: 'x86_64-linux',
        host: 'x86_64-linux',
        configuration: 'nixos-vm-x86_64',
        inputsHash: '0123456789abcdef',
        sourceHash: 'fedcba9876543210',
        inputsFrom: 'nix flake metadata'
      })
    ).toEqual({
      key: 'nixos-vm-validate-x86_64-linux-nixos-vm-x86_64-0123456789abcdef-fedcba9876543210',
      restoreKeys: [
        'nixos-vm-validate-x86_64-linux-nixos-vm-x86_64-0123456789abcdef-',
        'nixos-vm-validate-x86_64-linux-nixos-vm-x86_64-'
      ],
      inputsFrom: 'nix flake metadata'
    })
    expect(
      storeCacheKeys({
        guest: 'aarch64-linux',
        host: 'aarch64-linux',
        configuration: 'vm',
        inputsHash: 'h',
        sourceHash: 's'
      }).key
    ).toBe('nixos-vm-validate-aarch64-linux-vm-h-s')
  })

  it('keep an emulated leg (host QEMU in the closure) apart from a native one', () => {
    expect(
      storeCacheKeys({
        guest: 'aarch64-linux',
        host: 'x86_64-linux',
        configuration: 'vm',
        inputsHash: 'h',
        sourceHash: 's'
      }).key
    ).toBe('nixos-vm-validate-aarch64-linux-on-x86_64-linux-vm-h-s')
  })

  it('hash flake.lock when there is one; otherwise the inputs nix flake metadata resolves', async () => {
    const target = { flakeRef: tmp, configuration: 'vm', localDir: tmp, display: '.' }
    const metadata = (nodes: object): Executor & { ran: Command[] } => {
      const ran: Command[] = []
      return {
        ran,
        run: async (cmd) => {
          ran.push(cmd)
          return {
            code: 0,
            signal: null,
            stdout: JSON.stringify({
              locked: { narHash: `sha256-${JSON.stringify(nodes).length}` },
              locks: { nodes, root: 'root', version: 7 }
            }),
            stderr: '',
            durationMs: 1
          }
        }
      }
    }
    const noLock = await flakeCacheIdentity(target, {
      exec: metadata({ root: { inputs: {} } }),
      log: silentLogger
    })
    expect(noLock).toMatchObject({
      inputsFrom: 'nix flake metadata',
      inputsHash: expect.stringMatching(/^[0-9a-f]{16}$/),
      sourceHash: expect.stringMatching(/^[0-9a-f]{16}$/)
    })
    const exec = metadata({
      root: { inputs: { nixpkgs: 'nixpkgs' } },
      nixpkgs: { locked: { rev: 'abc', narHash: 'sha256-x' } }
    })
    const withInput = await flakeCacheIdentity(target, {
      exec,
      log: silentLogger,
      options: [['build-users-group', '']]
    })
    expect(withInput.inputsHash).not.toBe(noLock.inputsHash)
    expect(withInput.sourceHash).not.toBe(noLock.sourceHash)
    expect(exec.ran[0].argv).toEqual(
      flakeMetadataCommand(tmp, { options: [['build-users-group', '']] }).argv
    )
    expect(exec.ran[0].argv).toContain('--no-write-lock-file')
    await writeFile(join(tmp, 'flake.lock'), '{"nodes":{}}')
    const locked = await flakeCacheIdentity(target, { exec: metadata({}), log: silentLogger })
    expect(locked).toMatchObject({
      inputsFrom: 'flake.lock',
      inputsHash: expect.stringMatching(/^[0-9a-f]{16}$/)
    })
    await writeFile(join(tmp, 'flake.lock'), '{"nodes":{"nixpkgs":{}}}')
    expect(
      (await flakeCacheIdentity(target, { exec: metadata({}), log: silentLogger })).inputsHash
    ).not.toBe(locked.inputsHash)
    await rm(join(tmp, 'flake.lock'))
    const failing: Executor = {
      run: async () => ({ code: 1, signal: null, stdout: '', stderr: 'error: no', durationMs: 1 })
    }
    expect(
      await flakeCacheIdentity(
        { flakeRef: 'github:o/r', configuration: 'vm', display: 'github:o/r' },
        { exec: failing, log: silentLogger }
      )
    ).toMatchObject({ inputsFrom: 'flake reference' })
  })

  it('locked inputs hash: every node but the root, in a stable order', () => {
    const a = lockedInputsHash(
      JSON.stringify({
        locks: {
          root: 'root',
          nodes: { root: { x: 1 }, b: { locked: { rev: '2' } }, a: { locked: { rev: '1' } } }
        }
      })
    )
    const b = lockedInputsHash(
      JSON.stringify({
        locks: {
          root: 'root',
          nodes: { a: { locked: { rev: '1' } }, root: { x: 2 }, b: { locked: { rev: '2' } } }
        }
      })
    )
    expect(a).toBe(b)
    expect(lockedInputsHash('not json')).toBeUndefined()
  })

  it('closure coverage: the share of NAR bytes whose narinfo the restored dir holds', async () => {
    const dir = join(tmp, 'coverage')
    await mkdir(dir, { recursive: true })
    const a = '/nix/store/' + 'a'.repeat(32) + '-big'
    const b = '/nix/store/' + 'b'.repeat(32) + '-top'
    await writeFile(join(dir, 'a'.repeat(32) + '.narinfo'), '')
    // Nix 2.8 prints an array; newer ones an object keyed by path.
    const old = parseClosureInfo(
      JSON.stringify([
        { path: a, narSize: 900 },
        { path: b, narSize: 100 }
      ])
    )
    const now = parseClosureInfo(JSON.stringify({ [a]: { narSize: 900 }, [b]: { narSize: 100 } }))
    expect(old).toEqual(now)
    expect(await closureCoverage(now, dir)).toBeCloseTo(0.9)
    expect(await closureCoverage(now, join(tmp, 'none'))).toBe(0)
    expect(closureInfoCommand(a).argv).toEqual([
      'nix',
      '--extra-experimental-features',
      'nix-command flakes',
      'path-info',
      '--json',
      '--recursive',
      a
    ])
  })

  it('the local binary cache: zstd export, trusted only as that one substituter', () => {
    expect(storeCacheDir('/home/runner')).toBe('/home/runner/.cache/nixos-vm-validate/store-cache')
    expect(STORE_CACHE_PATH).toBe('~/.cache/nixos-vm-validate/store-cache')
    expect(localSubstituter('/t/c')).toBe('file:///t/c?trusted=1')
    expect(exportClosureCommand('/t/c', '/nix/store/abc-nixos-vm').argv).toEqual([
      'nix',
      '--extra-experimental-features',
      'nix-command flakes',
      'copy',
      '--to',
      'file:///t/c?compression=zstd',
      '/nix/store/abc-nixos-vm'
    ])
  })
})

describe('restore and save', () => {
  const keys = storeCacheKeys({
    guest: 'x86_64-linux',
    host: 'x86_64-linux',
    configuration: 'vm',
    inputsHash: 'h1',
    sourceHash: 's1'
  })

  it('reports exact, partial and miss with the restored size', async () => {
    const dir = join(tmp, 'restore')
    await mkdir(dir, { recursive: true })
    await writeFile(join(dir, 'stale-from-an-earlier-run.narinfo'), Buffer.alloc(10))
    const c = client({ restore: keys.key, restoreInto: dir })
    expect(await restoreStoreCache({ keys, dir, client: c, log: silentLogger })).toMatchObject({
      hit: 'exact',
      restoredBytes: 2048
    })
    // The library is given the ~ path: the same cache version on every runner.
    expect(c.restored).toEqual([[STORE_CACHE_PATH]])
    expect(
      await restoreStoreCache({
        keys,
        dir,
        client: client({ restore: 'nixos-vm-validate-x86_64-linux-vm-old' }),
        log: silentLogger
      })
    ).toMatchObject({
      hit: 'partial',
      restoredKey: 'nixos-vm-validate-x86_64-linux-vm-old'
    })
    expect((await restoreStoreCache({ keys, dir, client: client(), log: silentLogger })).hit).toBe(
      'miss'
    )
    const broken: CacheClient = {
      restore: async () => Promise.reject(new Error('service down')),
      save: async () => 1
    }
    expect(await restoreStoreCache({ keys, dir, client: broken, log: silentLogger })).toMatchObject(
      { hit: 'error', message: expect.stringContaining('service down') }
    )
  })

  const restored = (hit: StoreCacheResult['hit'], dir: string): StoreCacheResult => ({
    key: keys.key,
    dir,
    hit,
    message: ''
  })

  it('after a miss: exports the closure into a fresh dir and saves it, with its size', async () => {
    const dir = join(tmp, 'save-miss')
    await mkdir(dir, { recursive: true })
    await writeFile(join(dir, 'stale.narinfo'), 'old entry')
    const exec = recorder()
    const c = client()
    const r = await saveStoreCache({
      restored: restored('partial', dir),
      storePath: '/nix/store/abc-nixos-vm',
      client: c,
      exec,
      log: silentLogger
    })
    // A partial hit with none of the closure (the recorder's path-info prints nothing): refreshed.
    expect(exec.ran.map((x) => x.argv)).toEqual([
      closureInfoCommand('/nix/store/abc-nixos-vm').argv,
      exportClosureCommand(dir, '/nix/store/abc-nixos-vm').argv
    ])
    expect(c.saved).toEqual([[STORE_CACHE_PATH, keys.key]])
    expect(r).toMatchObject({ saved: 'saved', savedBytes: 1000 })
  })

  it('when the very entry of this closure was restored: nothing to save (entries are immutable)', async () => {
    const exec = recorder()
    const c = client()
    const r = await saveStoreCache({
      restored: {
        ...restored('exact', join(tmp, 'x')),
        restoredKey: keys.key
      },
      storePath: '/nix/store/abc',
      client: c,
      exec,
      log: silentLogger
    })
    expect(r.saved).toBe('skipped')
    expect(exec.ran).toEqual([])
    expect(c.saved).toEqual([])
  })

  it('"already exists" / ReserveCacheError from a parallel matrix leg is not an error', async () => {
    const reserve = Object.assign(
      new Error('Unable to reserve cache with key k, another job may be creating this cache.'),
      { name: 'ReserveCacheError' }
    )
    expect(isCacheConflict(reserve)).toBe(true)
    expect(isCacheConflict(new Error('Cache already exists'))).toBe(true)
    expect(isCacheConflict(new Error('ENOSPC'))).toBe(false)
    const r = await saveStoreCache({
      restored: restored('miss', join(tmp, 'conflict')),
      storePath: '/nix/store/abc',
      client: client({ saveError: reserve }),
      exec: recorder(),
      log: silentLogger
    })
    expect(r.saved).toBe('exists')
    expect(r.message).toContain('not an error')
  })

  it('a failed export or a save that @actions/cache gave up on (-1) warns and goes on', async () => {
    const failedCopy = await saveStoreCache({
      restored: restored('miss', join(tmp, 'f1')),
      storePath: '/nix/store/abc',
      client: client(),
      exec: recorder(true),
      log: silentLogger
    })
    expect(failedCopy).toMatchObject({
      saved: 'failed',
      message: expect.stringContaining('cannot copy')
    })
    const gaveUp = await saveStoreCache({
      restored: restored('miss', join(tmp, 'f2')),
      storePath: '/nix/store/abc',
      client: client({ saveId: -1 }),
      exec: recorder(),
      log: silentLogger
    })
    expect(gaveUp.saved).toBe('failed')
  })
})

describe('Cachix', () => {
  it('uses the key from extra-trusted-public-keys without asking the API', async () => {
    const r = await resolveCachix(
      { name: 'mycache', extraTrustedPublicKeys: ['other-1:X', 'mycache.cachix.org-1:KEY='] },
      {
        workDir: '/t',
        uid: 1001,
        fetch: async () => Promise.reject(new Error('no network expected'))
      }
    )
    expect(r).toMatchObject({
      source: 'input',
      commands: [],
      settings: {
        substituter: 'https://mycache.cachix.org',
        publicKeys: ['mycache.cachix.org-1:KEY=']
      }
    })
  })

  it('fetches the public key of a public cache from the Cachix API', async () => {
    const scope = nock('https://cachix.org')
      .get('/api/v1/cache/mycache')
      .reply(200, { isPublic: true, publicSigningKeys: ['mycache.cachix.org-1:FETCHED='] })
    const r = await resolveCachix(
      { name: 'mycache', extraTrustedPublicKeys: [] },
      { workDir: '/t', uid: 1001 }
    )
    expect(scope.isDone()).toBe(true)
    expect(r).toMatchObject({
      source: 'cachix-api',
      settings: { publicKeys: ['mycache.cachix.org-1:FETCHED='] },
      commands: []
    })
  })

  it('a private cache with a token: bearer auth for the API and a 0600 netrc for Nix', async () => {
    const scope = nock('https://cachix.org', { reqheaders: { authorization: 'Bearer tok' } })
      .get('/api/v1/cache/private')
      .reply(200, { isPublic: false, publicSigningKeys: ['private.cachix.org-1:K='] })
    const r = await resolveCachix(
      { name: 'private', authToken: 'tok', extraTrustedPublicKeys: [] },
      { workDir: '/t', uid: 1001 }
    )
    expect(scope.isDone()).toBe(true)
    expect(r.settings?.netrcFile).toBe('/t/netrc')
    expect(r.commands.map(stepArgv)).toEqual([['write', '/t/netrc', '0600']])
    expect(stepInput(r.commands[0])).toBe('machine private.cachix.org password tok\n')
    expect(renderCommand(r.commands[0])).not.toContain('tok\n')
  })

  it('without a key (API down) the cache is not used: signatures are never turned off', async () => {
    nock('https://cachix.org').get('/api/v1/cache/mycache').reply(503)
    const r = await resolveCachix(
      { name: 'mycache', extraTrustedPublicKeys: [] },
      { workDir: '/t', uid: 1001 }
    )
    expect(r.settings).toBeUndefined()
    expect(r.warning).toMatch(/HTTP 503.*extra-trusted-public-keys/)
  })

  it('rejects names that are not Cachix names', async () => {
    await expect(
      resolveCachix({ name: 'My Cache', extraTrustedPublicKeys: [] }, { workDir: '/t', uid: 0 })
    ).rejects.toThrow(/not a Cachix cache name/)
  })

  it('push: builds cachix when missing, then pushes the closure with the token in the environment only', async () => {
    expect(cachixInstallCommand('/t/cachix').argv).toEqual([
      'nix',
      '--extra-experimental-features',
      'nix-command flakes',
      'build',
      '--out-link',
      '/t/cachix',
      'nixpkgs#cachix'
    ])
    const push = cachixPushCommand(
      '/t/cachix/bin/cachix',
      'mycache',
      '/nix/store/abc-nixos-vm',
      'secret-token'
    )
    expect(push.argv).toEqual([
      '/t/cachix/bin/cachix',
      'push',
      'mycache',
      '/nix/store/abc-nixos-vm'
    ])
    expect(push.env).toEqual({ CACHIX_AUTH_TOKEN: 'secret-token' })
    expect(renderCommand(push)).not.toContain('secret-token')
    const exec = recorder()
    const oldPath = process.env.PATH
    process.env.PATH = '/nonexistent'
    try {
      const r = await pushToCachix({
        name: 'mycache',
        authToken: 'secret-token',
        storePath: '/nix/store/abc-nixos-vm',
        workDir: '/t',
        exec,
        log: silentLogger
      })
      expect(r.pushed).toBe(true)
    } finally {
      process.env.PATH = oldPath
    }
    expect(exec.ran.map((c) => c.argv)).toEqual([cachixInstallCommand('/t/cachix').argv, push.argv])
  })
})
