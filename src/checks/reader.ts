import { LineCounter, isMap, isScalar, isSeq, type Node, type Pair } from 'yaml'
import { errorMessage } from '../util/errors.js'
import { parseDuration } from '../util/duration.js'

/** Patterns shared by several sections. */
export const USER_NAME = /^[a-z_][a-z0-9_.-]*\$?$/i
export const UNIT_NAME = /^[\w:.@\\-]+$/
/** Errors shown at most; parsing stops once this many are found. */
export const MAX_ERRORS = 20

export type Entry = { key: Pair<Node, Node | null>; value: Node | null }

/** Walks the YAML document, collecting every error with its line. */
export class Reader {
  private readonly found: { line: number; text: string }[] = []
  constructor(
    private readonly label: string,
    private readonly lines: LineCounter
  ) {}

  line(node: Node | Pair | null | undefined): number | undefined {
    const at = node !== null && node !== undefined && 'range' in node ? node.range?.[0] : undefined
    const k =
      node !== null && node !== undefined && 'key' in node ? (node.key as Node | null) : undefined
    const offset = at ?? k?.range?.[0]
    return offset === undefined ? undefined : this.lines.linePos(offset).line
  }

  error(node: Node | Pair | null | undefined, path: string, message: string): void {
    const line = this.line(node)
    this.found.push({
      line: line ?? 0,
      text: `${this.label}${line !== undefined ? `:${line}` : ''}: ${path}: ${message}`
    })
  }

  /** In file order. */
  get errors(): string[] {
    return [...this.found].sort((a, b) => a.line - b.line).map((e) => e.text)
  }

  /** A mapping with only `keys`; `required` ones must be present. */
  map(
    node: Node | null,
    path: string,
    keys: readonly string[],
    required: readonly string[] = []
  ): Map<string, Entry> | undefined {
    if (!isMap(node)) {
      this.error(
        node,
        path,
        `expected a mapping with keys ${keys.join(', ')}, got ${describe(node)} (allowed keys: ${keys.join(', ')})`
      )
      return undefined
    }
    const out = new Map<string, Entry>()
    for (const pair of node.items) {
      const keyNode = pair.key as Node | null
      const name = isScalar(keyNode) ? String(keyNode.value) : undefined
      if (name === undefined || !keys.includes(name)) {
        const shown = name ?? describe(keyNode)
        const hint = name !== undefined ? closest(name, keys) : undefined
        this.error(
          keyNode ?? node,
          path,
          `unknown key "${shown}"${hint !== undefined ? ` (did you mean "${hint}"?)` : ''} (allowed keys: ${keys.join(', ')})`
        )
        continue
      }
      out.set(name, { key: pair as Pair<Node, Node | null>, value: pair.value as Node | null })
    }
    for (const r of required) {
      if (!out.has(r))
        this.error(node, path, `missing required key "${r}" (allowed keys: ${keys.join(', ')})`)
    }
    return out
  }

  /** A sequence; null (an empty `key:`) is an empty list. */
  seq(node: Node | null, path: string, what: string): Node[] | undefined {
    if (node === null || (isScalar(node) && node.value === null)) return []
    if (!isSeq(node)) {
      this.error(node, path, `expected a list of ${what}, got ${describe(node)}`)
      return undefined
    }
    return node.items as Node[]
  }

  str(node: Node | null, path: string, pattern?: RegExp, what = 'a string'): string | undefined {
    if (
      !isScalar(node) ||
      node.value === null ||
      typeof node.value === 'object' ||
      typeof node.value === 'boolean'
    ) {
      this.error(node, path, `expected ${what}, got ${describe(node)}`)
      return undefined
    }
    const s = String(node.value)
    if (s.trim() === '' || (pattern !== undefined && !pattern.test(s))) {
      this.error(node, path, `"${s}" is not ${what}`)
      return undefined
    }
    return s
  }

  /** A regular expression (matched multi-line against a command's output). */
  regex(node: Node | null, path: string): string | undefined {
    const re = this.str(node, path, undefined, 'a regular expression')
    if (re === undefined) return undefined
    try {
      new RegExp(re, 'm')
      return re
    } catch (err) {
      this.error(node, path, `not a valid regular expression: ${errorMessage(err)}`)
      return undefined
    }
  }

  strList(
    node: Node | null,
    path: string,
    pattern?: RegExp,
    what = 'a string'
  ): { value: string; line?: number }[] {
    const items = this.seq(node, path, `${what}s`) ?? []
    const out: { value: string; line?: number }[] = []
    items.forEach((item, i) => {
      const value = this.str(item, `${path}[${i}]`, pattern, what)
      if (value !== undefined) out.push({ value, line: this.line(item) })
    })
    return out
  }

  duration(node: Node | null, path: string): number | undefined {
    if (isScalar(node) && typeof node.value === 'number') {
      if (node.value > 0) return Math.round(node.value * 1000)
    } else if (isScalar(node) && typeof node.value === 'string') {
      try {
        const ms = parseDuration(node.value, path)
        if (ms > 0) return ms
      } catch {
        // reported below with the line
      }
    }
    this.error(
      node,
      path,
      `${describe(node)} is not a positive duration; use seconds or units ms, s, m, h (e.g. 30s, 5m, 1m30s)`
    )
    return undefined
  }

  number(node: Node | null, path: string): number | undefined {
    if (isScalar(node) && typeof node.value === 'number' && node.value > 0) return node.value
    this.error(node, path, `expected a positive number, got ${describe(node)}`)
    return undefined
  }
}

function describe(node: Node | null | undefined): string {
  if (node === null || node === undefined) return 'nothing'
  if (isMap(node)) return 'a mapping'
  if (isSeq(node)) return 'a list'
  if (isScalar(node)) {
    if (node.value === null) return 'nothing'
    return typeof node.value === 'string'
      ? `"${node.value}"`
      : `${typeof node.value} ${String(node.value)}`
  }
  return 'an alias'
}

/** The allowed key one edit-ish away, for "did you mean" (case or a small typo). */
function closest(name: string, keys: readonly string[]): string | undefined {
  const lower = name.toLowerCase().replace(/[-_]/g, '')
  const exact = keys.find((k) => k.toLowerCase() === lower)
  if (exact !== undefined) return exact
  let best: { key: string; d: number } | undefined
  for (const k of keys) {
    const d = editDistance(lower, k.toLowerCase())
    if (d <= 2 && (best === undefined || d < best.d)) best = { key: k, d }
  }
  return best?.key
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1))
      prev = cur
    }
  }
  return row[b.length]
}

/** What a section parser gets: the reader, where the file is, and how to read a timeout. */
export class SectionContext {
  constructor(
    readonly r: Reader,
    /** How the file is named in results (the label). */
    readonly file: string,
    /** Repository root: e2e script paths are relative to it. */
    readonly root: string,
    /** Require e2e scripts to exist and be executable now (the e2e stage will run). */
    readonly checkScripts: boolean
  ) {}

  /** The declaration's location for a result. */
  at(node: Node | Pair | null | undefined): { file: string; line?: number } {
    return { file: this.file, line: this.r.line(node) }
  }

  /** The entry's `timeout`, else `fallback`. */
  timeoutOf(m: Map<string, Entry>, path: string, fallback: number): number {
    const t = m.get('timeout')
    return t === undefined ? fallback : (this.r.duration(t.value, `${path}.timeout`) ?? fallback)
  }

  /** A key's value node (null when absent or empty). */
  value(m: Map<string, Entry>, key: string): Node | null {
    return m.get(key)?.value ?? null
  }
}

/** One top-level section of the checks file: reads its entry into its stage's part of the config. */
export type SectionParser<Section extends object = object> = (
  s: SectionContext,
  entry: Entry,
  config: Section
) => void
