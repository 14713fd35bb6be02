import { existsSync, readFileSync } from 'node:fs'
import { isAbsolute, join, relative, sep } from 'node:path'

/** A source position Nix printed. */
export interface NixPosition {
  /** As printed: /nix/store/<hash>-source/machines/vm.nix, /abs/file.nix, «string». */
  raw: string
  /** The store path of the source tree (for store positions). */
  storeRoot?: string
  /** Path inside that tree (store) or the absolute path (non-store). */
  subpath: string
  line?: number
  column?: number
  /** Offset in the log, to tell the error's own position from trace frames. */
  index: number
}

export interface NixErrorSummary {
  /** The innermost error message (first line). */
  message: string
  /** The lines a person reads first: the last error with its position and code frame. */
  excerpt: string
  /** Repository-relative file when the error is in the user's repository. */
  file?: string
  line?: number
  column?: number
  /** Where the chosen position is: the user's repository, our wrapper expression, or elsewhere. */
  where?: 'repo' | 'wrapper' | 'elsewhere'
}

export interface MapContext {
  /**
   * Directories a `/nix/store/…-source/<sub>` tree can be a copy of: the flake directory, and the
   * git work tree around it (a git flake in a subdirectory is copied whole).
   */
  roots: string[]
  /** File names are reported relative to this (the repository, else the flake directory). */
  repoRoot: string
  /** Reads a file; undefined when missing (tests pass a map). */
  readFile?: (path: string) => string | undefined
}

const STORE_POS = /(\/nix\/store\/[0-9a-z]{32}-[^/\s:'"`]+)(\/[^\s:'"`]*)?(?::(\d+)(?::(\d+))?)?/g
const ABS_POS = /(?<![\w/.-])(\/(?!nix\/store\/)[^\s:'"`«»]+\.nix)(?::(\d+)(?::(\d+))?)?/g
const STRING_POS = /(?:«string»|\(string\)):(\d+):(\d+)/g

/** Every position in the log, in order. */
export function findPositions(log: string): NixPosition[] {
  const found: NixPosition[] = []
  for (const m of log.matchAll(STORE_POS)) {
    const sub = m[2] ?? ''
    // A derivation or a store object that is no source file (…-nixos-vm.drv) is not a position.
    if (!sub.endsWith('.nix') && m[3] === undefined) continue
    found.push({
      raw: m[0],
      storeRoot: m[1],
      subpath: sub.replace(/^\//, ''),
      ...(m[3] !== undefined ? { line: Number(m[3]) } : {}),
      ...(m[4] !== undefined ? { column: Number(m[4]) } : {}),
      index: m.index ?? 0
    })
  }
  for (const m of log.matchAll(ABS_POS)) {
    found.push({
      raw: m[0],
      subpath: m[1],
      ...(m[2] !== undefined ? { line: Number(m[2]) } : {}),
      ...(m[3] !== undefined ? { column: Number(m[3]) } : {}),
      index: m.index ?? 0
    })
  }
  for (const m of log.matchAll(STRING_POS)) {
    found.push({
      raw: m[0],
      subpath: '«string»',
      line: Number(m[1]),
      column: Number(m[2]),
      index: m.index ?? 0
    })
  }
  return found.sort((a, b) => a.index - b.index)
}

function defaultRead(path: string): string | undefined {
  try {
    return existsSync(path) ? readFileSync(path, 'utf8') : undefined
  } catch {
    return undefined
  }
}

function inside(root: string, path: string): boolean {
  const rel = relative(root, path)
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel)
}

/**
 * The repository file a position names, or undefined. A store tree is matched to a root when the
 * file exists there, preferring a root whose file has the same content as the store's copy (two
 * trees can both be called `-source`: the user's flake and nixpkgs).
 */
export function mapPosition(pos: NixPosition, ctx: MapContext): string | undefined {
  const read = ctx.readFile ?? defaultRead
  if (pos.subpath === '«string»') return undefined
  if (pos.storeRoot === undefined) {
    return inside(ctx.repoRoot, pos.subpath)
      ? relative(ctx.repoRoot, pos.subpath).split(sep).join('/')
      : undefined
  }
  if (pos.subpath === '') return undefined
  const stored = read(`${pos.storeRoot}/${pos.subpath}`)
  const candidates = ctx.roots
    .map((root) => join(root, pos.subpath))
    .filter((p) => inside(ctx.repoRoot, p))
    .map((p) => ({ p, text: read(p) }))
    .filter((c) => c.text !== undefined)
  const same = candidates.find((c) => stored !== undefined && c.text === stored)
  // Without the store copy (collected), the file's existence has to do.
  const chosen = same ?? (stored === undefined ? candidates[0] : undefined)
  if (chosen === undefined) return undefined
  return relative(ctx.repoRoot, chosen.p).split(sep).join('/')
}

const ERROR_LINE = /^\s*error:(?!\s*\(ignored\))/

/**
 * Summarises a failed `nix build`: the innermost error (Nix 2.8 prints it first, current Nix
 * last, after the trace), and the first position in the user's repository — the error's own
 * position when it is theirs, else the nearest trace frame that is.
 */
export function summarizeNixError(raw: string, ctx: MapContext): NixErrorSummary {
  // eslint-disable-next-line no-control-regex
  const log = raw.replace(/\x1b\[[0-9;]*m/g, '')
  const lines = log.split('\n')
  const errorLines = lines.flatMap((l, i) =>
    ERROR_LINE.test(l) && !/^\s*error:\s*$/.test(l) ? [i] : []
  )
  // "N dependencies of derivation … failed to build" follows the builder's own error: keep that one.
  const own = errorLines.filter(
    (i) => !/dependencies of derivation .* failed to build/.test(lines[i])
  )
  const last = own.at(-1) ?? errorLines.at(-1) ?? -1
  if (last < 0) {
    const tail = lines
      .map((l) => l.trimEnd())
      .filter(Boolean)
      .slice(-20)
    return {
      message: tail.at(-1) ?? 'nix build failed without an error message',
      excerpt: tail.join('\n')
    }
  }
  const message = lines[last].replace(ERROR_LINE, '').trim()
  let excerptLines = lines
    .slice(last)
    .map((l) => l.trimEnd())
    .filter(
      (l) =>
        !/^\(use '--show-trace'/.test(l) && !/dependencies of derivation .* failed to build/.test(l)
    )
  if (/^builder for .* failed/.test(message) && !excerptLines.some((l) => /^\s*>/.test(l))) {
    // With --print-build-logs the builder's output came before the error, prefixed "name> ".
    const logged = lines.slice(0, last).filter((l) => /^[\w.+-]+> /.test(l))
    excerptLines = [...logged.slice(-20), ...excerptLines]
  }
  const excerpt = trimExcerpt(excerptLines).join('\n')
  const offset = lines.slice(0, last).reduce((n, l) => n + l.length + 1, 0)
  const positions = findPositions(log)
  const after = positions.filter((p) => p.index >= offset)
  const before = positions.filter((p) => p.index < offset).reverse()
  const summary: NixErrorSummary = { message, excerpt }
  for (const pos of [...after, ...before]) {
    const file = mapPosition(pos, ctx)
    if (file === undefined) continue
    return {
      ...summary,
      file,
      ...(pos.line !== undefined ? { line: pos.line } : {}),
      ...(pos.column !== undefined ? { column: pos.column } : {}),
      where: 'repo'
    }
  }
  const at = after[0]
  if (at?.subpath === '«string»')
    return { ...summary, where: 'wrapper', line: at.line, column: at.column }
  if (at !== undefined) return { ...summary, where: 'elsewhere' }
  return summary
}

/** The error and its first code frame / log lines: at most 40 lines. */
function trimExcerpt(lines: string[]): string[] {
  const out: string[] = []
  for (const l of lines) {
    if (out.length >= 40) break
    out.push(l)
  }
  while (out.length > 0 && out[out.length - 1] === '') out.pop()
  return out
}
