/**
 * The loopback cache service (support/cache-service.ts) against the real @actions/cache: every
 * save and restore runs in a child Node process (support/cache-client.mjs) with a step's
 * environment, real tar and zstd, and a scratch dir per test. No VM is booted.
 */
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync
} from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals'
import {
  cacheEnv,
  cacheVersion,
  FakeCacheService,
  type FakeCacheOptions
} from '../support/cache-service.js'

const CLIENT = join(dirname(fileURLToPath(import.meta.url)), '..', 'support', 'cache-client.mjs')
const MiB = 1024 * 1024
/** The Azure SDK's download part (DEFAULT_BLOB_DOWNLOAD_BLOCK_BYTES). */
const PART = 4 * MiB
const PATHS = ['store/deps', 'store/build']

let dir = ''
let service: FakeCacheService | undefined

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'nvv-cache-'))
})

afterEach(async () => {
  const s = service
  service = undefined
  await s?.stop()
  rmSync(dir, { recursive: true, force: true })
  expect(s?.errors ?? []).toEqual([])
})

async function startService(o: FakeCacheOptions = {}): Promise<FakeCacheService> {
  const s = new FakeCacheService(o)
  service = s
  await s.start()
  return s
}

/** A fresh workspace under the test's scratch dir. */
function workspace(name = 'workspace'): string {
  const ws = join(dir, name)
  mkdirSync(ws, { recursive: true })
  return ws
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

/** Every file (by sha256) and directory ('dir') under root, by relative path. */
function tree(root: string): Record<string, string> {
  const out: Record<string, string> = {}
  const walk = (d: string, rel: string): void => {
    for (const ent of readdirSync(d, { withFileTypes: true })) {
      const r = rel === '' ? ent.name : `${rel}/${ent.name}`
      if (ent.isDirectory()) {
        out[`${r}/`] = 'dir'
        walk(join(d, ent.name), r)
      } else out[r] = sha256(readFileSync(join(d, ent.name)))
    }
  }
  walk(root, '')
  return out
}

/** The two cached directories, different for each variant; returns their tree. */
function writeStore(ws: string, variant: string, bigBytes = 6 * MiB): Record<string, string> {
  const store = join(ws, 'store')
  rmSync(store, { recursive: true, force: true })
  mkdirSync(join(store, 'deps'), { recursive: true })
  mkdirSync(join(store, 'build', 'nested'), { recursive: true })
  mkdirSync(join(store, 'build', 'empty-dir'))
  // Random, so zstd leaves it as big: the archive is over one 4 MiB download part.
  writeFileSync(join(store, 'deps', 'big.bin'), randomBytes(bigBytes))
  writeFileSync(join(store, 'deps', 'lock.json'), JSON.stringify({ variant, deps: ['a', 'b'] }))
  writeFileSync(join(store, 'build', 'nested', 'log.txt'), `variant ${variant}\n`.repeat(50_000))
  writeFileSync(join(store, 'build', 'empty'), '')
  return tree(store)
}

interface Job {
  op: 'save' | 'restore'
  paths: string[]
  key: string
  restoreKeys?: string[]
}

interface CacheRun {
  code: number | null
  stdout: string
  stderr: string
  /** saveCache's id, restoreCache's matched key; null for undefined. */
  value?: string | number | null
  thrown?: { name: string; message: string }
  warnings: string[]
  errors: string[]
}

function runCache(s: FakeCacheService, job: Job, ws: string): Promise<CacheRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLIENT, JSON.stringify(job)], {
      cwd: ws,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        ...cacheEnv(s),
        RUNNER_TEMP: join(dir, 'runner-temp'),
        GITHUB_WORKSPACE: ws
      },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), 3 * 60_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      const lines = stdout.split('\n')
      const last = lines.filter((l) => l.startsWith('NVV-CACHE-RESULT ')).at(-1)
      const result = (
        last === undefined ? {} : JSON.parse(last.slice('NVV-CACHE-RESULT '.length))
      ) as Pick<CacheRun, 'value' | 'thrown'>
      const command = (name: string): string[] =>
        lines.filter((l) => l.startsWith(`::${name}::`)).map((l) => l.slice(name.length + 4))
      resolve({
        code,
        stdout,
        stderr,
        ...result,
        warnings: command('warning'),
        errors: command('error')
      })
    })
  })
}

/** The run went through without an exception, a warning or an error annotation. */
function expectClean(run: CacheRun): void {
  expect({
    code: run.code,
    thrown: run.thrown,
    warnings: run.warnings,
    errors: run.errors
  }).toEqual({
    code: 0,
    thrown: undefined,
    warnings: [],
    errors: []
  })
}

describe.each([
  ['loopback' as const, 'one plain GET'],
  ['azure' as const, 'HEAD, then 4 MiB ranged GETs']
])('save, then restore by the exact key (%s blob host: %s)', (blobHost, _how) => {
  it('gives back the same files and bytes', async () => {
    const s = await startService({ blobHost })
    const ws = workspace()
    const before = writeStore(ws, 'one')
    const key = `nvv-exact-${blobHost}`

    const saved = await runCache(s, { op: 'save', paths: PATHS, key }, ws)
    expectClean(saved)
    expect(saved.value).toBe(1)
    expect(s.requests).toEqual(['CreateCacheEntry', 'PutBlob', 'FinalizeCacheEntryUpload'])
    expect(s.entries).toHaveLength(1)
    const entry = s.entries[0]
    expect(entry).toMatchObject({ key, version: cacheVersion(PATHS), finalized: true })
    expect(entry.blockPuts).toBe(1)
    const size = entry.data?.length ?? 0
    expect(size).toBeGreaterThan(PART)
    expect(s.calls.map((c) => [c.method, c.body, c.status])).toEqual([
      ['CreateCacheEntry', { key, version: cacheVersion(PATHS) }, 200],
      [
        'FinalizeCacheEntryUpload',
        { key, version: cacheVersion(PATHS), size_bytes: String(size) },
        200
      ]
    ])

    rmSync(join(ws, 'store'), { recursive: true })
    const restored = await runCache(s, { op: 'restore', paths: PATHS, key }, ws)
    expectClean(restored)
    expect(restored.value).toBe(key)
    expect(restored.stdout).toContain(`Cache hit for: ${key}`)
    expect(tree(join(ws, 'store'))).toEqual(before)
    // No restore keys: the field is left out (emitDefaultValues: false).
    expect(s.calls.at(-1)?.body).toEqual({ key, version: cacheVersion(PATHS) })

    const reads = s.requests.slice(3)
    if (blobHost === 'loopback') {
      expect(reads).toEqual(['GetCacheEntryDownloadURL', 'GetBlob'])
      expect(s.downloads).toEqual([
        { entryId: 1, key, start: 0, end: size - 1, bytes: size, ranged: false }
      ])
      return
    }
    const parts = Math.ceil(size / PART)
    expect(reads).toEqual([
      'GetCacheEntryDownloadURL',
      'GetBlobProperties',
      ...Array<string>(parts).fill('GetBlob')
    ])
    const ranges = [...s.downloads].sort((a, b) => a.start - b.start)
    expect(ranges.every((d) => d.ranged && d.bytes <= PART)).toBe(true)
    expect(ranges.map((d) => [d.start, d.end])).toEqual(
      Array.from({ length: parts }, (_, i) => [i * PART, Math.min(size, (i + 1) * PART) - 1])
    )
  })
})

describe('restore keys', () => {
  it('a restore-key prefix gives the newest finalized entry of the same version', async () => {
    const s = await startService({ blobHost: 'azure' })
    const ws = workspace()
    const older = writeStore(ws, 'older', 1 * MiB)
    expectClean(await runCache(s, { op: 'save', paths: PATHS, key: 'deps-linux-aaa' }, ws))
    const newer = writeStore(ws, 'newer', 1 * MiB)
    expect(newer).not.toEqual(older)
    expectClean(await runCache(s, { op: 'save', paths: PATHS, key: 'deps-linux-bbb' }, ws))
    // Newer still, but another path set (so another version), or never finalized: never chosen;
    // their bytes are no tarball, so extracting one would fail the restore.
    const later = new Date(Date.now() + 60_000)
    s.addEntry('deps-linux-other-paths', cacheVersion(['store/deps']), Buffer.from('x'), later)
    s.addEntry('deps-linux-pending', cacheVersion(PATHS), Buffer.from('x'), later).finalized = false

    rmSync(join(ws, 'store'), { recursive: true })
    const run = await runCache(
      s,
      {
        op: 'restore',
        paths: PATHS,
        key: 'deps-linux-ccc',
        restoreKeys: ['deps-macos-', 'deps-linux-']
      },
      ws
    )
    expectClean(run)
    expect(run.value).toBe('deps-linux-bbb')
    expect(run.stdout).toContain('Cache hit for restore-key: deps-linux-bbb')
    expect(tree(join(ws, 'store'))).toEqual(newer)
    expect(s.calls.at(-1)?.body).toEqual({
      key: 'deps-linux-ccc',
      restore_keys: ['deps-macos-', 'deps-linux-'],
      version: cacheVersion(PATHS)
    })

    // The exact key beats a newer prefix match.
    rmSync(join(ws, 'store'), { recursive: true })
    const exact = await runCache(
      s,
      { op: 'restore', paths: PATHS, key: 'deps-linux-aaa', restoreKeys: ['deps-linux-'] },
      ws
    )
    expectClean(exact)
    expect(exact.value).toBe('deps-linux-aaa')
    expect(tree(join(ws, 'store'))).toEqual(older)

    // As GitHub documents it, the primary key is itself tried as a prefix before the restore keys.
    rmSync(join(ws, 'store'), { recursive: true })
    const prefix = await runCache(s, { op: 'restore', paths: PATHS, key: 'deps-linux-' }, ws)
    expectClean(prefix)
    expect(prefix.value).toBe('deps-linux-bbb')
    expect(tree(join(ws, 'store'))).toEqual(newer)
  })
})

describe('misses', () => {
  it('another path set is another version and misses; a miss returns undefined', async () => {
    const s = await startService()
    const ws = workspace()
    writeStore(ws, 'one', 1 * MiB)
    const key = 'nvv-paths-1'
    expectClean(await runCache(s, { op: 'save', paths: PATHS, key }, ws))
    rmSync(join(ws, 'store'), { recursive: true })

    for (const paths of [['store/deps'], [...PATHS].reverse()]) {
      const run = await runCache(s, { op: 'restore', paths, key }, ws)
      expectClean(run)
      expect(run.value).toBeNull()
      expect(s.calls.at(-1)?.body).toEqual({ key, version: cacheVersion(paths) })
      expect(cacheVersion(paths)).not.toBe(cacheVersion(PATHS))
    }
    const never = await runCache(
      s,
      { op: 'restore', paths: PATHS, key: 'never-saved', restoreKeys: ['nope-'] },
      ws
    )
    expectClean(never)
    expect(never.value).toBeNull()
    expect(existsSync(join(ws, 'store'))).toBe(false)
    expect(s.requests.filter((r) => r.startsWith('GetBlob'))).toEqual([])
    expect(s.downloads).toEqual([])
  })
})

describe('two jobs saving one key', () => {
  it('at the same time: one saves, the other is refused with a 409, logs it and returns -1', async () => {
    const s = await startService()
    const a = workspace('leg-a')
    const b = workspace('leg-b')
    const trees = [writeStore(a, 'leg-a', 2 * MiB), writeStore(b, 'leg-b', 2 * MiB)]
    const key = 'nvv-matrix-1'
    // Both creates reach the service before either is answered: the second finds the first's
    // reservation, not yet finalized.
    s.gate('CreateCacheEntry', 2)
    const legs = await Promise.all([
      runCache(s, { op: 'save', paths: PATHS, key }, a),
      runCache(s, { op: 'save', paths: PATHS, key }, b)
    ])
    for (const leg of legs) expectClean(leg)
    expect(legs.map((l) => l.value).sort()).toEqual([-1, 1])
    const loser = legs.find((l) => l.value === -1) as CacheRun
    const winner = legs.findIndex((l) => l.value === 1)
    expect(loser.stdout).toContain(
      `Failed to save: Unable to reserve cache with key ${key}, another job may be creating this cache.`
    )
    expect(loser.stdout).toContain(
      '::debug::Failed to reserve cache: Error: Failed to CreateCacheEntry: Received non-retryable error: ' +
        'Failed request: (409) Conflict: cache entry with the same key, version, and scope already exists'
    )
    expect(s.calls.map((c) => [c.method, c.status])).toEqual([
      ['CreateCacheEntry', 200],
      ['CreateCacheEntry', 409],
      ['FinalizeCacheEntryUpload', 200]
    ])
    expect(s.entries.map((e) => [e.key, e.finalized])).toEqual([[key, true]])

    // Later, once it is saved: refused the same way.
    const late = await runCache(s, { op: 'save', paths: PATHS, key }, a)
    expectClean(late)
    expect(late.value).toBe(-1)
    expect(late.stdout).toContain(`Failed to save: Unable to reserve cache with key ${key}`)

    const fresh = workspace('restore')
    const restored = await runCache(s, { op: 'restore', paths: PATHS, key }, fresh)
    expectClean(restored)
    expect(tree(join(fresh, 'store'))).toEqual(trees[winner])
  })
})

describe('an archive over 128 MiB', () => {
  it('goes up as 64 MiB blocks and a block list, and comes back in ranged parts', async () => {
    const s = await startService({ blobHost: 'azure' })
    const ws = workspace()
    const before = writeStore(ws, 'big', 130 * MiB)
    const key = 'nvv-blocks-1'
    const saved = await runCache(s, { op: 'save', paths: PATHS, key }, ws)
    expectClean(saved)
    const entry = s.entries[0]
    const size = entry.data?.length ?? 0
    expect(size).toBeGreaterThan(128 * MiB)
    expect(entry.blockPuts).toBe(Math.ceil(size / (64 * MiB)))
    expect(s.requests).toEqual([
      'CreateCacheEntry',
      ...Array<string>(entry.blockPuts).fill('PutBlock'),
      'PutBlockList',
      'FinalizeCacheEntryUpload'
    ])

    rmSync(join(ws, 'store'), { recursive: true })
    const restored = await runCache(s, { op: 'restore', paths: PATHS, key }, ws)
    expectClean(restored)
    expect(tree(join(ws, 'store'))).toEqual(before)
    expect(s.downloads).toHaveLength(Math.ceil(size / PART))
    expect(s.downloads.reduce((n, d) => n + d.bytes, 0)).toBe(size)
  })
})

describe('injected failures and policy refusals', () => {
  it('a 500 on the lookup is retried; a 400 is not, and the restore is a warned miss', async () => {
    const s = await startService()
    const ws = workspace()
    const before = writeStore(ws, 'one', 1 * MiB)
    const key = 'nvv-retry-1'
    expectClean(await runCache(s, { op: 'save', paths: PATHS, key }, ws))
    rmSync(join(ws, 'store'), { recursive: true })

    s.failNext('GetCacheEntryDownloadURL', 500)
    const retried = await runCache(s, { op: 'restore', paths: PATHS, key }, ws)
    expectClean(retried)
    expect(retried.value).toBe(key)
    expect(retried.stdout).toContain(
      'Attempt 1 of 5 failed with error: Failed request: (500) Internal Server Error: injected failure of GetCacheEntryDownloadURL'
    )
    expect(tree(join(ws, 'store'))).toEqual(before)

    rmSync(join(ws, 'store'), { recursive: true })
    s.failNext('GetCacheEntryDownloadURL', 400, { msg: 'no good' })
    const refused = await runCache(s, { op: 'restore', paths: PATHS, key }, ws)
    expect(refused.code).toBe(0)
    expect(refused.value).toBeNull()
    expect(refused.warnings).toEqual([
      'Failed to restore: Failed to GetCacheEntryDownloadURL: Received non-retryable error: Failed request: (400) Bad Request: no good'
    ])
  })

  it('a read-only token: the save is refused with a warning (-1), a denied lookup is a warned miss', async () => {
    const s = await startService()
    const ws = workspace()
    writeStore(ws, 'one', 1 * MiB)
    s.denyWrites = true
    const save = await runCache(s, { op: 'save', paths: PATHS, key: 'nvv-denied-1' }, ws)
    expect(save.code).toBe(0)
    expect(save.value).toBe(-1)
    expect(save.warnings).toEqual([
      'Failed to save: Unable to reserve cache with key nvv-denied-1. More details: cache write denied: token has no writable scopes'
    ])
    expect(s.entries).toEqual([])

    s.denyReads = true
    const restore = await runCache(s, { op: 'restore', paths: PATHS, key: 'nvv-denied-1' }, ws)
    expect(restore.code).toBe(0)
    expect(restore.value).toBeNull()
    expect(restore.warnings).toHaveLength(1)
    expect(restore.warnings[0]).toContain('(403) Forbidden: cache read denied:')
  })
})
