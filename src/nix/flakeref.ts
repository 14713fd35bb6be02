import { existsSync } from 'node:fs'
import { dirname, isAbsolute, join, resolve } from 'node:path'
import { InputError } from '../util/errors.js'

/** A flake and the nixosConfigurations entry to build from it. */
export interface FlakeTarget {
  /** What builtins.getFlake receives: an absolute path for local flakes, else the reference as given. */
  flakeRef: string
  configuration: string
  /** Local flakes: the directory holding flake.nix. */
  localDir?: string
  /** Local flakes: the git work tree around it (the repository the file names are relative to). */
  repoRoot?: string
  /** As the user wrote it, for messages. */
  display: string
}

const CONFIG_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.+'-]*$/

/** Nearest directory at or above `dir` holding .git (a directory, or a file in a worktree). */
export function gitTopLevel(
  dir: string,
  exists: (p: string) => boolean = existsSync
): string | undefined {
  let current = resolve(dir)
  for (;;) {
    if (exists(join(current, '.git'))) return current
    const parent = dirname(current)
    if (parent === current) return undefined
    current = parent
  }
}

/**
 * Parses `.#name`, `/abs/dir#nixosConfigurations.name`, `path:./x#name`, `github:o/r#name`
 * (the fragment, when absent, comes from `configuration`). Local paths become absolute:
 * builtins.getFlake accepts nothing relative. They are passed as plain paths, so Nix applies its
 * own rules (a git work tree is fetched as git+file: tracked files only, shallow clones allowed).
 */
export function parseFlakeTarget(
  text: string,
  o: { cwd?: string; configuration?: string; exists?: (p: string) => boolean } = {}
): FlakeTarget {
  const cwd = o.cwd ?? process.cwd()
  const exists = o.exists ?? existsSync
  const hash = text.indexOf('#')
  let ref = (hash >= 0 ? text.slice(0, hash) : text).trim()
  let fragment = hash >= 0 ? text.slice(hash + 1).trim() : ''
  fragment = fragment.replace(/^nixosConfigurations\./, '').replace(/^"(.*)"$/, '$1')
  const given = o.configuration?.trim() ?? ''
  if (fragment === '' && given !== '') fragment = given
  if (fragment !== '' && given !== '' && fragment !== given) {
    throw new InputError(
      `flake "${text}" names configuration "${fragment}" but configuration is "${given}"`
    )
  }
  if (fragment === '') {
    throw new InputError(
      `flake "${text}": name the configuration, e.g. ${ref || '.'}#nixos-vm-x86_64 (a nixosConfigurations entry)`
    )
  }
  if (!CONFIG_NAME.test(fragment)) {
    throw new InputError(
      `flake "${text}": "${fragment}" is not a nixosConfigurations name (letters, digits, _ . + ' -)`
    )
  }
  if (ref === '') ref = '.'
  const pathRef = /^path:/.test(ref) ? ref.slice('path:'.length) : ref
  const local = pathRef.startsWith('.') || pathRef.startsWith('/') || pathRef.startsWith('~')
  if (!local) {
    if (!/^[a-z][a-z0-9+.-]*:/.test(ref)) {
      throw new InputError(
        `flake "${text}": "${ref}" is neither a path (./dir, /dir) nor a flake URL (github:owner/repo, git+https://…)`
      )
    }
    return { flakeRef: ref, configuration: fragment, display: text }
  }
  if (pathRef.startsWith('~'))
    throw new InputError(`flake "${text}": "~" is not expanded; give the path`)
  const dir = isAbsolute(pathRef) ? resolve(pathRef) : resolve(cwd, pathRef)
  if (!exists(join(dir, 'flake.nix')))
    throw new InputError(`flake "${text}": ${dir}/flake.nix does not exist`)
  const repoRoot = gitTopLevel(dir, exists)
  return {
    // path: kept when the user asked for it (copy the directory as is, untracked files included).
    flakeRef: ref.startsWith('path:') ? `path:${dir}` : dir,
    configuration: fragment,
    localDir: dir,
    ...(repoRoot !== undefined ? { repoRoot } : {}),
    display: text
  }
}
