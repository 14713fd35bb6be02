import type { GuestSystem } from '../vm/system.js'
import { NIX_FEATURES } from './conf.js'
import type { FlakeTarget } from './flakeref.js'

/**
 * The head of every expression that reads the user's configuration: the configuration chosen by
 * name and the one module this tool adds, ending in `else` before the body.
 *
 * The expression `nix build --impure --expr` evaluates. Inputs arrive as --argstr values (never
 * spliced into the text), so nothing a user writes can change the expression.
 *
 * The user's configuration is extended with one module through `extendModules`, so their flake
 * needs no change. `system.build.vm` is the configuration's VM variant: options that exist only
 * there (virtualisation.graphics, virtualisation.host.pkgs) go under `virtualisation.vmVariant`;
 * SSH settings go to the top level and reach the VM variant with the rest of the configuration.
 * When the guest's architecture is not the host's, the runner (QEMU, the start script) is taken
 * from the host's package set, so the VM runs with the host's QEMU under TCG (qemu-vm.nix then
 * picks the full `qemu`, which has every system emulator).
 */
export const CONFIGURATION_PROLOGUE = `{ flakeRef, configuration, sshUser, sshPublicKey, hostSystem }:
let
  flake = builtins.getFlake flakeRef;
  configurations = flake.nixosConfigurations or { };
  base =
    if configurations ? \${configuration} then
      configurations.\${configuration}
    else
      throw "nixos-vm-validate: \${flakeRef} has no nixosConfigurations.\${configuration} (it has: \${builtins.concatStringsSep ", " (builtins.attrNames configurations)})";
  validation =
    { lib, pkgs, ... }:
    {
      services.openssh.enable = lib.mkForce true;
      services.openssh.settings.PermitRootLogin = lib.mkIf (sshUser == "root") (lib.mkOverride 60 "prohibit-password");
      users.users.\${sshUser}.openssh.authorizedKeys.keys = [ sshPublicKey ];
      virtualisation.vmVariant = {
        virtualisation.graphics = lib.mkForce false;
        virtualisation.host.pkgs = lib.mkIf (pkgs.stdenv.hostPlatform.system != hostSystem) (
          lib.mkForce (import pkgs.path { system = hostSystem; })
        );
      };
    };
in
if !(base ? extendModules) then
  throw "nixos-vm-validate: nixosConfigurations.\${configuration} has no extendModules (is it made by nixpkgs.lib.nixosSystem?)"
else`

export const BUILD_EXPRESSION = `${CONFIGURATION_PROLOGUE}
  (base.extendModules { modules = [ validation ]; }).config.system.build.vm
`

/** The module above, as the dry-run plan shows it (first line: what it is). */
export function validationModuleText(o: {
  sshUser: string
  guest: GuestSystem
  host: GuestSystem
}): string[] {
  const lines = [
    'services.openssh.enable = lib.mkForce true',
    ...(o.sshUser === 'root'
      ? ['services.openssh.settings.PermitRootLogin = lib.mkOverride 60 "prohibit-password"']
      : []),
    `users.users.${o.sshUser}.openssh.authorizedKeys.keys = [ <ephemeral ed25519 public key of this run> ]`,
    'virtualisation.vmVariant.virtualisation.graphics = lib.mkForce false'
  ]
  if (o.guest !== o.host) {
    lines.push(
      `virtualisation.vmVariant.virtualisation.host.pkgs = lib.mkForce (import pkgs.path { system = "${o.host}"; })  — host.pkgs override: the runner uses the ${o.host} QEMU, the ${o.guest} guest runs under TCG`
    )
  }
  return lines
}

export interface BuildArgvInput {
  target: FlakeTarget
  sshUser: string
  sshPublicKey: string
  hostSystem: GuestSystem
  /** `<workdir>/result`: Nix 2.8 has no --print-out-paths; --json and the link give the path. */
  outLink: string
  /** Settings of an emulated build (extra-platforms, extra-sandbox-paths). */
  emulation?: [string, string][]
  /** e.g. the restored local binary cache, `file://DIR?trusted=1`. */
  extraSubstituters?: string[]
  /** More `--option NAME VALUE` pairs. */
  options?: [string, string][]
  showTrace?: boolean
  nix?: string
}

/** argv of the build (no shell): `nix build --impure --expr … --argstr …`. */
export function nixBuildArgv(i: BuildArgvInput): string[] {
  const options: [string, string][] = [
    ...(i.emulation ?? []),
    ...(i.extraSubstituters !== undefined && i.extraSubstituters.length > 0
      ? ([['extra-substituters', i.extraSubstituters.join(' ')]] as [string, string][])
      : []),
    ...(i.options ?? [])
  ]
  return [
    i.nix ?? 'nix',
    ...NIX_FEATURES,
    'build',
    '--impure',
    '--print-build-logs',
    '--json',
    '--out-link',
    i.outLink,
    ...(i.showTrace === true ? ['--show-trace'] : []),
    ...options.flatMap(([k, v]) => ['--option', k, v]),
    '--expr',
    BUILD_EXPRESSION,
    ...argstrs({
      flakeRef: i.target.flakeRef,
      configuration: i.target.configuration,
      sshUser: i.sshUser,
      sshPublicKey: i.sshPublicKey,
      hostSystem: i.hostSystem
    })
  ]
}

/** `--argstr NAME VALUE` for each input of an expression (never spliced into its text). */
export function argstrs(values: Record<string, string>): string[] {
  return Object.entries(values).flatMap(([k, v]) => ['--argstr', k, v])
}

/**
 * The expression `nix-instantiate --eval` evaluates for the network stage's substitution
 * check: the store path of a package from the configuration's own package set (`pkgs`, the same
 * nixpkgs the VM is built from), found by attribute path. Evaluation only: nothing is built or
 * downloaded on the host.
 */
export const PACKAGE_PATH_EXPRESSION = `{ flakeRef, configuration, attribute }:
let
  flake = builtins.getFlake flakeRef;
  pkgs = flake.nixosConfigurations.\${configuration}.pkgs;
  names = builtins.filter builtins.isString (builtins.split "[.]" attribute);
  found = builtins.foldl' (s: n: if builtins.isAttrs s && s ? \${n} then s.\${n} else null) pkgs names;
in
if builtins.isAttrs found && found ? outPath then
  found.outPath
else
  throw "nixos-vm-validate: nixosConfigurations.\${configuration}.pkgs has no package \${attribute}"
`

/**
 * argv of the evaluation of one package's store path (no shell; inputs as --argstr). It is
 * `nix-instantiate --eval`, not `nix eval --expr`: Nix 2.8's `nix eval` does not apply --argstr to
 * the expression, and nix-instantiate does on every release. Prints the path as a JSON string.
 */
export function packagePathArgv(i: {
  target: FlakeTarget
  attribute: string
  options?: [string, string][]
  /** The `nix` the run uses; nix-instantiate is taken from beside it. */
  nix?: string
}): string[] {
  return evalArgv({
    nix: i.nix,
    options: i.options,
    expression: PACKAGE_PATH_EXPRESSION,
    args: {
      flakeRef: i.target.flakeRef,
      configuration: i.target.configuration,
      attribute: i.attribute
    }
  })
}

/** `nix-instantiate --eval --json` of an expression whose inputs are --argstr values. */
export function evalArgv(i: {
  nix?: string
  options?: [string, string][]
  /** Force the whole value (a record, not one string). */
  strict?: boolean
  expression: string
  args: Record<string, string>
}): string[] {
  return [
    nixInstantiate(i.nix),
    ...NIX_FEATURES,
    '--eval',
    ...(i.strict === true ? ['--strict'] : []),
    '--json',
    ...(i.options ?? []).flatMap(([k, v]) => ['--option', k, v]),
    '--expr',
    i.expression,
    ...argstrs(i.args)
  ]
}

/** nix-instantiate from beside the `nix` the run uses. */
export function nixInstantiate(nix = 'nix'): string {
  return nix.includes('/')
    ? nix.slice(0, nix.lastIndexOf('/') + 1) + 'nix-instantiate'
    : 'nix-instantiate'
}
