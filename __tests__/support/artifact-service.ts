/**
 * A loopback Actions artifact service, the part @actions/artifact (v2+ API) talks to: the Twirp
 * JSON endpoints CreateArtifact / FinalizeArtifact under ACTIONS_RESULTS_URL, and the signed blob
 * URL it hands out, served by the same server the way Azure Blob Storage takes a block blob
 * (`comp=block` parts then `comp=blocklist`, or one PUT).
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
}

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
        files: []
      })
      const signed = `${this.base}/devstoreaccount1/artifacts/${encodeURIComponent(name)}.zip?sv=2023-01-03&se=2099-01-01&sig=fakesig`
      json(200, { ok: true, signed_upload_url: signed })
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
    json(404, { code: 'bad_route', msg: `no method ${method}` })
  }

  private blob(url: URL, raw: Buffer, req: IncomingMessage, res: ServerResponse): void {
    const name = decodeURIComponent(
      url.pathname.replace('/devstoreaccount1/artifacts/', '').replace(/\.zip$/, '')
    )
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
