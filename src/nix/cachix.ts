import { join } from 'node:path'
import { InputError } from '../util/errors.js'
import type { Logger } from '../util/log.js'
import type { CachixSettings } from './conf.js'
import { nixArgv } from './conf.js'
import {
  lastLines,
  renderCommand,
  writeFileStep,
  type Command,
  type Executor,
  type Step
} from './exec.js'
import { findOnPath } from './facts.js'

/**
 * Cachix: `https://<name>.cachix.org` as a substituter, and, with an auth token, the built
 * closure pushed on success.
 *
 * The cache's public key: taken from extra-trusted-public-keys when the user lists one for
 * `<name>.cachix.org`, otherwise fetched from Cachix's API (what `cachix use` does). A cache whose
 * key cannot be had is not added: signatures are never turned off for a remote cache.
 */

export const CACHIX_API = 'https://cachix.org/api/v1'

export interface CachixInput {
  name: string
  authToken?: string
  extraTrustedPublicKeys: string[]
}

export interface CachixResolution {
  settings?: CachixSettings
  /** Files to write before Nix reads its configuration (the netrc of a private cache). */
  commands: Step[]
  source?: 'input' | 'cachix-api'
  warning?: string
}

export function validateCachixName(name: string): string {
  const n = name.trim()
  if (!/^[a-z0-9][a-z0-9-]*$/.test(n))
    throw new InputError(
      `cachix-cache: "${name}" is not a Cachix cache name (lowercase letters, digits, -)`
    )
  return n
}

type FetchFn = (
  url: string,
  init?: { headers?: Record<string, string>; signal?: AbortSignal }
) => Promise<{ ok: boolean; status: number; json(): Promise<unknown> }>

export async function resolveCachix(
  input: CachixInput,
  o: { workDir: string; uid: number; fetch?: FetchFn; timeoutMs?: number }
): Promise<CachixResolution> {
  const name = validateCachixName(input.name)
  const substituter = `https://${name}.cachix.org`
  const given = input.extraTrustedPublicKeys.filter((k) => k.startsWith(`${name}.cachix.org-`))
  let publicKeys = given
  let isPublic = true
  let source: CachixResolution['source'] = 'input'
  if (given.length === 0) {
    const fetchFn = o.fetch ?? (globalThis.fetch as unknown as FetchFn)
    try {
      const res = await fetchFn(`${CACHIX_API}/cache/${name}`, {
        headers: {
          accept: 'application/json',
          ...(input.authToken !== undefined && input.authToken !== ''
            ? { authorization: `Bearer ${input.authToken}` }
            : {})
        },
        signal: AbortSignal.timeout(o.timeoutMs ?? 15_000)
      })
      if (!res.ok) throw new Error(`HTTP ${res.status}`)
      const body = (await res.json()) as { publicSigningKeys?: unknown; isPublic?: unknown }
      publicKeys = Array.isArray(body.publicSigningKeys)
        ? body.publicSigningKeys.filter((k): k is string => typeof k === 'string')
        : []
      isPublic = body.isPublic !== false
      source = 'cachix-api'
    } catch (err) {
      return {
        commands: [],
        warning: `Cachix cache ${name}: cannot get its public key (${(err as Error).message}); not used as a substituter — list its key in extra-trusted-public-keys`
      }
    }
    if (publicKeys.length === 0) {
      return {
        commands: [],
        warning: `Cachix cache ${name}: the API lists no public signing key; not used as a substituter`
      }
    }
  }
  const commands: Step[] = []
  let netrcFile: string | undefined
  if (!isPublic && input.authToken !== undefined && input.authToken !== '') {
    netrcFile = join(o.workDir, 'netrc')
    commands.push(
      writeFileStep(netrcFile, `machine ${name}.cachix.org password ${input.authToken}\n`, {
        mode: '0600',
        uid: o.uid,
        privileged: false,
        why: `credentials of the private Cachix cache ${name}`,
        secrets: [input.authToken]
      })
    )
  }
  return {
    settings: { name, substituter, publicKeys, ...(netrcFile !== undefined ? { netrcFile } : {}) },
    commands,
    source
  }
}

/** `nix build nixpkgs#cachix --out-link …`: no profile change, no PATH lookup afterwards. */
export function cachixInstallCommand(
  outLink: string,
  nix = 'nix',
  options: [string, string][] = []
): Command {
  return {
    argv: nixArgv(nix, ['build'], options, ['--out-link', outLink, 'nixpkgs#cachix']),
    why: 'get the cachix client'
  }
}

export function cachixPushCommand(
  cachix: string,
  name: string,
  storePath: string,
  token: string
): Command {
  return {
    argv: [cachix, 'push', name, storePath],
    env: { CACHIX_AUTH_TOKEN: token },
    why: `push the VM closure to Cachix (${name})`,
    secrets: [token]
  }
}

export interface CachixPushResult {
  pushed: boolean
  message: string
}

/** Pushes the closure of `storePath` (after a successful validation). Never throws: a warning. */
export async function pushToCachix(o: {
  name: string
  authToken: string
  storePath: string
  workDir: string
  exec: Executor
  log: Logger
  nix?: string
  options?: [string, string][]
}): Promise<CachixPushResult> {
  let cachix = findOnPath('cachix')
  if (cachix === undefined) {
    const link = join(o.workDir, 'cachix')
    const install = cachixInstallCommand(link, o.nix, o.options)
    o.log.info(`${install.why}: ${renderCommand(install)}`)
    const r = await o.exec.run(install, { onLine: (l) => o.log.debug(l) })
    if (r.code !== 0) {
      const message = `cachix push skipped: cannot build cachix: ${lastLines(r.stderr, 3)}`
      o.log.warning(message)
      return { pushed: false, message }
    }
    cachix = join(link, 'bin', 'cachix')
  }
  const push = cachixPushCommand(cachix, o.name, o.storePath, o.authToken)
  o.log.info(`${push.why}: ${renderCommand(push)}`)
  const r = await o.exec.run(push, { onLine: (l) => o.log.debug(l) })
  if (r.code !== 0) {
    const message = `cachix push to ${o.name} failed: ${lastLines(r.stderr, 3)}`
    o.log.warning(message)
    return { pushed: false, message }
  }
  const message = `pushed ${o.storePath} and its closure to ${o.name}.cachix.org`
  o.log.info(message)
  return { pushed: true, message }
}
