/**
 * A loopback Actions artifact service, the part @actions/artifact (v2+ API) talks to: the Twirp
 * JSON endpoints CreateArtifact / FinalizeArtifact / ListArtifacts / GetSignedArtifactURL under
 * ACTIONS_RESULTS_URL, and the signed blob URL it hands out, served by the same server the way
 * Azure Blob Storage takes a block blob (`comp=block` parts then `comp=blocklist`, or one PUT) and
 * gives it back (GET). A request field the v6 client does not send is an error.
 */
import { createHash } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { LoopbackServer } from './loopback.js'

const TWIRP = '/twirp/github.actions.results.api.v1.ArtifactService/'
export const RUN_BACKEND_ID = 'a1b2c3d4-0000-4000-8000-000000000001'
export const JOB_BACKEND_ID = 'a1b2c3d4-0000-4000-8000-000000000002'

export interface StoredArtifact {
  id: number
  name: string
  createRequest: Record<string, unknown>
  finalizeRequest?: Record<string, unknown>
  data?: Buffer
  blockPuts: number
  /** Names inside the uploaded zip. */
  files: string[]
  createdAt: Date
}

/** The fields each Twirp request may carry (proto names, as the client's toJson writes them). */
const REQUEST_FIELDS: Record<string, string[]> = {
  CreateArtifact: ['name', 'expires_at', 'version', 'mime_type'],
  FinalizeArtifact: ['name', 'size', 'hash'],
  ListArtifacts: ['name_filter', 'id_filter'],
  GetSignedArtifactURL: ['name']
}
const BACKEND_IDS = ['workflow_run_backend_id', 'workflow_job_run_backend_id']

/** An unsigned JWT whose `scp` claim carries the backend ids, as the runner's token does. */
export function runtimeToken(): string {
  const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url')
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ scp: `Actions.ExampleScope Actions.Results:${RUN_BACKEND_ID}:${JOB_BACKEND_ID}` })}.sig`
}

export class FakeArtifactService extends LoopbackServer {
  readonly artifacts = new Map<string, StoredArtifact>()
  readonly errors: string[] = []
  private nextId = 4242
  private readonly blocks = new Map<string, Map<string, Buffer>>()

  get url(): string {
    return this.base
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.base)
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    const raw = Buffer.concat(chunks)
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' })
      res.end(JSON.stringify(body))
    }
    try {
      if (req.method === 'POST' && url.pathname.startsWith(TWIRP)) {
        if (req.headers.authorization !== `Bearer ${runtimeToken()}`) {
          this.errors.push(
            `twirp call without the runtime token: ${req.headers.authorization ?? 'none'}`
          )
          json(401, { code: 'unauthenticated', msg: 'bad token' })
          return
        }
        const body = JSON.parse(raw.toString('utf8')) as Record<string, unknown>
        this.twirp(url.pathname.slice(TWIRP.length), body, json)
        return
      }
      if (req.method === 'PUT' && url.pathname.startsWith('/devstoreaccount1/artifacts/')) {
        this.blob(url, raw, req, res)
        return
      }
      if (req.method === 'GET' && url.pathname.startsWith('/devstoreaccount1/artifacts/')) {
        this.download(url, res)
        return
      }
      json(404, { msg: `not implemented by the fake: ${req.method} ${url.pathname}` })
    } catch (err) {
      this.errors.push(String(err))
      json(500, { msg: String(err) })
    }
  }

  private twirp(
    method: string,
    body: Record<string, unknown>,
    json: (s: number, b: unknown) => void
  ): void {
    const allowed = REQUEST_FIELDS[method]
    if (allowed === undefined) {
      json(404, { code: 'bad_route', msg: `no method ${method}` })
      return
    }
    const unknown = Object.keys(body).filter(
      (k) => !allowed.includes(k) && !BACKEND_IDS.includes(k)
    )
    if (unknown.length > 0) {
      this.errors.push(`${method}: unknown request fields ${unknown.join(', ')}`)
      json(400, { code: 'malformed', msg: `unknown fields ${unknown.join(', ')}` })
      return
    }
    const name = String(body.name ?? '')
    for (const [k, want] of [
      ['workflow_run_backend_id', RUN_BACKEND_ID],
      ['workflow_job_run_backend_id', JOB_BACKEND_ID]
    ]) {
      if (body[k] !== want)
        this.errors.push(`${method}: ${k} is ${JSON.stringify(body[k])}, expected ${want}`)
    }
    if (method === 'CreateArtifact') {
      if (this.artifacts.has(name)) {
        json(409, {
          code: 'already_exists',
          msg: 'an artifact with this name already exists on the workflow run'
        })
        return
      }
      this.artifacts.set(name, {
        id: this.nextId++,
        name,
        createRequest: body,
        blockPuts: 0,
        files: [],
        createdAt: new Date()
      })
      json(200, { ok: true, signed_upload_url: this.signedUrl(name) })
      return
    }
    if (method === 'FinalizeArtifact') {
      const a = this.artifacts.get(name)
      if (a === undefined || a.data === undefined) {
        json(404, { code: 'not_found', msg: 'no uploaded artifact of that name' })
        return
      }
      a.finalizeRequest = body
      const hash = (body.hash as string | undefined) ?? ''
      const actual = `sha256:${createHash('sha256').update(a.data).digest('hex')}`
      if (hash !== '' && hash !== actual)
        this.errors.push(`FinalizeArtifact: hash ${hash} but the blob is ${actual}`)
      if (String(body.size) !== String(a.data.length))
        this.errors.push(
          `FinalizeArtifact: size ${String(body.size)} but the blob has ${a.data.length} bytes`
        )
      a.files = zipEntries(a.data)
      json(200, { ok: true, artifact_id: String(a.id) })
      return
    }
    if (method === 'ListArtifacts') {
      json(200, { artifacts: this.list(body) })
      return
    }
    const a = this.artifacts.get(name)
    if (a?.finalizeRequest === undefined) {
      json(404, { code: 'not_found', msg: `no finalized artifact named ${name}` })
      return
    }
    json(200, { signed_url: this.signedUrl(name) })
  }

  private signedUrl(name: string): string {
    return `${this.base}/devstoreaccount1/artifacts/${encodeURIComponent(name)}.zip?sv=2023-01-03&se=2099-01-01&sig=fakesig`
  }

  /** ListArtifacts: the finalized artifacts of the run, filtered by name or id as asked. */
  private list(body: Record<string, unknown>): Record<string, unknown>[] {
    return [...this.artifacts.values()]
      .filter((a) => a.finalizeRequest !== undefined && a.data !== undefined)
      .filter((a) => body.name_filter === undefined || a.name === body.name_filter)
      .filter((a) => body.id_filter === undefined || String(a.id) === String(body.id_filter))
      .map((a) => ({
        workflow_run_backend_id: RUN_BACKEND_ID,
        workflow_job_run_backend_id: JOB_BACKEND_ID,
        database_id: String(a.id),
        name: a.name,
        size: String(a.data?.length ?? 0),
        created_at: a.createdAt.toISOString(),
        digest: `sha256:${createHash('sha256')
          .update(a.data ?? Buffer.alloc(0))
          .digest('hex')}`
      }))
  }

  /**
   * An artifact stored as if a job had uploaded it (a zip made elsewhere): listed and downloaded
   * like one the client uploaded.
   */
  store(name: string, zip: Buffer): StoredArtifact {
    const a: StoredArtifact = {
      id: this.nextId++,
      name,
      createRequest: { name },
      finalizeRequest: { name, size: String(zip.length) },
      data: zip,
      blockPuts: 0,
      files: zipEntries(zip),
      createdAt: new Date()
    }
    this.artifacts.set(name, a)
    return a
  }

  /** The GET of a signed download URL: the stored zip, as Blob Storage serves it. */
  private download(url: URL, res: ServerResponse): void {
    const a = this.artifacts.get(blobName(url))
    if (a?.data === undefined || url.searchParams.get('sig') !== 'fakesig') {
      this.errors.push(`blob GET of ${url.pathname} refused (unknown artifact or unsigned URL)`)
      res.writeHead(a === undefined ? 404 : 403)
      res.end()
      return
    }
    res.writeHead(200, {
      'content-type': 'application/zip',
      'content-length': String(a.data.length),
      'x-ms-blob-type': 'BlockBlob'
    })
    res.end(a.data)
  }

  private blob(url: URL, raw: Buffer, req: IncomingMessage, res: ServerResponse): void {
    const name = blobName(url)
    const a = this.artifacts.get(name)
    const created = (): void => {
      res.writeHead(201, {
        etag: '"0x1"',
        'last-modified': new Date().toUTCString(),
        'x-ms-request-id': 'fake',
        'x-ms-version': '2023-01-03',
        'x-ms-request-server-encrypted': 'true'
      })
      res.end()
    }
    if (a === undefined || url.searchParams.get('sig') !== 'fakesig') {
      res.writeHead(403)
      res.end()
      return
    }
    const comp = url.searchParams.get('comp')
    if (comp === 'block') {
      const id = url.searchParams.get('blockid') ?? ''
      const m = this.blocks.get(name) ?? new Map<string, Buffer>()
      m.set(id, raw)
      this.blocks.set(name, m)
      a.blockPuts++
      created()
      return
    }
    if (comp === 'blocklist') {
      const ids = [
        ...raw.toString('utf8').matchAll(/<(?:Latest|Uncommitted|Committed)>([^<]*)<\//g)
      ].map((m) => m[1])
      const m = this.blocks.get(name) ?? new Map<string, Buffer>()
      const parts = ids.map((id) => {
        const b = m.get(id)
        if (b === undefined) throw new Error(`blocklist names block ${id} that was never put`)
        return b
      })
      a.data = Buffer.concat(parts)
      created()
      return
    }
    if (req.headers['x-ms-blob-type'] === 'BlockBlob') {
      a.data = raw
      a.blockPuts++
      created()
      return
    }
    res.writeHead(400)
    res.end()
  }
}

/** The artifact a blob URL names. */
function blobName(url: URL): string {
  return decodeURIComponent(
    url.pathname.replace('/devstoreaccount1/artifacts/', '').replace(/\.zip$/, '')
  )
}

/** File names in a zip's central directory. */
export function zipEntries(zip: Buffer): string[] {
  let eocd = -1
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 65_557); i--) {
    if (zip.readUInt32LE(i) === 0x06054b50) {
      eocd = i
      break
    }
  }
  if (eocd < 0) throw new Error('not a zip: no end of central directory')
  const count = zip.readUInt16LE(eocd + 10)
  let p = zip.readUInt32LE(eocd + 16)
  const names: string[] = []
  for (let i = 0; i < count; i++) {
    if (zip.readUInt32LE(p) !== 0x02014b50) throw new Error('bad central directory entry')
    const nameLen = zip.readUInt16LE(p + 28)
    const extraLen = zip.readUInt16LE(p + 30)
    const commentLen = zip.readUInt16LE(p + 32)
    names.push(zip.subarray(p + 46, p + 46 + nameLen).toString('utf8'))
    p += 46 + nameLen + extraLen + commentLen
  }
  return names.sort()
}
