/**
 * Validates requests against GitHub's own OpenAPI description (@octokit/openapi): the operation
 * must exist for the method and path, path and query parameters must fit their schemas, and the
 * JSON body must satisfy the operation's request schema (required fields, types, enums, lengths,
 * maxItems, anyOf). A small JSON-schema subset, enough for GitHub's REST descriptions.
 *
 * Text limits are checked the way GitHub enforces them: in UTF-8 bytes (it answers 422 to a
 * check run summary of 65,535 characters but more bytes), including the limits the description
 * only states in prose ("The maximum size is 64 KB") and the comment body's 65,536.
 */
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'

type Schema = Record<string, unknown>
interface Parameter {
  name: string
  in: 'path' | 'query' | 'header' | 'cookie'
  required?: boolean
  schema?: Schema
  $ref?: string
}
interface Operation {
  operationId: string
  parameters?: Parameter[]
  requestBody?: { required?: boolean; content?: Record<string, { schema?: Schema }> }
}
interface Spec {
  paths: Record<string, Record<string, Operation>>
  components: Record<string, Record<string, unknown>>
}

export interface MatchedOperation {
  operationId: string
  template: string
  pathParams: Record<string, string>
}

export interface ValidationResult {
  operation?: MatchedOperation
  errors: string[]
}

interface Route {
  method: string
  template: string
  regex: RegExp
  names: string[]
  literals: number
  op: Operation
}

let cached: Spec | undefined

/** Limits GitHub enforces that its description does not state at all, by operation. */
const UNDESCRIBED_LIMITS: Record<string, { field: string; maxBytes: number }[]> = {
  'issues/create-comment': [{ field: 'body', maxBytes: 65_536 }],
  'issues/update-comment': [{ field: 'body', maxBytes: 65_536 }]
}

/** A string field's limit in bytes: its maxLength, or the one its description states. */
function byteLimit(schema: Schema): number | undefined {
  if (typeof schema.maxLength === 'number') return schema.maxLength
  const m = /maximum size is (\d+) (KB|characters)/i.exec(String(schema.description ?? ''))
  if (m === null) return undefined
  // 64 KB as GitHub applies it to check run text: 65,535 bytes.
  return m[2].toUpperCase() === 'KB' ? Number(m[1]) * 1024 - 1 : Number(m[1])
}

function utf8Overflow(value: string, maxBytes: number, at: string): string | undefined {
  const bytes = Buffer.byteLength(value)
  return bytes > maxBytes
    ? `${at}: ${bytes} bytes of UTF-8 (${value.length} characters), GitHub's limit is ${maxBytes} bytes`
    : undefined
}

/** GitHub's api.github.com description as shipped by @octokit/openapi. */
export function loadGitHubSpec(): Spec {
  if (cached !== undefined) return cached
  const require = createRequire(import.meta.url)
  const pkg = require.resolve('@octokit/openapi/package.json')
  cached = JSON.parse(
    readFileSync(join(dirname(pkg), 'generated', 'api.github.com.json'), 'utf8')
  ) as Spec
  return cached
}

export class OpenApiValidator {
  private readonly routes: Route[] = []

  constructor(private readonly spec: Spec = loadGitHubSpec()) {
    for (const [template, item] of Object.entries(spec.paths)) {
      for (const [method, op] of Object.entries(item)) {
        if (typeof op !== 'object' || op === null || !('operationId' in op)) continue
        const names: string[] = []
        const segs = template.split('/')
        const pattern = segs
          .map((s) => {
            const m = /^\{(.+)\}$/.exec(s)
            if (m !== null) {
              names.push(m[1])
              return '([^/]+)'
            }
            return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
          })
          .join('/')
        this.routes.push({
          method: method.toUpperCase(),
          template,
          regex: new RegExp(`^${pattern}$`),
          names,
          literals: segs.filter((s) => !s.startsWith('{')).length,
          op
        })
      }
    }
  }

  /** The operation for a method and path; literal segments win over parameters. */
  match(
    method: string,
    path: string
  ): { route: Route; pathParams: Record<string, string> } | undefined {
    let best: { route: Route; pathParams: Record<string, string> } | undefined
    for (const route of this.routes) {
      if (route.method !== method.toUpperCase()) continue
      const m = route.regex.exec(path)
      if (m === null) continue
      if (best !== undefined && best.route.literals >= route.literals) continue
      const pathParams: Record<string, string> = {}
      route.names.forEach((n, i) => (pathParams[n] = decodeURIComponent(m[i + 1])))
      best = { route, pathParams }
    }
    return best
  }

  validate(method: string, path: string, query: URLSearchParams, body: unknown): ValidationResult {
    const hit = this.match(method, path)
    if (hit === undefined)
      return { errors: [`${method} ${path}: no such operation in GitHub's OpenAPI description`] }
    const { route, pathParams } = hit
    const op = route.op
    const where = `${op.operationId} (${method} ${route.template})`
    const errors: string[] = []
    const params = (op.parameters ?? []).map((p) => this.deref<Parameter>(p))
    for (const p of params) {
      if (p.in === 'path') {
        const v = pathParams[p.name]
        if (v === undefined) errors.push(`${where}: path parameter ${p.name} missing`)
        else if (p.schema !== undefined)
          this.check(p.schema, coerce(v, p.schema), `path.${p.name}`, errors)
      } else if (p.in === 'query') {
        const v = query.get(p.name)
        if (v === null) {
          if (p.required === true) errors.push(`${where}: query parameter ${p.name} is required`)
        } else if (p.schema !== undefined)
          this.check(p.schema, coerce(v, p.schema), `query.${p.name}`, errors)
      }
    }
    for (const name of query.keys()) {
      if (!params.some((p) => p.in === 'query' && p.name === name))
        errors.push(`${where}: unknown query parameter ${name}`)
    }
    const rb = op.requestBody
    const schema = rb?.content?.['application/json']?.schema
    if (body === undefined) {
      if (rb?.required === true) errors.push(`${where}: a JSON body is required`)
    } else if (schema === undefined) {
      errors.push(`${where}: takes no JSON body`)
    } else {
      this.check(schema, body, 'body', errors)
      for (const l of UNDESCRIBED_LIMITS[op.operationId] ?? []) {
        const v = (body as Record<string, unknown> | null)?.[l.field]
        const e = typeof v === 'string' ? utf8Overflow(v, l.maxBytes, `body.${l.field}`) : undefined
        if (e !== undefined) errors.push(e)
      }
    }
    return {
      operation: { operationId: op.operationId, template: route.template, pathParams },
      errors: errors.map((e) => (e.startsWith(where) ? e : `${where}: ${e}`))
    }
  }

  private deref<T>(x: unknown): T {
    let cur = x as { $ref?: string }
    for (
      let i = 0;
      i < 20 && typeof cur === 'object' && cur !== null && typeof cur.$ref === 'string';
      i++
    ) {
      const parts = cur.$ref.replace(/^#\//, '').split('/')
      let node: unknown = this.spec
      for (const part of parts)
        node = (node as Record<string, unknown>)[part.replace(/~1/g, '/').replace(/~0/g, '~')]
      cur = node as { $ref?: string }
    }
    return cur as T
  }

  /** Appends to `errors` every way `value` breaks `schema` (at JSON path `at`). */
  check(schemaIn: Schema, value: unknown, at: string, errors: string[]): void {
    const schema = this.deref<Schema>(schemaIn)
    if (Array.isArray(schema.allOf))
      for (const s of schema.allOf as Schema[]) this.check(s, value, at, errors)
    if (Array.isArray(schema.anyOf)) {
      const ok = (schema.anyOf as Schema[]).some((s) => this.errorsOf(s, value, at).length === 0)
      if (!ok)
        errors.push(
          `${at}: matches none of anyOf (${(schema.anyOf as Schema[]).map((s) => this.errorsOf(s, value, at).join('; ')).join(' | ')})`
        )
    }
    if (Array.isArray(schema.oneOf)) {
      const n = (schema.oneOf as Schema[]).filter(
        (s) => this.errorsOf(s, value, at).length === 0
      ).length
      if (n !== 1) errors.push(`${at}: matches ${n} of oneOf, needs exactly 1`)
    }
    if (value === null) {
      const types = typeList(schema.type)
      if (schema.nullable !== true && !types.includes('null') && types.length > 0)
        errors.push(`${at}: null is not allowed`)
      return
    }
    const types = typeList(schema.type)
    if (types.length > 0 && !types.some((t) => isType(value, t))) {
      errors.push(
        `${at}: expected ${types.join(' or ')}, got ${Array.isArray(value) ? 'array' : typeof value} ${JSON.stringify(value)?.slice(0, 60)}`
      )
      return
    }
    if (Array.isArray(schema.enum) && !(schema.enum as unknown[]).includes(value)) {
      errors.push(`${at}: ${JSON.stringify(value)} is not one of ${JSON.stringify(schema.enum)}`)
    }
    if (typeof value === 'string') {
      const maxBytes = byteLimit(schema)
      if (typeof schema.maxLength === 'number' && value.length > schema.maxLength)
        errors.push(`${at}: ${value.length} characters, maxLength ${schema.maxLength}`)
      else if (maxBytes !== undefined) {
        const e = utf8Overflow(value, maxBytes, at)
        if (e !== undefined) errors.push(e)
      }
      if (typeof schema.minLength === 'number' && value.length < schema.minLength)
        errors.push(`${at}: ${value.length} characters, minLength ${schema.minLength}`)
      if (schema.format === 'date-time' && Number.isNaN(Date.parse(value)))
        errors.push(`${at}: "${value}" is not a date-time`)
    }
    if (Array.isArray(value)) {
      if (typeof schema.maxItems === 'number' && value.length > schema.maxItems)
        errors.push(`${at}: ${value.length} items, maxItems ${schema.maxItems}`)
      if (typeof schema.minItems === 'number' && value.length < schema.minItems)
        errors.push(`${at}: ${value.length} items, minItems ${schema.minItems}`)
      if (schema.items !== undefined)
        value.forEach((v, i) => this.check(schema.items as Schema, v, `${at}[${i}]`, errors))
    } else if (typeof value === 'object') {
      const obj = value as Record<string, unknown>
      for (const r of (schema.required as string[] | undefined) ?? []) {
        if (!(r in obj)) errors.push(`${at}: required property "${r}" missing`)
      }
      const props = (schema.properties as Record<string, Schema> | undefined) ?? {}
      for (const [k, v] of Object.entries(obj)) {
        if (k in props) this.check(props[k], v, `${at}.${k}`, errors)
        else if (schema.additionalProperties === false)
          errors.push(`${at}: unknown property "${k}"`)
      }
    }
  }

  private errorsOf(schema: Schema, value: unknown, at: string): string[] {
    const e: string[] = []
    this.check(schema, value, at, e)
    return e
  }
}

function typeList(t: unknown): string[] {
  if (Array.isArray(t)) return t as string[]
  return typeof t === 'string' ? [t] : []
}

function isType(v: unknown, t: string): boolean {
  switch (t) {
    case 'string':
      return typeof v === 'string'
    case 'integer':
      return typeof v === 'number' && Number.isInteger(v)
    case 'number':
      return typeof v === 'number'
    case 'boolean':
      return typeof v === 'boolean'
    case 'array':
      return Array.isArray(v)
    case 'object':
      return typeof v === 'object' && v !== null && !Array.isArray(v)
    case 'null':
      return v === null
    default:
      return true
  }
}

/** Path and query values arrive as text: read them as the schema's type. */
function coerce(v: string, schema: Schema): unknown {
  const types = typeList(schema.type)
  if ((types.includes('integer') || types.includes('number')) && /^-?\d+(\.\d+)?$/.test(v))
    return Number(v)
  if (types.includes('boolean') && (v === 'true' || v === 'false')) return v === 'true'
  return v
}
