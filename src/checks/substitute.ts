import { shellQuote } from '../ssh/client.js'
import { combined, describeExit } from '../ssh/guest.js'
import { errorMessage } from '../util/errors.js'
import type { SubstituteSpec } from './model.js'
import type { CheckEnv, CheckOutcome } from './run.js'

/**
 * The network stage's proof that the VM can install packages: a store path outside the VM's
 * closure is realised from the VM's own configured substituters (its nix.conf, as NixOS wrote
 * it: `nix.settings.substituters`, `trusted-public-keys`), then run. A failure says which of the
 * usual reasons it is: no Nix, no substituter configured, unreachable, untrusted signature, or
 * a path no substituter has.
 */

/** Resolves a package attribute (`hello`) to its store path; the front-end's build-time evaluator. */
export type PackagePathResolver = (attribute: string) => Promise<string>

/**
 * One evaluation per attribute however often it is asked for (the run starts them while the VM
 * boots; the stage awaits them). A failed evaluation stays failed.
 */
export function memoResolver(resolve: PackagePathResolver): PackagePathResolver {
  const seen = new Map<string, Promise<string>>()
  return (attribute) => {
    let p = seen.get(attribute)
    if (p === undefined) {
      p = resolve(attribute)
      p.catch(() => undefined)
      seen.set(attribute, p)
    }
    return p
  }
}

export const STORE_PATH = /^\/nix\/store\/[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+._?=-]+$/

/** What the check runs by default: `bin/<last attribute name>` (`bin/hello` for `hello`). */
export function defaultRun(spec: Pick<SubstituteSpec, 'package' | 'run'>): string | undefined {
  if (spec.run !== undefined) return spec.run
  if (spec.package === undefined) return undefined
  return `bin/${spec.package.split('.').pop() ?? spec.package}`
}

export function substituteCheckName(spec: SubstituteSpec): string {
  return `substitute ${spec.package ?? spec.path ?? '?'}`
}

const MARK = 'nvv-substitute:'

/**
 * One guest command: is Nix there, what substituters and keys does the VM's Nix use, is the path
 * already valid, then `nix-store --realise`. Marker lines carry the facts; Nix's own output
 * follows. `nix config show` is `nix show-config` before Nix 2.20; both need nix-command, which a
 * NixOS guest may not enable, hence the flag.
 */
export function realiseCommand(path: string): string {
  const p = shellQuote(path)
  const nix = 'nix --extra-experimental-features nix-command'
  return [
    `if ! command -v nix-store >/dev/null 2>&1; then echo '${MARK} no-nix'; exit 127; fi`,
    `{ ${nix} config show 2>/dev/null || ${nix} show-config 2>/dev/null; } | sed -n 's/^\\(substituters\\|trusted-public-keys\\) = /${MARK} \\1 = /p'`,
    `if nix-store --check-validity ${p} 2>/dev/null; then echo '${MARK} valid'; exit 0; fi`,
    `nix-store --realise ${p} 2>&1`,
    `rc=$?`,
    `echo "${MARK} realise-exit $rc"`,
    `exit $rc`
  ].join('\n')
}

export interface RealiseFacts {
  noNix: boolean
  alreadyValid: boolean
  /** undefined when the guest's Nix did not say (an old or broken Nix). */
  substituters?: string[]
  trustedKeys?: string[]
  exit?: number
  /** Nix's own output, without the marker lines. */
  log: string
}

export function parseRealise(stdout: string): RealiseFacts {
  const facts: RealiseFacts = { noNix: false, alreadyValid: false, log: '' }
  const log: string[] = []
  for (const line of stdout.split('\n')) {
    if (!line.startsWith(MARK)) {
      log.push(line)
      continue
    }
    const rest = line.slice(MARK.length).trim()
    const setting = /^(substituters|trusted-public-keys) = ?(.*)$/.exec(rest)
    if (rest === 'no-nix') facts.noNix = true
    else if (rest === 'valid') facts.alreadyValid = true
    else if (rest.startsWith('realise-exit ')) facts.exit = Number(rest.slice(13))
    else if (setting !== null) {
      const words = setting[2].split(/\s+/).filter((w) => w !== '')
      if (setting[1] === 'substituters') facts.substituters = words
      else facts.trustedKeys = words
    }
  }
  facts.log = log.join('\n').trim()
  return facts
}

export type SubstituteFailure =
  | 'no-nix'
  | 'no-substituters'
  | 'untrusted-signature'
  | 'unreachable'
  | 'not-in-cache'
  | 'realise-failed'

/**
 * Why `nix-store --realise` failed, from Nix's own words (2.8 to current): a signature no trusted
 * key made is reported even when another substituter was unreachable (the path was found, and
 * refused); an unreachable substituter before "don't know how to build" (it may have had it).
 */
export function classifyRealise(f: RealiseFacts): { kind: SubstituteFailure; message: string } {
  const subs = f.substituters
  const list = subs !== undefined && subs.length > 0 ? subs.join(' ') : 'none'
  const keys =
    f.trustedKeys !== undefined && f.trustedKeys.length > 0 ? f.trustedKeys.join(' ') : 'none'
  if (f.noNix) {
    return {
      kind: 'no-nix',
      message: 'no Nix in the VM: nix-store is not on the PATH, so nothing can be installed'
    }
  }
  const log = f.log
  if (
    /not signed by any of the keys|lacks a (valid )?signature|no signature is trusted|does not have a valid signature/i.test(
      log
    )
  ) {
    const from = /from '([^']+)' is not signed/.exec(log)?.[1]
    return {
      kind: 'untrusted-signature',
      message: `untrusted signature: ${from ?? 'a substituter'} has the path, but it is not signed by a key the VM trusts (trusted-public-keys: ${keys})`
    }
  }
  const unreachable = [
    ...new Set(
      [...log.matchAll(/unable to download '([a-z+]+:\/\/[^/'\s]+)/gi)].map((m) => m[1] ?? '')
    )
  ].filter((u) => u !== '')
  if (
    unreachable.length > 0 ||
    /Couldn't connect|Could not resolve host|Timeout was reached|Connection refused/i.test(log)
  ) {
    return {
      kind: 'unreachable',
      message: `unreachable: the VM cannot reach ${unreachable.length > 0 ? unreachable.join(', ') : 'its substituters'} (substituters: ${list})`
    }
  }
  if (subs !== undefined && subs.length === 0) {
    return {
      kind: 'no-substituters',
      message:
        "no substituters: the VM's Nix names none (nix.settings.substituters), so it can only build, never download"
    }
  }
  if (/don't know how to build|no substituter that can build it/i.test(log)) {
    return {
      kind: 'not-in-cache',
      message: `not in any substituter: none of the VM's substituters (${list}) has the path`
    }
  }
  return {
    kind: 'realise-failed',
    message: `nix-store --realise failed (exit ${f.exit ?? '?'}); substituters: ${list}`
  }
}

/** The whole check, once the store path is known. */
export async function substituteCheck(
  env: CheckEnv,
  spec: SubstituteSpec,
  pathOf: () => Promise<string>
): Promise<CheckOutcome> {
  let path: string
  try {
    path = await pathOf()
  } catch (err) {
    return { status: 'failed', output: errorMessage(err) }
  }
  const budget = env.deadline.remaining()
  const r = await env.guest.run(realiseCommand(path), { timeoutMs: budget })
  const facts = parseRealise(r.stdout + (r.stderr !== '' ? `\n${r.stderr}` : ''))
  const settings = [
    `substituters: ${facts.substituters?.join(' ') ?? '(not shown)'}`,
    `trusted-public-keys: ${facts.trustedKeys?.join(' ') ?? '(not shown)'}`
  ].join('\n')
  if (r.timedOut || r.code === null) {
    return {
      status: 'failed',
      output: `realising ${path} did not finish: ${describeExit(r, budget)}\n${settings}\n${facts.log}`
    }
  }
  if (facts.alreadyValid) {
    return {
      status: 'skipped',
      output: `${path} is already in the VM's store (part of its closure), so realising it proves nothing; name a package the configuration does not install (network.substitute)`
    }
  }
  if (r.code !== 0 || facts.noNix) {
    const c = classifyRealise(facts)
    return { status: 'failed', output: `${c.message}\n${path}\n${settings}\n${facts.log}` }
  }
  const realised = `realised ${path} from the VM's substituters (${facts.substituters?.join(' ') ?? 'as configured'})`
  const command = defaultRun(spec)
  if (command === undefined) return { status: 'passed', output: `${realised}\n${facts.log}` }
  // The first word is a file of the package; the rest is shell text, as written.
  const [, file = '', rest = ''] = /^(\S+)(.*)$/s.exec(command.trim()) ?? []
  const runIt = `${shellQuote(`${path}/${file}`)}${rest}`
  const ran = await env.guest.run(runIt, { timeoutMs: env.deadline.remaining() })
  const out = combined(ran)
  if (ran.code !== 0) {
    return {
      status: 'failed',
      output: `${realised}, but ${command} failed: ${describeExit(ran, env.deadline.remaining())}\n${out}`
    }
  }
  if (spec.expect !== undefined && !new RegExp(spec.expect, 'm').test(out)) {
    return {
      status: 'failed',
      output: `${realised}, but the output of ${command} does not match /${spec.expect}/:\n${out}`
    }
  }
  return { status: 'passed', output: `${realised}; ${command}: ${out.split('\n')[0] ?? ''}` }
}
