import { InputError } from '../util/errors.js'
import { nixErrorLines } from './build.js'
import { spawnExecutor, type Executor } from './exec.js'
import { CONFIGURATION_PROLOGUE, evalArgv } from './expr.js'
import type { FlakeTarget } from './flakeref.js'

/**
 * What a NixOS configuration declares about the running machine, read by one evaluation of the
 * same extended configuration the VM is built from (docs/derived-checks.md has the rules and the
 * option paths). Every item names the option it comes from.
 */
export interface DeclaredSpec {
  /** `networking.hostName`; null when empty (the name comes from DHCP). */
  hostName: string | null
  /** `time.timeZone`; null when not set. */
  timeZone: string | null
  units: DeclaredUnit[]
  users: DeclaredUser[]
  homeManager: DeclaredHome[]
  packages: DeclaredPackage[]
  /** `virtualisation.docker.enable`, `virtualisation.podman.enable`. */
  containers: { docker: boolean; podman: boolean }
  /** `networking.firewall.enable` and its `allowedTCPPorts`. */
  firewall: { enable: boolean; tcpPorts: number[] }
}

export interface DeclaredUnit {
  /** `sshd.service`, `docker.socket`, `fstrim.timer`. */
  name: string
  option: string
  wantedBy: string[]
  /** serviceConfig.Type (services only; "simple" when unset). */
  type: string
  /** serviceConfig.RemainAfterExit. */
  remainAfterExit: boolean
}

export interface DeclaredUser {
  name: string
  option: string
  /** The primary group first, then extraGroups. */
  groups: string[]
  /** Basename of the login shell (`bash`, `zsh`), null when unset. */
  shell: string | null
  home: string | null
}

export interface DeclaredHome {
  user: string
  option: string
  /** `home.file.<name>.target`: paths relative to the home. */
  files: string[]
}

export interface DeclaredPackage {
  /** pname, else the name without its version. */
  name: string
  /** `meta.mainProgram`, null when the package declares none. */
  mainProgram: string | null
  /** `environment.systemPackages` or `users.users.<name>.packages`. */
  option: string
  /** The user whose packages list declares it; null for the system's. */
  user: string | null
  /**
   * The file of the flake that declares it (relative to the flake), when the module system says
   * (options.environment.systemPackages.definitionsWithLocations).
   */
  file: string | null
  /** The store path (never named outPath: JSON would print the attrset as that path), evaluated only for a package without mainProgram (looked up by name). */
  storePath: string | null
}

/**
 * The evaluation. Reads the VM variant's configuration when the module system has one (nixpkgs:
 * `config.virtualisation.vmVariant` is the VM's whole configuration, with a `system` attribute),
 * else the configuration itself. Packages are those defined in the flake's own files when the
 * definitions' locations are known (nixpkgs' and other inputs' modules add many of their own);
 * every attribute read has a fallback, so a partial configuration still yields a spec.
 */
export const SPEC_EXPRESSION = `${CONFIGURATION_PROLOGUE}
let
  inherit (builtins) attrNames attrValues concatMap elem filter isAttrs isList isString;
  extended = base.extendModules { modules = [ validation ]; };
  top = extended.config;
  vmv = top.virtualisation.vmVariant or { };
  c = if isAttrs vmv && vmv ? system then vmv else top;
  opts = extended.options or { };
  own = toString flake.outPath + "/";
  isOwn = file: builtins.substring 0 (builtins.stringLength own) (toString file) == own;
  relative = file: let f = toString file; in builtins.substring (builtins.stringLength own) (builtins.stringLength f) f;
  attrsOf = v: if isAttrs v then v else { };
  listOf = v: if isList v then v else [ ];
  truthy = v: v == true || v == "yes" || v == "true" || v == "on" || v == "1";
  bootTargets = [ "multi-user.target" "default.target" "graphical.target" "sockets.target" "timers.target" "sysinit.target" "basic.target" ];
  unitsOf = kind: suffix:
    let set = attrsOf (c.systemd.\${kind} or { }); in
    concatMap (n:
      let
        u = set.\${n};
        wantedBy = listOf (u.wantedBy or [ ]);
        sc = attrsOf (u.serviceConfig or { });
        type = sc.Type or "simple";
      in
      if (u.enable or true) == true && builtins.any (t: elem t bootTargets) wantedBy then
        [ {
          name = "\${n}.\${suffix}";
          option = "systemd.\${kind}.\${n}";
          inherit wantedBy;
          type = if isString type then type else "simple";
          remainAfterExit = truthy (sc.RemainAfterExit or false);
        } ]
      else [ ]) (attrNames set);
  users = attrsOf (c.users.users or { });
  normal = filter (n: (users.\${n}.isNormalUser or false) == true) (attrNames users);
  shellOf = s:
    if s == null then null
    else if isAttrs s && s ? shellPath then baseNameOf s.shellPath
    else if isAttrs s && s ? meta && s.meta ? mainProgram then s.meta.mainProgram
    else baseNameOf (toString s);
  groupsOf = u: filter (g: isString g && g != "") ([ (u.group or "") ] ++ listOf (u.extraGroups or [ ]));
  packageOf = option: user: file: p:
    if isAttrs p then
      [ {
        name = p.pname or (builtins.parseDrvName (p.name or "")).name;
        mainProgram = p.meta.mainProgram or null;
        storePath = if (p.meta.mainProgram or null) == null then p.outPath or null else null;
        inherit option user file;
      } ]
    else [ ];
  located = opt:
    let defs = opt.definitionsWithLocations or null; in
    if defs == null then null else concatMap (d: if isOwn d.file then map (v: { file = relative d.file; value = v; }) (listOf d.value) else [ ]) defs;
  packagesAt = option: user: value: opt:
    let defs = located opt; in
    if defs == null then concatMap (packageOf option user null) (listOf value)
    else concatMap (d: packageOf option user d.file d.value) defs;
  hm = attrsOf (c.home-manager.users or { });
  hostName = c.networking.hostName or "";
in
{
  hostName = if isString hostName && hostName != "" then hostName else null;
  timeZone = let tz = c.time.timeZone or null; in if isString tz && tz != "" then tz else null;
  units = unitsOf "services" "service" ++ unitsOf "sockets" "socket" ++ unitsOf "timers" "timer";
  users = map (n:
    let u = users.\${n}; in {
      name = u.name or n;
      option = "users.users.\${n}";
      groups = groupsOf u;
      shell = shellOf (u.shell or null);
      home = let h = u.home or null; in if isString h then h else null;
    }) normal;
  homeManager = map (n: {
    user = n;
    option = "home-manager.users.\${n}.home.file";
    files = concatMap (f: if (f.enable or true) == true && isString (f.target or null) then [ f.target ] else [ ])
      (attrValues (attrsOf (hm.\${n}.home.file or { })));
  }) (attrNames hm);
  packages =
    packagesAt "environment.systemPackages" null (c.environment.systemPackages or [ ]) (opts.environment.systemPackages or { })
    ++ concatMap (n: packagesAt "users.users.\${n}.packages" n (users.\${n}.packages or [ ]) { }) normal;
  containers = {
    docker = (c.virtualisation.docker.enable or false) == true;
    podman = (c.virtualisation.podman.enable or false) == true;
  };
  firewall = {
    enable = (c.networking.firewall.enable or false) == true;
    tcpPorts = filter builtins.isInt (listOf (c.networking.firewall.allowedTCPPorts or [ ]));
  };
}
`

/** What the spec's evaluation reads: the build's own inputs and Nix options. */
export interface SpecInput {
  target: FlakeTarget
  sshUser: string
  sshPublicKey: string
  hostSystem: string
  options?: [string, string][]
  nix?: string
}

/** argv of the spec's evaluation (no shell; inputs as --argstr, as the build's). */
export function specArgv(i: SpecInput): string[] {
  return evalArgv({
    nix: i.nix,
    options: i.options,
    strict: true,
    expression: SPEC_EXPRESSION,
    args: {
      flakeRef: i.target.flakeRef,
      configuration: i.target.configuration,
      sshUser: i.sshUser,
      sshPublicKey: i.sshPublicKey,
      hostSystem: i.hostSystem
    }
  })
}

const isString = (v: unknown): v is string => typeof v === 'string'
const isStringOrNull = (v: unknown): v is string | null => v === null || typeof v === 'string'

/** The evaluation's JSON, checked field by field: a malformed spec is a tool error, said once. */
export function parseDeclaredSpec(text: string): DeclaredSpec {
  const bad = (what: string): never => {
    throw new InputError(`the configuration's evaluated spec is malformed: ${what}`)
  }
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch {
    return bad('not JSON')
  }
  const o = raw as Record<string, unknown>
  if (typeof o !== 'object' || o === null) return bad('not an object')
  const list = <T>(key: string, ok: (v: Record<string, unknown>) => boolean): T[] => {
    const v = o[key]
    if (!Array.isArray(v)) return bad(`${key} is not a list`)
    for (const item of v as Record<string, unknown>[])
      if (typeof item !== 'object' || item === null || !ok(item)) bad(`an item of ${key}`)
    return v as T[]
  }
  const strings = (v: unknown): boolean => Array.isArray(v) && v.every(isString)
  const containers = o.containers as Record<string, unknown> | undefined
  const firewall = o.firewall as Record<string, unknown> | undefined
  if (!isStringOrNull(o.hostName) || !isStringOrNull(o.timeZone)) bad('hostName or timeZone')
  if (typeof containers?.docker !== 'boolean' || typeof containers.podman !== 'boolean')
    bad('containers')
  if (
    typeof firewall?.enable !== 'boolean' ||
    !Array.isArray(firewall.tcpPorts) ||
    !firewall.tcpPorts.every((p) => Number.isInteger(p))
  )
    bad('firewall')
  return {
    hostName: o.hostName as string | null,
    timeZone: o.timeZone as string | null,
    units: list('units', (u) => isString(u.name) && isString(u.option) && strings(u.wantedBy)),
    users: list('users', (u) => isString(u.name) && strings(u.groups) && isStringOrNull(u.shell)),
    homeManager: list('homeManager', (h) => isString(h.user) && strings(h.files)),
    packages: list(
      'packages',
      (p) =>
        isString(p.name) && isStringOrNull(p.mainProgram) && isStringOrNull(p.storePath ?? null)
    ),
    containers: containers as DeclaredSpec['containers'],
    firewall: firewall as DeclaredSpec['firewall']
  }
}

/**
 * Evaluates the spec beside the build (same flake, key, host and Nix options; nothing built).
 * Rejects with Nix's own last error lines when the configuration cannot be read.
 */
export async function evaluateSpec(
  i: SpecInput & { signal?: AbortSignal; exec?: Executor }
): Promise<DeclaredSpec> {
  const exec = i.exec ?? spawnExecutor()
  const argv = specArgv(i)
  const r = await exec.run(
    { argv, why: `read what nixosConfigurations.${i.target.configuration} declares` },
    { signal: i.signal, timeoutMs: 5 * 60_000 }
  )
  if (r.code !== 0)
    throw new Error(
      `cannot read what nixosConfigurations.${i.target.configuration} declares: ${nixErrorLines(r.stderr) || `exit ${r.code ?? r.signal ?? '?'}`}`
    )
  return parseDeclaredSpec(r.stdout)
}
