import { existsSync } from 'node:fs'
import { isAbsolute, join, resolve } from 'node:path'
import { InputError } from '../util/errors.js'
import { gitTopLevel } from '../nix/flakeref.js'
import type { MapContext } from '../nix/errors.js'

/** The flake whose homeConfigurations are compared. */
export interface HomeFlake {
  /** What builtins.getFlake and `nix build` receive: an absolute path for a local flake. */
  flakeRef: string
  /** Local flakes: the directory holding flake.nix, and the git work tree around it. */
  localDir?: string
  repoRoot?: string
  display: string
}

/** A homeConfigurations attribute name (`alice@aarch64-darwin`). */
export const HOME_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.+@'-]*$/

/**
 * `.`, `./dir`, `/dir`, `path:./dir` (local, made absolute) or a flake URL (`github:o/r`), without
 * a fragment: the homes are named separately.
 */
export function parseHomeFlake(
  text: string,
  cwd: string,
  exists: (p: string) => boolean = existsSync
): HomeFlake {
  const ref = text.trim()
  if (ref === '')
    throw new InputError('--flake needs a flake reference, e.g. . or github:owner/repo')
  if (ref.includes('#'))
    throw new InputError(
      `--flake ${text}: give the flake without a fragment (#…); name each home with --home`
    )
  const pathRef = ref.startsWith('path:') ? ref.slice('path:'.length) : ref
  if (!(pathRef.startsWith('.') || pathRef.startsWith('/'))) {
    if (!/^[a-z][a-z0-9+.-]*:/.test(ref))
      throw new InputError(
        `--flake ${text}: neither a path (., ./dir, /dir) nor a flake URL (github:owner/repo, git+https://…)`
      )
    return { flakeRef: ref, display: text }
  }
  const dir = isAbsolute(pathRef) ? resolve(pathRef) : resolve(cwd, pathRef)
  if (!exists(join(dir, 'flake.nix')))
    throw new InputError(`--flake ${text}: ${dir}/flake.nix does not exist`)
  const repoRoot = gitTopLevel(dir, exists)
  return {
    flakeRef: ref.startsWith('path:') ? `path:${dir}` : dir,
    localDir: dir,
    ...(repoRoot !== undefined ? { repoRoot } : {}),
    display: text
  }
}

/** Where an error's file is looked up: the local flake, named relative to its repository. */
export function homeMapContext(f: HomeFlake): MapContext | undefined {
  if (f.localDir === undefined) return undefined
  const roots = [f.localDir, ...(f.repoRoot !== undefined ? [f.repoRoot] : [])]
  return { roots, repoRoot: f.repoRoot ?? f.localDir }
}
