/**
 * A loopback Actions cache service (cache service v2), the part @actions/cache talks to when
 * ACTIONS_CACHE_SERVICE_V2 is set: the Twirp JSON endpoints CreateCacheEntry,
 * FinalizeCacheEntryUpload and GetCacheEntryDownloadURL under ACTIONS_RESULTS_URL, and the signed
 * blob URLs they hand out, served by the same server the way Azure Blob Storage serves a block
 * blob: one PUT (`x-ms-blob-type: BlockBlob`) or `comp=block` parts then `comp=blocklist` going
 * up, HEAD and whole or ranged (`Range` / `x-ms-range`) GETs coming down.
 *
 * What @actions/cache 6.3 sends and expects (lib/cache.js, lib/internal/shared/cacheTwirpClient.js,
 * lib/generated/results/api/v1/cache.js):
 * - Twirp JSON with the proto field names: `{key, version}` to create, `{key, version,
 *   size_bytes}` (an int64, so a string) to finalize, `{key, restore_keys, version}` to look up;
 *   `{ok, signed_upload_url, message}`, `{ok, entry_id, message}` and `{ok, signed_download_url,
 *   matched_key}` back. `metadata` is never sent. `version` is sha256 of the paths as given,
 *   the compression method and the salt "1.0", joined by "|" (see cacheVersion below).
 * - A miss is HTTP 200 with `ok: false`: restoreCache returns undefined.
 * - A create refused because the key and version exist, or are being saved by another job, is
 *   what GitHub answers: HTTP 409, `{code: "already_exists", msg: "cache entry with the same key,
 *   version, and scope already exists"}`. The library does not retry a 409; saveCache turns any
 *   failed create into a ReserveCacheError, logs it with core.info ("Failed to save: Unable to
 *   reserve cache with key K, another job may be creating this cache.", no warning) and returns
 *   -1. A 200 with `ok: false` would add a "Cache reservation failed" warning; a message starting
 *   "cache write denied:" (a read-only token: `denyWrites`) is logged as a warning instead.
 * - 500/502/503/504 are retried (5 attempts, 3 s then x1.5 backoff); other statuses are not; 429
 *   is not retried either.
 * - The blob transfer picks its path from the URL's host: only for *.blob.core.windows.net does
 *   it use the Azure SDK to download (HEAD, then 4 MiB ranged GETs, 8 at a time). Any other host
 *   gets one plain GET, checked against its Content-Length. Uploads always go through the SDK:
 *   one PUT up to 128 MiB, 64 MiB blocks and a block list above that. `blobHost: 'azure'` hands
 *   out URLs on nvvcache.blob.core.windows.net:<port>, and cacheEnv then preloads
 *   blob-loopback.mjs into the client so that name reaches 127.0.0.1.
 *
 * Not modelled: scopes (branches), eviction, expiry of a reservation whose job died.
 */
import { createHash } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { runtimeToken } from './artifact-service.js'
import { LoopbackServer } from './loopback.js'

const TWIRP = '/twirp/github.actions.results.api.v1.CacheService/'
const BLOB_PATH = /^(?:\/devstoreaccount1)?\/actions-cache\/entry-(\d+)$/
/** The storage account in the blob URLs of the 'azure' mode. */
export const AZURE_ACCOUNT = 'nvvcache'
/** The preload that resolves *.blob.core.windows.net to 127.0.0.1. */
export const BLOB_LOOPBACK = join(dirname(fileURLToPath(import.meta.url)), 'blob-loopback.mjs')

export type CacheMethod =
  'CreateCacheEntry' | 'FinalizeCacheEntryUpload' | 'GetCacheEntryDownloadURL'
export type BlobOperation =
  'PutBlob' | 'PutBlock' | 'PutBlockList' | 'GetBlobProperties' | 'GetBlob'

const FIELDS: Record<CacheMethod, string[]> = {
  CreateCacheEntry: ['metadata', 'key', 'version'],
  FinalizeCacheEntryUpload: ['metadata', 'key', 'size_bytes', 'version'],
  GetCacheEntryDownloadURL: ['metadata', 'key', 'restore_keys', 'version']
}

export interface CacheEntry {
  id: number
  key: string
  version: string
  created: Date
  /** Set by FinalizeCacheEntryUpload; only finalized entries are found by a restore. */
  finalized: boolean
  /** The committed blob: a single PUT, or the blocks a block list named. */
  data?: Buffer
  /** Blocks put and not (yet) committed. */
  blocks: Map<string, Buffer>
  /** PUTs that carried data: 1 for a single-shot upload, the block count otherwise. */
  blockPuts: number
}

export interface BlobDownload {
  entryId: number
  key: string
  start: number
  /** Inclusive. */
  end: number
  bytes: number
  /** A `Range` / `x-ms-range` GET (206), not a whole-blob GET (200). */
  ranged: boolean
}

export interface TwirpCall {
  method: string
  body: Record<string, unknown>
  status: number
}

export interface FakeCacheOptions {
  /** Where the signed blob URLs point (see above). Default 'loopback'. */
  blobHost?: 'loopback' | 'azure'
  /** The ACTIONS_RUNTIME_TOKEN to demand. Default: runtimeToken() of the artifact service. */
  token?: string
}

/** The `version` @actions/cache sends for these paths (zstd on PATH: 'zstd-without-long'). */
export function cacheVersion(paths: string[], compression = 'zstd-without-long'): string {
  return createHash('sha256')
    .update([...paths, compression, '1.0'].join('|'))
    .digest('hex')
}

const TWIRP_CODES: Record<number, string> = {
  400: 'invalid_argument',
  401: 'unauthenticated',
  403: 'permission_denied',
  404: 'not_found',
  409: 'already_exists',
  412: 'failed_precondition',
  429: 'resource_exhausted',
  500: 'internal',
  503: 'unavailable'
}

interface Injected {
  status: number
  msg: string
  times: number
}

export class FakeCacheService extends LoopbackServer {
  readonly entries: CacheEntry[] = []
  /** Twirp method names and blob operations, in the order they arrived. */
  readonly requests: string[] = []
  readonly calls: TwirpCall[] = []
  readonly downloads: BlobDownload[] = []
  /** Protocol violations the fake saw; a test ends with this empty. */
  readonly errors: string[] = []
  readonly blobHost: 'loopback' | 'azure'
  readonly token: string
  /** Refuse creates as GitHub does for a read-only token (200, ok false, "cache write denied:"). */
  denyWrites = false
  /** Refuse lookups as GitHub does for a token with no readable scope (403, "cache read denied:"). */
  denyReads = false
  private nextId = 1
  private readonly injected = new Map<string, Injected[]>()
  private readonly gates = new Map<string, { count: number; waiting: (() => void)[] }>()

  constructor(o: FakeCacheOptions = {}) {
    super()
    this.blobHost = o.blobHost ?? 'loopback'
    this.token = o.token ?? runtimeToken()
  }

  get url(): string {
    return this.base
  }

  /** The next `times` (default 1) calls of `op` fail with `status`, as a Twirp or Azure error. */
  failNext(
    op: CacheMethod | BlobOperation,
    status: number,
    o: { times?: number; msg?: string } = {}
  ): void {
    const list = this.injected.get(op) ?? []
    list.push({ status, msg: o.msg ?? `injected failure of ${op}`, times: o.times ?? 1 })
    this.injected.set(op, list)
  }

  /**
   * Hold the calls of `method` until `count` of them have arrived, then answer them in the order
   * they came: two jobs' creates then race for the same key for certain.
   */
  gate(method: CacheMethod, count: number): void {
    this.gates.set(method, { count, waiting: [] })
  }

  /** A finalized entry, as though a job had saved it (`created` orders prefix matches). */
  addEntry(key: string, version: string, data: Buffer, created = new Date()): CacheEntry {
    const e: CacheEntry = {
      id: this.nextId++,
      key,
      version,
      created,
      finalized: true,
      data,
      blocks: new Map(),
      blockPuts: 0
    }
    this.entries.push(e)
    return e
  }

  /**
   * GitHub's lookup: among finalized entries of this version, the exact key; else the newest
   * entry the key is a prefix of; else, restore key by restore key, the newest it is a prefix of.
   */
  match(key: string, restoreKeys: string[], version: string): CacheEntry | undefined {
    const live = this.entries.filter((e) => e.finalized && e.version === version)
    const exact = live.find((e) => e.key === key)
    if (exact !== undefined) return exact
    for (const prefix of [key, ...restoreKeys]) {
      const hits = live.filter((e) => e.key.startsWith(prefix))
      hits.sort((a, b) => b.created.getTime() - a.created.getTime() || b.id - a.id)
      if (hits.length > 0) return hits[0]
    }
    return undefined
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.base)
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    const raw = Buffer.concat(chunks)
    try {
      if (url.pathname.startsWith(TWIRP)) {
        await this.twirp(req, url, raw, res)
        return
      }
      const m = BLOB_PATH.exec(url.pathname)
      if (m !== null) {
        this.blob(req, url, raw, res, Number(m[1]))
        return
      }
      this.errors.push(`no such route: ${req.method} ${url.pathname}`)
      res.writeHead(404)
      res.end()
    } catch (err) {
      this.errors.push(`the fake failed: ${String(err)}`)
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ code: 'internal', msg: String(err) }))
    }
  }

  private take(op: string): Injected | undefined {
    const list = this.injected.get(op)
    const next = list?.[0]
    if (list === undefined || next === undefined) return undefined
    if (--next.times <= 0) list.shift()
    return next
  }

  private async twirp(
    req: IncomingMessage,
    url: URL,
    raw: Buffer,
    res: ServerResponse
  ): Promise<void> {
    const method = url.pathname.slice(TWIRP.length)
    this.requests.push(method)
    let body: Record<string, unknown> = {}
    const reply = (status: number, answer: unknown): void => {
      this.calls.push({ method, body, status })
      res.writeHead(status, { 'content-type': 'application/json' })
      res.end(JSON.stringify(answer))
    }
    const fail = (status: number, msg: string): void =>
      reply(status, { code: TWIRP_CODES[status] ?? 'unknown', msg })
    const violation = (msg: string, status: number): void => {
      this.errors.push(`${method}: ${msg}`)
      fail(status, msg)
    }
    if (req.method !== 'POST' || !(method in FIELDS)) {
      violation(`no such twirp route: ${req.method} ${url.pathname}`, 404)
      return
    }
    if (req.headers.authorization !== `Bearer ${this.token}`) {
      violation(`called without the runtime token: ${req.headers.authorization ?? 'none'}`, 401)
      return
    }
    if (!(req.headers['content-type'] ?? '').startsWith('application/json')) {
      violation(`content-type ${req.headers['content-type'] ?? 'none'}, not JSON`, 404)
      return
    }
    try {
      body = JSON.parse(raw.toString('utf8')) as Record<string, unknown>
    } catch {
      violation(`a body that is not JSON: ${raw.toString('utf8').slice(0, 200)}`, 400)
      return
    }
    const m = method as CacheMethod
    for (const k of Object.keys(body))
      if (!FIELDS[m].includes(k)) this.errors.push(`${method}: unknown field ${k}`)
    const key = body.key
    const version = body.version
    if (typeof key !== 'string' || key === '' || key.length > 512 || key.includes(',')) {
      violation(`bad key ${JSON.stringify(key)}`, 400)
      return
    }
    if (typeof version !== 'string' || !/^[0-9a-f]{64}$/.test(version)) {
      violation(`bad version ${JSON.stringify(version)}`, 400)
      return
    }

    const gate = this.gates.get(method)
    if (gate !== undefined) {
      await new Promise<void>((resolve) => {
        gate.waiting.push(resolve)
        if (gate.waiting.length >= gate.count) {
          this.gates.delete(method)
          for (const release of gate.waiting) release()
        }
      })
    }
    const injected = this.take(method)
    if (injected !== undefined) {
      fail(injected.status, injected.msg)
      return
    }

    if (m === 'CreateCacheEntry') {
      if (this.denyWrites) {
        reply(200, {
          ok: false,
          signed_upload_url: '',
          message: 'cache write denied: token has no writable scopes'
        })
        return
      }
      if (this.entries.some((e) => e.key === key && e.version === version)) {
        fail(409, 'cache entry with the same key, version, and scope already exists')
        return
      }
      const e: CacheEntry = {
        id: this.nextId++,
        key,
        version,
        created: new Date(),
        finalized: false,
        blocks: new Map(),
        blockPuts: 0
      }
      this.entries.push(e)
      reply(200, { ok: true, signed_upload_url: this.blobUrl(e, 'w') })
      return
    }

    if (m === 'FinalizeCacheEntryUpload') {
      const e = this.entries.find((x) => x.key === key && x.version === version)
      const size = body.size_bytes
      if (e === undefined) {
        violation(`no entry was created for key ${key} version ${version}`, 404)
        return
      }
      if (e.finalized) {
        violation(`entry ${e.id} (${key}) is already finalized`, 409)
        return
      }
      if (e.data === undefined) {
        violation(`entry ${e.id} (${key}) finalized before its blob was committed`, 412)
        return
      }
      if (
        (typeof size !== 'string' && typeof size !== 'number') ||
        !/^\d+$/.test(String(size)) ||
        Number(size) !== e.data.length
      ) {
        violation(
          `size_bytes ${JSON.stringify(size)} but the blob of entry ${e.id} has ${e.data.length} bytes`,
          400
        )
        return
      }
      e.finalized = true
      reply(200, { ok: true, entry_id: String(e.id) })
      return
    }

    if (this.denyReads) {
      fail(403, 'cache read denied: token has no readable cache scopes')
      return
    }
    const restoreKeys = body.restore_keys ?? []
    if (!Array.isArray(restoreKeys) || restoreKeys.some((k) => typeof k !== 'string')) {
      violation(`restore_keys is not a list of strings: ${JSON.stringify(restoreKeys)}`, 400)
      return
    }
    const hit = this.match(key, restoreKeys as string[], version)
    if (hit === undefined) {
      reply(200, { ok: false, signed_download_url: '', matched_key: '' })
      return
    }
    reply(200, { ok: true, signed_download_url: this.blobUrl(hit, 'r'), matched_key: hit.key })
  }

  private signature(e: CacheEntry, mode: 'r' | 'w'): string {
    return `fake-${mode}-${e.id}`
  }

  private blobUrl(e: CacheEntry, mode: 'r' | 'w'): string {
    const origin =
      this.blobHost === 'azure'
        ? `http://${AZURE_ACCOUNT}.blob.core.windows.net:${new URL(this.base).port}`
        : `${this.base}/devstoreaccount1`
    const sas = `sv=2024-11-04&sr=b&sp=${mode}&se=2099-01-01T00%3A00%3A00Z&sig=${this.signature(e, mode)}`
    return `${origin}/actions-cache/entry-${e.id}?${sas}`
  }

  private blob(req: IncomingMessage, url: URL, raw: Buffer, res: ServerResponse, id: number): void {
    const comp = url.searchParams.get('comp')
    const op =
      req.method === 'PUT'
        ? comp === 'block'
          ? 'PutBlock'
          : comp === 'blocklist'
            ? 'PutBlockList'
            : 'PutBlob'
        : req.method === 'HEAD'
          ? 'GetBlobProperties'
          : req.method === 'GET'
            ? 'GetBlob'
            : `${req.method ?? '?'} blob`
    this.requests.push(op)
    const e = this.entries.find((x) => x.id === id)
    const etag = `"0x8DD${id.toString(16).toUpperCase().padStart(12, '0')}"`
    const common = {
      etag,
      'last-modified': (e?.created ?? new Date()).toUTCString(),
      'x-ms-request-id': `fake-${this.requests.length}`,
      'x-ms-version': '2024-11-04',
      date: new Date().toUTCString()
    }
    const azureError = (status: number, code: string, msg: string, extra = {}): void => {
      res.writeHead(status, {
        ...common,
        ...extra,
        'x-ms-error-code': code,
        'content-type': 'application/xml'
      })
      res.end(
        req.method === 'HEAD'
          ? undefined
          : `<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code><Message>${msg}</Message></Error>`
      )
    }
    const violation = (status: number, code: string, msg: string, extra = {}): void => {
      this.errors.push(`${op}: ${msg}`)
      azureError(status, code, msg, extra)
    }
    if (e === undefined) {
      violation(404, 'BlobNotFound', `entry ${id} does not exist`)
      return
    }
    const write = req.method === 'PUT'
    const mode = write ? 'w' : 'r'
    if (
      url.searchParams.get('sig') !== this.signature(e, mode) ||
      url.searchParams.get('sp') !== mode
    ) {
      violation(
        403,
        'AuthenticationFailed',
        `${req.method} on entry ${id} (${e.key}) with a URL not signed for ${write ? 'writing' : 'reading'}`
      )
      return
    }
    const injected = this.take(op)
    if (injected !== undefined) {
      azureError(injected.status, injected.status >= 500 ? 'InternalError' : 'Fake', injected.msg)
      return
    }

    if (write) {
      const created = (): void => {
        res.writeHead(201, { ...common, 'x-ms-request-server-encrypted': 'true' })
        res.end()
      }
      if (e.finalized) {
        violation(409, 'BlobImmutable', `PUT to entry ${id} (${e.key}) after it was finalized`)
        return
      }
      const declared = req.headers['content-length']
      if (declared === undefined || Number(declared) !== raw.length) {
        violation(
          400,
          'MissingContentLengthHeader',
          `content-length ${declared ?? 'none'} for a body of ${raw.length} bytes`
        )
        return
      }
      if (comp === 'block') {
        const blockId = url.searchParams.get('blockid')
        if (blockId === null || blockId === '') {
          violation(400, 'InvalidQueryParameterValue', 'a block without a blockid')
          return
        }
        e.blocks.set(blockId, raw)
        e.blockPuts++
        created()
        return
      }
      if (comp === 'blocklist') {
        const ids = [
          ...raw.toString('utf8').matchAll(/<(?:Latest|Uncommitted|Committed)>([^<]*)<\//g)
        ].map((x) => x[1])
        const missing = ids.filter((b) => !e.blocks.has(b))
        if (ids.length === 0 || missing.length > 0) {
          violation(
            400,
            'InvalidBlockList',
            ids.length === 0
              ? `a block list naming no block: ${raw.toString('utf8').slice(0, 200)}`
              : `the block list names blocks never put: ${missing.join(', ')}`
          )
          return
        }
        e.data = Buffer.concat(ids.map((b) => e.blocks.get(b) as Buffer))
        e.blocks.clear()
        created()
        return
      }
      if (comp !== null || req.headers['x-ms-blob-type'] !== 'BlockBlob') {
        violation(
          400,
          'InvalidHeaderValue',
          `a PUT with comp=${comp ?? 'none'} and x-ms-blob-type ${String(req.headers['x-ms-blob-type'])}`
        )
        return
      }
      e.data = raw
      e.blockPuts++
      created()
      return
    }

    if (req.method !== 'GET' && req.method !== 'HEAD') {
      violation(405, 'UnsupportedHttpVerb', `${req.method} on a blob`)
      return
    }
    if (!e.finalized || e.data === undefined) {
      violation(404, 'BlobNotFound', `read of entry ${id} (${e.key}) before it was finalized`)
      return
    }
    const data = e.data
    const ifMatch = req.headers['if-match']
    if (ifMatch !== undefined && ifMatch !== '*' && ifMatch !== etag) {
      violation(412, 'ConditionNotMet', `if-match ${ifMatch}, the blob's etag is ${etag}`)
      return
    }
    const headers = {
      ...common,
      'content-type': 'application/octet-stream',
      'accept-ranges': 'bytes',
      'x-ms-blob-type': 'BlockBlob',
      'x-ms-creation-time': e.created.toUTCString(),
      'x-ms-lease-state': 'available',
      'x-ms-lease-status': 'unlocked',
      'x-ms-server-encrypted': 'true'
    }
    if (req.method === 'HEAD') {
      res.writeHead(200, { ...headers, 'content-length': String(data.length) })
      res.end()
      return
    }
    const rangeHeader = req.headers['x-ms-range'] ?? req.headers.range
    const range = typeof rangeHeader === 'string' ? rangeHeader : undefined
    if (range === undefined) {
      res.writeHead(200, { ...headers, 'content-length': String(data.length) })
      res.end(data)
      this.downloads.push({
        entryId: id,
        key: e.key,
        start: 0,
        end: data.length - 1,
        bytes: data.length,
        ranged: false
      })
      return
    }
    const r = /^bytes=(\d+)-(\d*)$/.exec(range)
    const start = r === null ? NaN : Number(r[1])
    const end = r === null ? NaN : r[2] === '' ? data.length - 1 : Number(r[2])
    if (r === null || start >= data.length || end < start) {
      violation(416, 'InvalidRange', `range ${range} of a ${data.length}-byte blob`, {
        'content-range': `bytes */${data.length}`
      })
      return
    }
    const last = Math.min(end, data.length - 1)
    const part = data.subarray(start, last + 1)
    res.writeHead(206, {
      ...headers,
      'content-length': String(part.length),
      'content-range': `bytes ${start}-${last}/${data.length}`
    })
    res.end(part)
    this.downloads.push({
      entryId: id,
      key: e.key,
      start,
      end: last,
      bytes: part.length,
      ranged: true
    })
  }
}

/**
 * What @actions/cache needs in its environment to use this service: cache service v2 on
 * (ACTIONS_CACHE_SERVICE_V2), its Twirp base (ACTIONS_RESULTS_URL; only the origin counts), the
 * runtime token (ACTIONS_RUNTIME_TOKEN), and a github.com GITHUB_SERVER_URL (any other host
 * counts as GHES, where the library falls back to cache service v1 and ACTIONS_CACHE_URL). In the
 * 'azure' mode also the preload for the blob host's name. The caller adds RUNNER_TEMP (the
 * archive goes there; without it, /home/actions/temp) and GITHUB_WORKSPACE (the tar's root;
 * without it, the cwd), and needs tar and zstd on PATH (without zstd: gzip, another version).
 */
export function cacheEnv(service: FakeCacheService): Record<string, string> {
  return {
    ACTIONS_CACHE_SERVICE_V2: 'True',
    ACTIONS_RESULTS_URL: `${service.url}/`,
    ACTIONS_RUNTIME_TOKEN: service.token,
    GITHUB_SERVER_URL: 'https://github.com',
    ...(service.blobHost === 'azure'
      ? { NODE_OPTIONS: `--import=${pathToFileURL(BLOB_LOOPBACK).href}` }
      : {})
  }
}
