/**
 * A loopback GitHub REST API (node:http) for the action's integration tests: check runs and
 * issue comments, each request checked against GitHub's OpenAPI description first. A request
 * that breaks the description (a text field past GitHub's limit in UTF-8 bytes included) is
 * answered 422, as GitHub does, and kept in `violations`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { LoopbackServer } from './loopback.js'
import { OpenApiValidator } from './openapi.js'

export interface RecordedRequest {
  method: string
  path: string
  query: Record<string, string>
  body: unknown
  operationId?: string
  authorization?: string
  errors: string[]
  status: number
  at: number
}

export interface FakeCheckRun {
  id: number
  name: string
  head_sha: string
  status: string
  conclusion?: string
  external_id?: string
  details_url?: string
  output?: { title?: string; summary?: string; text?: string }
  annotations: Record<string, unknown>[]
  /** Every status the run went through, in order. */
  history: string[]
}

export interface FakeComment {
  id: number
  body: string
}

export interface FakeGitHubOptions {
  /** Answer POST check-runs with this status (403: a fork PR's read-only token). */
  failCheckRunCreate?: number
  /** Comments already on the PR (for the sticky-comment lookup across pages). */
  comments?: FakeComment[]
  /** Answer this many check run completions (PATCH with a conclusion) 422, valid or not. */
  refuseCompletions?: number
}

export class FakeGitHubApi extends LoopbackServer {
  readonly requests: RecordedRequest[] = []
  readonly checkRuns = new Map<number, FakeCheckRun>()
  readonly comments: FakeComment[]
  private nextId = 9000
  private refusals: number

  constructor(
    private readonly options: FakeGitHubOptions = {},
    private readonly validator = new OpenApiValidator()
  ) {
    super()
    this.comments = [...(options.comments ?? [])]
    this.refusals = options.refuseCompletions ?? 0
  }

  get url(): string {
    return this.base
  }

  /** Requests that broke GitHub's OpenAPI description. */
  get violations(): RecordedRequest[] {
    return this.requests.filter((r) => r.errors.length > 0)
  }

  operations(): string[] {
    return this.requests.map((r) => r.operationId ?? `${r.method} ${r.path}`)
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.base)
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    const raw = Buffer.concat(chunks).toString('utf8')
    let body: unknown
    const errors: string[] = []
    if (raw !== '') {
      try {
        body = JSON.parse(raw)
      } catch {
        errors.push(`body is not JSON: ${raw.slice(0, 80)}`)
      }
    }
    const method = req.method ?? 'GET'
    const v = this.validator.validate(method, url.pathname, url.searchParams, body)
    errors.push(...v.errors)
    const rec: RecordedRequest = {
      method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      body,
      operationId: v.operation?.operationId,
      authorization: req.headers.authorization,
      errors,
      status: 0,
      at: Date.now()
    }
    this.requests.push(rec)
    const send = (status: number, payload: unknown, headers: Record<string, string> = {}): void => {
      rec.status = status
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers })
      res.end(JSON.stringify(payload))
    }
    if (errors.length > 0) {
      send(422, {
        message: 'Validation Failed',
        errors: errors.map((e) => ({ message: e })),
        documentation_url: 'https://docs.github.com/rest'
      })
      return
    }
    const b = (body ?? {}) as Record<string, unknown>
    const p = v.operation?.pathParams ?? {}
    switch (v.operation?.operationId) {
      case 'checks/create': {
        if (this.options.failCheckRunCreate !== undefined) {
          send(this.options.failCheckRunCreate, {
            message: 'Resource not accessible by integration',
            documentation_url: 'https://docs.github.com/rest/checks/runs#create-a-check-run',
            status: String(this.options.failCheckRunCreate)
          })
          return
        }
        const id = this.nextId++
        const output = b.output as FakeCheckRun['output'] & {
          annotations?: Record<string, unknown>[]
        }
        const run: FakeCheckRun = {
          id,
          name: String(b.name),
          head_sha: String(b.head_sha),
          status: String(b.conclusion !== undefined ? 'completed' : (b.status ?? 'queued')),
          conclusion: b.conclusion as string | undefined,
          external_id: b.external_id as string | undefined,
          details_url: b.details_url as string | undefined,
          output,
          annotations: [...(output?.annotations ?? [])],
          history: [String(b.status ?? 'queued')]
        }
        this.checkRuns.set(id, run)
        send(201, {
          id,
          name: run.name,
          head_sha: run.head_sha,
          status: run.status,
          conclusion: run.conclusion ?? null,
          external_id: run.external_id ?? null
        })
        return
      }
      case 'checks/update': {
        const run = this.checkRuns.get(Number(p.check_run_id))
        if (run === undefined) {
          send(404, { message: 'Not Found' })
          return
        }
        if (b.conclusion !== undefined && this.refusals > 0) {
          this.refusals--
          send(422, {
            message: 'Invalid request.\n\nOnly 65535 characters are allowed; 65586 were supplied.',
            documentation_url: 'https://docs.github.com/rest/checks/runs#update-a-check-run',
            status: '422'
          })
          return
        }
        if (b.conclusion !== undefined) {
          run.conclusion = String(b.conclusion)
          run.status = 'completed'
        } else if (typeof b.status === 'string') run.status = b.status
        run.history.push(run.status)
        const output = b.output as
          (FakeCheckRun['output'] & { annotations?: Record<string, unknown>[] }) | undefined
        if (output !== undefined) {
          run.output = { title: output.title, summary: output.summary, text: output.text }
          run.annotations.push(...(output.annotations ?? []))
        }
        send(200, { id: run.id, status: run.status, conclusion: run.conclusion ?? null })
        return
      }
      case 'issues/list-comments': {
        const perPage = Number(url.searchParams.get('per_page') ?? '30')
        const page = Number(url.searchParams.get('page') ?? '1')
        const slice = this.comments.slice((page - 1) * perPage, page * perPage)
        const last = Math.max(1, Math.ceil(this.comments.length / perPage))
        const headers: Record<string, string> = {}
        if (page < last) {
          const next = new URL(url.pathname, this.base)
          next.searchParams.set('per_page', String(perPage))
          next.searchParams.set('page', String(page + 1))
          headers.link = `<${next.href}>; rel="next"`
        }
        send(
          200,
          slice.map((c) => ({ id: c.id, body: c.body })),
          headers
        )
        return
      }
      case 'issues/create-comment': {
        const c = { id: this.nextId++, body: String(b.body) }
        this.comments.push(c)
        send(201, c)
        return
      }
      case 'issues/update-comment': {
        const c = this.comments.find((x) => x.id === Number(p.comment_id))
        if (c === undefined) {
          send(404, { message: 'Not Found' })
          return
        }
        c.body = String(b.body)
        send(200, c)
        return
      }
      default:
        send(404, {
          message: `not implemented by the fake: ${v.operation?.operationId ?? url.pathname}`
        })
    }
  }
}
