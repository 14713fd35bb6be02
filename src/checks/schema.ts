import { LineCounter, isScalar, parseDocument, type Node } from 'yaml'
import { InputError } from '../util/errors.js'
import { MAX_ERRORS, Reader, SectionContext, type SectionParser } from './reader.js'
import type { ChecksFile } from './model.js'
import { DEFAULT_TIMEOUTS, STAGE_UNITS, type ChecksConfig } from './registry.js'

export { DEFAULT_TIMEOUTS }

/**
 * `derived: { exclude: [...] }`: the checks derived from the flake's configuration that this
 * file turns off, by check name or option path (docs/derived-checks.md). The one section that
 * belongs to no stage.
 */
const parseDerived: SectionParser<ChecksFile> = (s, { key, value }, config) => {
  const m = s.r.map(value, 'derived', ['exclude'])
  if (m === undefined) return
  const exclude = m.has('exclude')
    ? s.r.strList(
        s.value(m, 'exclude'),
        'derived.exclude',
        /^\S(.*\S)?$/,
        'a check name or option path'
      )
    : []
  config.derived = {
    ...s.at(key),
    exclude: exclude.map((e) => ({ name: e.value, file: s.file, line: e.line }))
  }
}

const FILE_SECTIONS: Record<string, SectionParser<ChecksConfig>> = { derived: parseDerived }

/** Top-level sections of a checks file (every one optional), each owned by its stage. */
export const SECTIONS: readonly string[] = [
  ...STAGE_UNITS.flatMap((u) => Object.keys(u.sections)),
  ...Object.keys(FILE_SECTIONS)
]

const PARSERS = new Map<string, SectionParser<ChecksConfig>>([
  ...STAGE_UNITS.flatMap((u) => Object.entries(u.sections)),
  ...Object.entries(FILE_SECTIONS)
])

export interface ParseOptions {
  /** Absolute path (recorded in the config). */
  source?: string
  /** How messages and annotations name the file. */
  label: string
  /** Repository root: e2e script paths are relative to it. */
  root: string
  /** Require e2e scripts to exist and be executable now (the e2e stage will run). */
  checkScripts?: boolean
}

/** YAML syntax errors, each with its line and column. */
function syntaxError(
  doc: ReturnType<typeof parseDocument>,
  lines: LineCounter,
  label: string
): InputError {
  const msgs = doc.errors.slice(0, MAX_ERRORS).map((e) => {
    const pos = e.linePos?.[0] ?? lines.linePos(e.pos[0])
    return `${label}${pos !== undefined ? `:${pos.line}:${pos.col}` : ''}: YAML syntax: ${e.message.split('\n')[0]}`
  })
  return new InputError(msgs.join('\n'))
}

/** The config of a file without sections: what each stage runs without its section. */
function baseConfig(o: ParseOptions): ChecksConfig {
  return Object.assign(
    { source: o.source, label: o.label },
    ...STAGE_UNITS.map((u) => u.fileBase())
  ) as ChecksConfig
}

/**
 * Parses and validates a checks file. Every error names `label:LINE`, the key path and the
 * allowed keys; all errors are reported at once in one InputError.
 * Sections the file leaves out are not checked, except `system` and `performance`: they name
 * nothing guest-specific, so they run with their defaults (performance then only records).
 * Each section is read by its stage module (registry.ts).
 */
export function parseChecks(text: string, o: ParseOptions): ChecksConfig {
  const lines = new LineCounter()
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true })
  if (doc.errors.length > 0) throw syntaxError(doc, lines, o.label)
  const r = new Reader(o.label, lines)
  const config = baseConfig(o)
  const root = doc.contents as Node | null
  if (root === null || (isScalar(root) && root.value === null)) return config
  const top = r.map(root, '(top level)', SECTIONS)
  if (top === undefined) throw new InputError(r.errors.join('\n'))
  const s = new SectionContext(r, o.label, o.root, o.checkScripts === true)
  for (const [section, entry] of top) {
    PARSERS.get(section)?.(s, entry, config)
    if (r.errors.length >= MAX_ERRORS) break
  }
  if (r.errors.length > 0) {
    const shown = r.errors.slice(0, MAX_ERRORS)
    throw new InputError(
      shown.join('\n') +
        (r.errors.length > MAX_ERRORS ? `\n… ${r.errors.length - MAX_ERRORS} more` : '')
    )
  }
  return config
}
