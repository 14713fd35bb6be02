import { createHash } from 'node:crypto'
import { readFile, readdir, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from '../util/log.js'
import type { GuestSystem } from '../vm/system.js'
import { NIX_FEATURES } from './conf.js'
import { lastLines, renderCommand, type Command, type Executor } from './exec.js'
import type { FlakeTarget } from './flakeref.js'

/**
 * The VM's closure, kept between runs with the Actions cache as a local binary cache:
 *   after a build: nix copy --to file://DIR?compression=zstd <runner store path>, save DIR;
 *   before a build: restore DIR, and the build gets file://DIR?trusted=1 as an extra substituter.
 *
 * Why `?trusted=1` and not signing: the cache is written and read by this repository's own
 * workflow runs only, and a signing key would have to live in the same cache (or be one more
 * secret to manage) — it would not protect anything. `trusted=1` is scoped to that one store:
 * signatures stay required for every other substituter (no global `require-sigs = false`), and
 * Nix still checks every NAR's hash against its narinfo.
 */

export interface StoreCacheKeys {
  key: string
  restoreKeys: string[]
}

/** 16 hex digits of the sha256 of the flake's lock file (or of the reference, for remote flakes). */
export async function flakeLockHash(target: FlakeTarget): Promise<string> {
  const lock =
    target.localDir !== undefined
      ? await readFile(join(target.localDir, 'flake.lock')).catch(() => undefined)
      : undefined
  const h = createHash('sha256')
  h.update(lock ?? `no-lock:${target.flakeRef}`)
  return h.digest('hex').slice(0, 16)
}

/**
 * `nixos-vm-validate-<system>-<configuration>-<lock hash>`. The system is in the key because
 * runner.os is "Linux" on both architectures; an emulated leg (aarch64 guest on an x86_64 host)
 * has a different closure than a native one (the host's QEMU), so it says `-on-<host>`.
 * Restore keys: the same prefix without the lock hash (a partial hit still substitutes most).
 */
export function storeCacheKeys(o: {
  guest: GuestSystem
  host: GuestSystem
  configuration: string
  lockHash: string
}): StoreCacheKeys {
  const system = o.guest === o.host ? o.guest : `${o.guest}-on-${o.host}`
  const configuration = o.configuration.replace(/[^\w.+-]/g, '_')
  const prefix = `nixos-vm-validate-${system}-${configuration}-`
  return { key: `${prefix}${o.lockHash}`, restoreKeys: [prefix] }
}

export function storeCacheDir(runnerTemp: string): string {
  return join(runnerTemp, 'nixos-vm-validate', 'store-cache')
}

/** The restored cache as a substituter (see the top of this file for `trusted=1`). */
export function localSubstituter(dir: string): string {
  return `file://${dir}?trusted=1`
}

/** Exports the runner's closure into DIR (what gets saved). */
export function exportClosureCommand(dir: string, storePath: string, nix = 'nix'): Command {
  return {
    argv: [nix, ...NIX_FEATURES, 'copy', '--to', `file://${dir}?compression=zstd`, storePath],
    why: 'export the VM closure to the local binary cache'
  }
}

/** @actions/cache, or a fake in tests. */
export interface CacheClient {
  /** The key that matched, or undefined on a miss. */
  restore(paths: string[], key: string, restoreKeys: string[]): Promise<string | undefined>
  /** The cache id (-1: @actions/cache logged a failure and gave up). */
  save(paths: string[], key: string): Promise<number>
}

export interface StoreCacheResult {
  key: string
  dir: string
  /** exact: the key itself; partial: a restore key; miss; error: restoring failed (warned). */
  hit: 'exact' | 'partial' | 'miss' | 'error'
  restoredKey?: string
  restoredBytes?: number
  /** Set after saveStoreCache. */
  saved?: 'saved' | 'skipped' | 'exists' | 'failed'
  savedBytes?: number
  message: string
}

/** Total size of the files under `dir` (0 when missing). */
export async function dirBytes(dir: string): Promise<number> {
  let total = 0
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => [])
  for (const e of entries) {
    const p = join(dir, e.name)
    if (e.isDirectory()) total += await dirBytes(p)
    else if (e.isFile()) total += (await stat(p)).size
  }
  return total
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`
}

/** Restores DIR; never throws (a cache is an optimisation). */
export async function restoreStoreCache(o: {
  keys: StoreCacheKeys
  dir: string
  client: CacheClient
  log: Logger
}): Promise<StoreCacheResult> {
  const base = { key: o.keys.key, dir: o.dir }
  try {
    const matched = await o.client.restore([o.dir], o.keys.key, o.keys.restoreKeys)
    if (matched === undefined) {
      const message = `store cache miss (${o.keys.key})`
      o.log.info(message)
      return { ...base, hit: 'miss', message }
    }
    const bytes = await dirBytes(o.dir)
    const hit = matched === o.keys.key ? 'exact' : 'partial'
    const message = `store cache ${hit} hit: ${matched} (${mib(bytes)})`
    o.log.info(message)
    return { ...base, hit, restoredKey: matched, restoredBytes: bytes, message }
  } catch (err) {
    const message = `store cache not restored: ${(err as Error).message}`
    o.log.warning(message)
    return { ...base, hit: 'error', message }
  }
}

/** A race between matrix legs saving the same key: someone else saved it, which is fine. */
export function isCacheConflict(err: unknown): boolean {
  const e = err as { name?: string; message?: string }
  return (
    e?.name === 'ReserveCacheError' ||
    /already exists|reserve|another job may be creating/i.test(e?.message ?? '')
  )
}

/**
 * After a successful build: exports the closure into a fresh DIR and saves it, unless the exact
 * key was restored (caches are immutable; the closure is the same lock's). Never throws.
 */
export async function saveStoreCache(o: {
  restored: StoreCacheResult
  storePath: string
  client: CacheClient
  exec: Executor
  log: Logger
  nix?: string
}): Promise<StoreCacheResult> {
  const r = o.restored
  if (r.hit === 'exact') {
    const message = `store cache not saved: ${r.key} was restored (cache entries are immutable)`
    o.log.info(message)
    return { ...r, saved: 'skipped', message }
  }
  try {
    // Only this closure goes into the entry, not what an older entry brought along.
    await rm(r.dir, { recursive: true, force: true })
    const cmd = exportClosureCommand(r.dir, o.storePath, o.nix)
    o.log.info(`${cmd.why}: ${renderCommand(cmd)}`)
    const copied = await o.exec.run(cmd, { onLine: (l) => o.log.debug(l) })
    if (copied.code !== 0) {
      const message = `store cache not saved: nix copy failed: ${lastLines(copied.stderr, 3)}`
      o.log.warning(message)
      return { ...r, saved: 'failed', message }
    }
    const bytes = await dirBytes(r.dir)
    const id = await o.client.save([r.dir], r.key)
    if (id === -1) {
      const message = `store cache not saved (${r.key}): see the cache messages above`
      o.log.warning(message)
      return { ...r, saved: 'failed', savedBytes: bytes, message }
    }
    const message = `store cache saved: ${r.key} (${mib(bytes)})`
    o.log.info(message)
    return { ...r, saved: 'saved', savedBytes: bytes, message }
  } catch (err) {
    if (isCacheConflict(err)) {
      const message = `store cache ${r.key} is being saved by another job (matrix leg): not an error`
      o.log.info(message)
      return { ...r, saved: 'exists', message }
    }
    const message = `store cache not saved: ${(err as Error).message}`
    o.log.warning(message)
    return { ...r, saved: 'failed', message }
  }
}
