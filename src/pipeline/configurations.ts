import { nixArgv } from '../nix/conf.js'
import { lastLines, renderCommand, type Command, type Executor } from '../nix/exec.js'
import type { FlakeTarget } from '../nix/flakeref.js'
import { errorMessage, InputError } from '../util/errors.js'

/**
 * `nix eval --json <flake>#nixosConfigurations --apply builtins.attrNames`: the names only (no
 * configuration is evaluated), without writing a lock file (a dry run changes nothing).
 */
export function listConfigurationsCommand(
  flakeRef: string,
  o: { nix?: string; options?: [string, string][] } = {}
): Command {
  return {
    argv: nixArgv(
      o.nix ?? 'nix',
      ['eval', '--json', '--no-write-lock-file', '--apply', 'builtins.attrNames'],
      o.options ?? [],
      [`${flakeRef}#nixosConfigurations`]
    ),
    why: "list the flake's nixosConfigurations"
  }
}

/** What the dry run found out about the configuration (a missing one throws InputError). */
export type ConfigurationCheck =
  { status: 'found'; names: string[]; command: string } | { status: 'unchecked'; reason: string }

/** Nix's answer when the flake has no `nixosConfigurations` output at all. */
const NO_CONFIGURATIONS = /does not provide attribute[^\n]*'nixosConfigurations'/

function parseNames(stdout: string): string[] | undefined {
  try {
    const v: unknown = JSON.parse(stdout)
    return Array.isArray(v) && v.every((n) => typeof n === 'string') ? v : undefined
  } catch {
    return undefined
  }
}

/**
 * A dry run's check that the configuration exists, when Nix is on this machine: an unknown name
 * is an input error that lists the names the flake has. When the names cannot be had (no Nix, the
 * flake's inputs cannot be fetched, an evaluation error) the answer is `unchecked` and why: only
 * a definite answer fails the run.
 */
export async function checkConfigurationExists(
  target: Pick<FlakeTarget, 'flakeRef' | 'configuration' | 'display'>,
  o: {
    exec: Executor
    /** The nix binary, undefined when Nix is not installed. */
    nix: string | undefined
    /** `--option` pairs of this host (nixRunOptions: build-users-group = for root Nix without nixbld). */
    options?: [string, string][]
    /** How the error names the input: `input "configuration"`, `--flake`. */
    what: string
    timeoutMs?: number
  }
): Promise<ConfigurationCheck> {
  if (o.nix === undefined)
    return {
      status: 'unchecked',
      reason:
        'nix is not on PATH here, so the flake was not evaluated (a missing configuration fails the build instead)'
    }
  const cmd = listConfigurationsCommand(target.flakeRef, {
    nix: o.nix,
    ...(o.options !== undefined ? { options: o.options } : {})
  })
  const r = await o.exec
    .run(cmd, { timeoutMs: o.timeoutMs ?? 5 * 60_000 })
    .catch((err: unknown) => ({ code: -1, signal: null, stdout: '', stderr: errorMessage(err) }))
  let names: string[] | undefined
  if (r.code === 0) names = parseNames(r.stdout)
  else if (NO_CONFIGURATIONS.test(r.stderr)) names = []
  if (names === undefined) {
    const why =
      r.code === 0
        ? `unexpected output ${JSON.stringify(r.stdout.slice(0, 200))}`
        : lastLines(r.stderr, 2).replace(/\n/g, ' / ') || `exit ${r.code ?? r.signal}`
    return { status: 'unchecked', reason: `${renderCommand(cmd)} failed: ${why}` }
  }
  if (!names.includes(target.configuration)) {
    // As the user wrote it (without a #fragment), and what Nix evaluated when that differs.
    const shown = target.display.replace(/#.*$/, '') || '.'
    const flake = target.flakeRef === shown ? shown : `${shown} (${target.flakeRef})`
    throw new InputError(
      names.length === 0
        ? `${o.what}: the flake ${flake} has no nixosConfigurations, so there is no "${target.configuration}" to build`
        : `${o.what}: "${target.configuration}" is not in the nixosConfigurations of ${flake}; allowed values: ${names.join(', ')}`
    )
  }
  return { status: 'found', names, command: renderCommand(cmd) }
}
