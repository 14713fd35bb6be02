import { createHash } from 'node:crypto'
import { readFile, readdir, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from '../util/log.js'
import type { GuestSystem } from '../vm/system.js'
import { nixArgv } from './conf.js'
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
  /** `<prefix><inputs hash>-<source hash>`: what this run restores exactly and saves. */
  key: string
  /** The same inputs, newest first; then any entry of this configuration (a partial hit). */
  restoreKeys: string[]
  /** Where the hash comes from, for the log and the plan. */
  inputsFrom: InputsHashSource
}

export type InputsHashSource = 'flake.lock' | 'nix flake metadata' | 'flake reference'

function sha16(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16)
}

/** `nix flake metadata --json` without writing a lock file: the inputs Nix resolves now. */
export function flakeMetadataCommand(
  flakeRef: string,
  o: { nix?: string; options?: [string, string][] } = {}
): Command {
  return {
    argv: nixArgv(
      o.nix ?? 'nix',
      ['flake', 'metadata', '--json', '--no-write-lock-file'],
      o.options ?? [],
      [flakeRef]
    ),
    why: 'resolve the flake inputs for the store cache key'
  }
}

/**
 * A hash of the locked inputs in `nix flake metadata --json` (every lock node but the root: rev,
 * narHash, …), independent of the flake's own source. A flake without inputs hashes to the same
 * value on every run.
 */
export function lockedInputsHash(metadataJson: string): string | undefined {
  const meta = parseMetadata(metadataJson)
  const nodes = meta?.locks?.nodes
  if (nodes === undefined) return undefined
  const root = meta?.locks?.root ?? 'root'
  const locked = Object.keys(nodes)
    .filter((name) => name !== root)
    .sort()
    .map((name) => [name, nodes[name].locked ?? null])
  return sha16(JSON.stringify(locked))
}

interface FlakeMetadata {
  locked?: { narHash?: string }
  path?: string
  locks?: { root?: string; nodes?: Record<string, { locked?: unknown }> }
}

function parseMetadata(text: string): FlakeMetadata | undefined {
  try {
    return JSON.parse(text) as FlakeMetadata
  } catch {
    return undefined
  }
}

/** The flake's own source (its narHash, else its store path): what changes with its files. */
export function sourceHash(metadataJson: string): string | undefined {
  const meta = parseMetadata(metadataJson)
  const id = meta?.locked?.narHash ?? meta?.path
  return id !== undefined ? sha16(id) : undefined
}

export interface FlakeCacheIdentity {
  /** The inputs: flake.lock's hash, else the inputs `nix flake metadata` resolved. */
  inputsHash: string
  inputsFrom: InputsHashSource
  /** The flake's own files (its source narHash): a new commit of the configuration, a new key. */
  sourceHash: string
}

/**
 * What the store cache key hangs on: the inputs (the flake.lock's hash when there is one;
 * otherwise the inputs Nix resolves, `nix flake metadata`) and the flake's own source. When the
 * metadata cannot be had, the reference and this moment stand in (then the coverage check of
 * saveStoreCache decides whether an entry is worth saving).
 */
export async function flakeCacheIdentity(
  target: FlakeTarget,
  o: { exec: Executor; log: Logger; nix?: string; options?: [string, string][] }
): Promise<FlakeCacheIdentity> {
  const lock =
    target.localDir !== undefined
      ? await readFile(join(target.localDir, 'flake.lock')).catch(() => undefined)
      : undefined
  const cmd = flakeMetadataCommand(target.flakeRef, o)
  const r = await o.exec.run(cmd, { timeoutMs: 5 * 60_000 }).catch(() => undefined)
  const meta = r !== undefined && r.code === 0 ? r.stdout : undefined
  const inputs = meta !== undefined ? lockedInputsHash(meta) : undefined
  const source = meta !== undefined ? sourceHash(meta) : undefined
  if (source === undefined) {
    o.log.warning(
      `store cache key: ${renderCommand(cmd)} failed${r !== undefined ? `: ${lastLines(r.stderr, 2)}` : ''}; keyed by the ${lock !== undefined ? 'flake.lock' : 'flake reference'} and this run`
    )
  }
  const identity: Pick<FlakeCacheIdentity, 'inputsHash' | 'inputsFrom'> =
    lock !== undefined
      ? { inputsHash: sha16(lock), inputsFrom: 'flake.lock' }
      : inputs !== undefined
        ? { inputsHash: inputs, inputsFrom: 'nix flake metadata' }
        : { inputsHash: sha16(`no-lock:${target.flakeRef}`), inputsFrom: 'flake reference' }
  return { ...identity, sourceHash: source ?? sha16(`run:${Date.now()}`) }
}

/**
 * `nixos-vm-validate-<system>-<configuration>-<inputs hash>-<source hash>`. The system is in the
 * key because runner.os is "Linux" on both architectures; an emulated leg (aarch64 guest on an
 * x86_64 host) has a different closure than a native one (the host's QEMU), so it says
 * `-on-<host>`. Restore keys: the same inputs (the newest entry), then any entry of this
 * configuration (a partial hit still substitutes most of the closure).
 */
export function storeCacheKeys(o: {
  guest: GuestSystem
  host: GuestSystem
  configuration: string
  inputsHash: string
  sourceHash: string
  inputsFrom?: InputsHashSource
}): StoreCacheKeys {
  const system = o.guest === o.host ? o.guest : `${o.guest}-on-${o.host}`
  const configuration = o.configuration.replace(/[^\w.+-]/g, '_')
  const prefix = `nixos-vm-validate-${system}-${configuration}-`
  const inputs = `${prefix}${o.inputsHash}-`
  return {
    key: `${inputs}${o.sourceHash}`,
    restoreKeys: [inputs, prefix],
    inputsFrom: o.inputsFrom ?? 'flake.lock'
  }
}

/**
 * The store cache as @actions/cache is given it. The cache `version` is a hash of the paths as
 * given, so a path under RUNNER_TEMP would tie an entry to one runner's work directory (a
 * self-hosted runner elsewhere, act, a test) and miss everywhere else; `~` is expanded by the
 * library to this process's home, the same string on every runner.
 */
export const STORE_CACHE_PATH = '~/.cache/nixos-vm-validate/store-cache'

/** Where STORE_CACHE_PATH is on this machine (`home`: $HOME, as @actions/cache expands `~`). */
export function storeCacheDir(home: string): string {
  return join(home, '.cache', 'nixos-vm-validate', 'store-cache')
}

/** The restored cache as a substituter (see the top of this file for `trusted=1`). */
export function localSubstituter(dir: string): string {
  return `file://${dir}?trusted=1`
}

/** Exports the runner's closure into DIR (what gets saved). */
export function exportClosureCommand(
  dir: string,
  storePath: string,
  nix = 'nix',
  options: [string, string][] = []
): Command {
  return {
    argv: nixArgv(nix, ['copy'], options, ['--to', `file://${dir}?compression=zstd`, storePath]),
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
  /**
   * exact: the key itself (same inputs, same source); partial: a restore key (same inputs and
   * another source, or another entry of this configuration); miss; error: restoring failed.
   */
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
    await rm(o.dir, { recursive: true, force: true })
    const matched = await o.client.restore([STORE_CACHE_PATH], o.keys.key, o.keys.restoreKeys)
    if (matched === undefined) {
      const message = `store cache miss (${o.keys.key})`
      o.log.info(message)
      return { ...base, hit: 'miss', message }
    }
    const bytes = await dirBytes(o.dir)
    const hit = matched === o.keys.key ? 'exact' : 'partial'
    const message = `store cache ${hit} hit: ${matched} (${mib(bytes)})`
    o.log.info(message)
    // The archive holds paths relative to the workspace: a job whose HOME or workspace is
    // elsewhere than the saving job's unpacks it somewhere else (hosted runners never differ).
    if (bytes === 0)
      o.log.warning(
        `store cache ${matched} restored nothing into ${o.dir}: was it saved by a runner with another HOME or workspace path?`
      )
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

/** Below this share of the closure's NAR bytes, a partial hit is refreshed with a new entry. */
export const REFRESH_BELOW = 0.9

/** `nix path-info --json --recursive`: the closure's paths and NAR sizes. */
export function closureInfoCommand(
  storePath: string,
  nix = 'nix',
  options: [string, string][] = []
): Command {
  return {
    argv: nixArgv(nix, ['path-info', '--json', '--recursive'], options, [storePath]),
    why: 'the closure, to see how much of it the restored entry holds'
  }
}

/** Paths and NAR sizes from `nix path-info --json` (an array up to Nix 2.18, an object after). */
export function parseClosureInfo(json: string): { path: string; narSize: number }[] {
  let parsed: unknown
  try {
    parsed = JSON.parse(json)
  } catch {
    return []
  }
  const items: [string, { narSize?: number } | null][] = Array.isArray(parsed)
    ? (parsed as { path: string; narSize?: number }[]).map((i) => [i.path, i])
    : Object.entries((parsed ?? {}) as Record<string, { narSize?: number } | null>)
  return items
    .filter(([p]) => typeof p === 'string')
    .map(([path, info]) => ({ path, narSize: info?.narSize ?? 0 }))
}

/** Share (0–1) of the closure's NAR bytes whose narinfo is in the binary cache DIR. */
export async function closureCoverage(
  closure: { path: string; narSize: number }[],
  dir: string
): Promise<number> {
  const held = new Set(
    (await readdir(dir).catch(() => [] as string[]))
      .filter((n) => n.endsWith('.narinfo'))
      .map((n) => n.slice(0, -'.narinfo'.length))
  )
  const total = closure.reduce((n, p) => n + p.narSize, 0)
  if (total === 0) return 0
  const hash = (p: string): string => /\/nix\/store\/([0-9a-z]{32})/.exec(p)?.[1] ?? p
  return closure.filter((p) => held.has(hash(p.path))).reduce((n, p) => n + p.narSize, 0) / total
}

/**
 * After a successful build: exports the closure into a fresh DIR and saves it under the run's
 * key. Not saved when that very key was restored (entries are immutable), nor when a partial hit
 * already holds REFRESH_BELOW of the closure's bytes: the run's own SSH key changes the top of
 * the closure on every run, and saving for that would churn the repository's 10 GB. Never throws:
 * a cache is an optimisation.
 */
export async function saveStoreCache(o: {
  restored: StoreCacheResult
  storePath: string
  client: CacheClient
  exec: Executor
  log: Logger
  nix?: string
  options?: [string, string][]
}): Promise<StoreCacheResult> {
  const r = o.restored
  const key = r.key
  try {
    if (r.restoredKey === key) {
      const message = `store cache not saved: ${key} was restored (same inputs, same source; entries are immutable)`
      o.log.info(message)
      return { ...r, saved: 'skipped', message }
    }
    if (r.hit === 'partial') {
      const info = await o.exec.run(closureInfoCommand(o.storePath, o.nix, o.options))
      const share =
        info.code === 0 ? await closureCoverage(parseClosureInfo(info.stdout), r.dir) : 0
      if (share >= REFRESH_BELOW) {
        const message = `store cache not saved: the restored ${r.restoredKey ?? 'entry'} holds ${(share * 100).toFixed(1)} % of this closure's bytes`
        o.log.info(message)
        return { ...r, saved: 'skipped', message }
      }
    }
    // Only this closure goes into the entry, not what an older entry brought along.
    await rm(r.dir, { recursive: true, force: true })
    const cmd = exportClosureCommand(r.dir, o.storePath, o.nix, o.options)
    o.log.info(`${cmd.why}: ${renderCommand(cmd)}`)
    const copied = await o.exec.run(cmd, { onLine: (l) => o.log.debug(l) })
    if (copied.code !== 0) {
      const message = `store cache not saved: nix copy failed: ${lastLines(copied.stderr, 3)}`
      o.log.warning(message)
      return { ...r, saved: 'failed', message }
    }
    const bytes = await dirBytes(r.dir)
    const id = await o.client.save([STORE_CACHE_PATH], key)
    if (id === -1) {
      // @actions/cache answers a key another job is saving (HTTP 409) with -1 and an info line.
      const message = `store cache not saved (${key}): another job may be saving it (a matrix leg), or see the cache messages above`
      o.log.warning(message)
      return { ...r, saved: 'failed', savedBytes: bytes, message }
    }
    const message = `store cache saved: ${key} (${mib(bytes)})`
    o.log.info(message)
    return { ...r, saved: 'saved', savedBytes: bytes, message }
  } catch (err) {
    if (isCacheConflict(err)) {
      const message = `store cache ${key} is being saved by another job (matrix leg): not an error`
      o.log.warning(message)
      return { ...r, saved: 'exists', message }
    }
    const message = `store cache not saved: ${(err as Error).message}`
    o.log.warning(message)
    return { ...r, saved: 'failed', message }
  } finally {
    // A local copy of the closure, needed during the run only (HOME outlives it on self-hosted runners).
    await rm(r.dir, { recursive: true, force: true }).catch(() => undefined)
  }
}
