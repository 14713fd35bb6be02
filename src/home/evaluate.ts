import { spawnExecutor, type Executor } from '../nix/exec.js'
import { evalArgv } from '../nix/expr.js'
import { findPositions, summarizeNixError, type MapContext } from '../nix/errors.js'
import type { HomeEvaluation } from './model.js'

/**
 * One standalone Home Manager configuration (`homeConfigurations.<home>` of a flake, the output of
 * `home-manager.lib.homeManagerConfiguration`), read by one evaluation (docs/home-consistency.md):
 *
 * - the system: `pkgs.stdenv.hostPlatform.system`, else what follows `@` in the name;
 * - `config.home.file`: the targets of the enabled entries, sorted;
 * - `config.home.packages`: each package's name (pname, else its name without the version) and
 *   whether it is available on that platform, as nixpkgs' `lib.meta.availableOn` decides (the
 *   home's `pkgs.lib` when it has one, else the same rule here: `meta.platforms` absent or
 *   matching, no `meta.badPlatforms` matching; a platform is a system string or an attribute
 *   pattern matched against the host platform), and never when `meta.broken`;
 * - the activation package's derivation path (forcing the whole home without building it).
 *
 * Inputs arrive as --argstr values; nothing a flake or a name says can change the expression.
 */
export const HOME_EXPRESSION = `{ flakeRef, home }:
let
  inherit (builtins) all any attrNames attrValues concatMap filter isAttrs isList isString;
  flake = builtins.getFlake flakeRef;
  homes = flake.homeConfigurations or { };
  h =
    if homes ? \${home} then homes.\${home}
    else throw "nixos-vm-validate: \${flakeRef} has no homeConfigurations.\${home} (it has: \${builtins.concatStringsSep ", " (attrNames homes)})";
  c = h.config or { };
  attrsOf = v: if isAttrs v then v else { };
  listOf = v: if isList v then v else [ ];
  platform = h.pkgs.stdenv.hostPlatform or c._module.args.pkgs.stdenv.hostPlatform or null;
  fromName = builtins.match "[^@]*@(.+)" home;
  system =
    if isAttrs platform && isString (platform.system or null) then platform.system
    else if fromName != null then builtins.head fromName
    else throw "nixos-vm-validate: cannot tell the system of homeConfigurations.\${home}: no pkgs.stdenv.hostPlatform.system and no @<system> in its name";
  hostPlatform = if isAttrs platform then platform else { inherit system; };
  matchAttrs = pattern: value:
    all (n: let p = pattern.\${n}; in isAttrs value && value ? \${n} && (if isAttrs p then matchAttrs p value.\${n} else p == value.\${n})) (attrNames pattern);
  matches = e: if isString e then e == system else if isAttrs e then matchAttrs e hostPlatform else false;
  libAvailableOn = h.pkgs.lib.meta.availableOn or null;
  verdict = p:
    let
      meta = attrsOf (p.meta or { });
      platforms = meta.platforms or null;
      listed = platforms == null || any matches (listOf platforms);
      bad = any matches (listOf (meta.badPlatforms or [ ]));
      ok = if libAvailableOn != null && isAttrs platform then libAvailableOn platform p else listed && !bad;
    in
    if (meta.broken or false) == true then { available = false; reason = "meta.broken"; }
    else if ok then { available = true; }
    else {
      available = false;
      reason =
        if bad then "meta.badPlatforms includes \${system}"
        else if !listed then "meta.platforms does not include \${system}"
        else "lib.meta.availableOn is false on \${system}";
    };
  nameOf = p:
    let t = builtins.tryEval (p.pname or (builtins.parseDrvName (p.name or "")).name); in
    if t.success && isString t.value && t.value != "" then t.value else "<unnamed>";
  enabledTargets = concatMap (f: if (f.enable or true) == true && isString (f.target or null) then [ f.target ] else [ ]);
  drv = h.activationPackage.drvPath or null;
in
{
  name = home;
  inherit system;
  files = builtins.sort builtins.lessThan (map builtins.unsafeDiscardStringContext (enabledTargets (attrValues (attrsOf (c.home.file or { })))));
  packages = concatMap (p: if isAttrs p then [ ({ name = nameOf p; } // verdict p) ] else [ ]) (listOf (c.home.packages or [ ]));
  activationDrv = if isString drv then builtins.unsafeDiscardStringContext drv else null;
}
`

/** What one evaluation of a home needs. */
export interface HomeInput {
  /** What builtins.getFlake receives (an absolute path for a local flake). */
  flakeRef: string
  /** The attribute under homeConfigurations. */
  home: string
  /** `--option NAME VALUE` pairs (e.g. `build-users-group =`). */
  options?: [string, string][]
  nix?: string
}

/** argv of one home's evaluation (no shell; inputs as --argstr). */
export function homeArgv(i: HomeInput): string[] {
  return evalArgv({
    nix: i.nix,
    options: i.options,
    strict: true,
    expression: HOME_EXPRESSION,
    args: { flakeRef: i.flakeRef, home: i.home }
  })
}

/** The JSON of one evaluation, checked; undefined when it is not the shape the expression makes. */
export function parseHomeEvaluation(text: string): HomeEvaluation | undefined {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch {
    return undefined
  }
  const o = raw as Record<string, unknown>
  if (typeof o !== 'object' || o === null) return undefined
  const files = o.files
  const packages = o.packages as Record<string, unknown>[] | undefined
  if (typeof o.name !== 'string' || typeof o.system !== 'string') return undefined
  if (!Array.isArray(files) || !files.every((f) => typeof f === 'string')) return undefined
  if (
    !Array.isArray(packages) ||
    !packages.every((p) => typeof p?.name === 'string' && typeof p.available === 'boolean')
  )
    return undefined
  return {
    name: o.name,
    system: o.system,
    files: files as string[],
    packages: packages.map((p) => ({
      name: p.name as string,
      available: p.available as boolean,
      ...(typeof p.reason === 'string' ? { reason: p.reason } : {})
    })),
    ...(typeof o.activationDrv === 'string' ? { activationDrv: o.activationDrv } : {})
  }
}

/**
 * Nix's error as the model keeps it: the innermost message, and the file and line — relative to
 * the local flake when the position is one of its files, else as Nix printed it (a store path
 * inside the flake's source tree is shortened to the path inside that tree).
 */
export function homeError(
  stderr: string,
  ctx: MapContext | undefined
): NonNullable<HomeEvaluation['error']> {
  const summary = summarizeNixError(stderr, ctx ?? { roots: [], repoRoot: '/nonexistent' })
  const message = summary.message
  if (summary.file !== undefined)
    return {
      message,
      file: summary.file,
      ...(summary.line !== undefined ? { line: summary.line } : {})
    }
  const at = stderr.indexOf(message)
  const pos = findPositions(stderr).find((p) => p.index >= at && p.subpath !== '«string»')
  if (pos === undefined) return { message }
  return {
    message,
    file: pos.storeRoot !== undefined ? pos.subpath : pos.raw.replace(/:\d+(:\d+)?$/, ''),
    ...(pos.line !== undefined ? { line: pos.line } : {})
  }
}

/**
 * Evaluates each home on its own (one nix-instantiate each, one after the other: a failing home
 * hides none of the others). A failure becomes the home's `error`; the system then comes from
 * the name (`user@system`) or is `unknown`.
 */
export async function evaluateHomes(o: {
  flakeRef: string
  homes: string[]
  /** Local flakes: the directories positions are mapped to (errors.ts). */
  mapContext?: MapContext
  options?: [string, string][]
  nix?: string
  exec?: Executor
  signal?: AbortSignal
}): Promise<HomeEvaluation[]> {
  const exec = o.exec ?? spawnExecutor()
  const out: HomeEvaluation[] = []
  for (const home of o.homes) {
    const argv = homeArgv({ flakeRef: o.flakeRef, home, options: o.options, nix: o.nix })
    const r = await exec.run(
      { argv, why: `evaluate homeConfigurations.${home}` },
      { signal: o.signal, timeoutMs: 10 * 60_000 }
    )
    const parsed = r.code === 0 ? parseHomeEvaluation(r.stdout) : undefined
    if (parsed !== undefined) {
      out.push(parsed)
      continue
    }
    const error =
      r.code === 0
        ? { message: `the evaluation printed no home: ${r.stdout.trim().slice(0, 200)}` }
        : homeError(r.stderr, o.mapContext)
    out.push({ name: home, system: systemFromName(home), files: [], packages: [], error })
  }
  return out
}

/** `alice@aarch64-darwin` → `aarch64-darwin`; `unknown` without an `@`. */
export function systemFromName(home: string): string {
  const at = home.lastIndexOf('@')
  return at >= 0 && at < home.length - 1 ? home.slice(at + 1) : 'unknown'
}
