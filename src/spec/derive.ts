import type { DeclaredPackage, DeclaredSpec, DeclaredUnit, DeclaredUser } from '../nix/spec.js'
import type {
  ChecksConfig,
  CommandSpec,
  DockerSpec,
  HomeManagerSpec,
  Located,
  ServiceSpec,
  UserSpec
} from '../checks/config.js'
import type { Declared } from '../report/model.js'
import { DEFAULT_TIMEOUTS } from '../checks/schema.js'
import { shellQuote } from '../ssh/client.js'

type WithDeclared<T> = T & { declared: Declared }

/** The checks a configuration's spec implies, by section (docs/derived-checks.md). */
export interface DerivedChecks {
  services: WithDeclared<ServiceSpec>[]
  users: WithDeclared<UserSpec>[]
  homeManager: WithDeclared<HomeManagerSpec>[]
  docker?: DockerSpec & { declared: Declared }
  /** Programs of declared packages, looked up on the PATH (never run). */
  packages: WithDeclared<CommandSpec>[]
  /** Hostname, time zone, listening ports, container engine. */
  commands: WithDeclared<CommandSpec>[]
}

/**
 * Units judged by their state: not templates (`foo@` cannot be started by name), and not Home
 * Manager's activation units.
 */
function judgedUnit(spec: DeclaredSpec): (u: DeclaredUnit) => boolean {
  // Home Manager's activation units are judged by the home-manager stage, with the user's files.
  const homes = new Set(spec.homeManager.map((h) => `home-manager-${h.user}.service`))
  return (u) => !u.name.includes('@.') && !homes.has(u.name)
}

/**
 * A unit wanted at boot must be active — except a oneshot service without RemainAfterExit, which
 * runs and exits: it must have run without failing (`mayExit`).
 */
function unitCheck(u: DeclaredUnit): WithDeclared<ServiceSpec> {
  const mayExit = u.name.endsWith('.service') && u.type === 'oneshot' && !u.remainAfterExit
  return {
    unit: u.name,
    timeoutMs: DEFAULT_TIMEOUTS.service,
    ...(mayExit ? { mayExit: true } : {}),
    declared: {
      option: u.option,
      value: `wanted by ${u.wantedBy.join(', ')}${mayExit ? ' (oneshot: must not fail)' : ''}`
    }
  }
}

function userCheck(u: DeclaredUser): WithDeclared<UserSpec> {
  const parts = [
    u.groups.length > 0 ? `groups ${u.groups.join(', ')}` : undefined,
    u.shell !== null ? `shell ${u.shell}` : undefined,
    u.home !== null ? `home ${u.home}` : undefined
  ].filter((p): p is string => p !== undefined)
  return {
    name: u.name,
    ...(u.groups.length > 0 ? { groups: u.groups } : {}),
    ...(u.shell !== null ? { shell: u.shell } : {}),
    ...(u.home !== null ? { home: u.home } : {}),
    timeoutMs: DEFAULT_TIMEOUTS.user,
    declared: { option: u.option, value: parts.join('; ') || 'exists' }
  }
}

/**
 * A package is found when its program resolves on the PATH of whoever declared it (the system's
 * packages: the SSH user's login shell). A package without `meta.mainProgram` is looked up by its
 * name; when nothing of that name is there, its store path (exact: evaluated for the guest's own
 * system) must be in the guest.
 */
function packageCheck(p: DeclaredPackage): WithDeclared<CommandSpec> {
  const program = p.mainProgram ?? p.name
  const lookup = `command -v ${shellQuote(program)}`
  const run =
    p.mainProgram === null && p.storePath !== null
      ? `${lookup} || { test -e ${shellQuote(p.storePath)} && echo "in the system: ${p.storePath} (no program named ${program})"; }`
      : lookup
  return {
    name: `${program} on the PATH${p.user !== null ? ` of ${p.user}` : ''}`,
    run,
    ...(p.user !== null ? { user: p.user } : {}),
    timeoutMs: DEFAULT_TIMEOUTS.command,
    declared: {
      option: p.option,
      value: `package ${p.name}${p.mainProgram !== null ? ` (program ${p.mainProgram})` : ''}`,
      ...(p.file !== null ? { file: p.file } : {})
    }
  }
}

/**
 * Whether something listens on TCP `port`, from the kernel's own tables (/proc/net/tcp{,6}:
 * state 0A is LISTEN): no ss or netstat needed in the guest.
 */
export function listeningCommand(port: number): string {
  const hex = port.toString(16).toUpperCase().padStart(4, '0')
  return (
    `awk 'FNR > 1 && $4 == "0A" { n = split($2, a, ":"); if (a[n] == "${hex}") found = 1 } ` +
    `END { if (found) print "listening on ${port}"; else { print "nothing listens on TCP port ${port}"; exit 1 } }' ` +
    '/proc/net/tcp /proc/net/tcp6 2>/dev/null'
  )
}

/** A command whose output must match, with its declaration. */
function probe(
  name: string,
  run: string,
  expect: string,
  declared: Declared
): WithDeclared<CommandSpec> {
  return { name, run, expect, timeoutMs: DEFAULT_TIMEOUTS.command, declared }
}

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

function systemProbes(spec: DeclaredSpec): WithDeclared<CommandSpec>[] {
  const probes: WithDeclared<CommandSpec>[] = []
  if (spec.hostName !== null)
    probes.push(
      probe('hostname', 'hostname', `^${escapeRegExp(spec.hostName)}$`, {
        option: 'networking.hostName',
        value: spec.hostName
      })
    )
  if (spec.timeZone !== null)
    probes.push(
      probe('time zone', 'readlink /etc/localtime', `/${escapeRegExp(spec.timeZone)}$`, {
        option: 'time.timeZone',
        value: spec.timeZone
      })
    )
  // An open port nothing listens on is a service that did not come up (or a stale rule).
  if (spec.firewall.enable)
    for (const port of spec.firewall.tcpPorts)
      probes.push(
        probe(`TCP port ${port} listening`, listeningCommand(port), '^listening on ', {
          option: 'networking.firewall.allowedTCPPorts',
          value: `port ${port} open`
        })
      )
  if (spec.containers.podman)
    probes.push(
      probe('podman answers', 'podman info --format "{{.Host.Arch}}"', '.', {
        option: 'virtualisation.podman.enable',
        value: 'true'
      })
    )
  return probes
}

/** Docker enabled: the daemon answers, and each member of the docker group can use it. */
function dockerCheck(spec: DeclaredSpec): DerivedChecks['docker'] {
  if (!spec.containers.docker) return undefined
  const members = spec.users.filter((u) => u.groups.includes('docker')).map((u) => u.name)
  return {
    users: members.map((name) => ({
      name,
      declared: {
        option: `users.users.${name}.extraGroups`,
        value: 'docker (uses the daemon without sudo)'
      }
    })),
    timeoutMs: DEFAULT_TIMEOUTS.docker,
    declared: {
      option: 'virtualisation.docker.enable',
      value: members.length > 0 ? `true; docker group: ${members.join(', ')}` : 'true'
    }
  }
}

/** The checks a NixOS configuration promises, each carrying the option it comes from. */
export function deriveChecks(spec: DeclaredSpec): DerivedChecks {
  return {
    services: spec.units.filter(judgedUnit(spec)).map(unitCheck),
    users: spec.users.map(userCheck),
    homeManager: spec.homeManager.map((h) => ({
      user: h.user,
      files: h.files.map((path) => ({ path, declared: { option: h.option, value: path } })),
      timeoutMs: DEFAULT_TIMEOUTS.homeManager,
      declared: {
        option: h.option,
        value: h.files.length > 0 ? `files ${h.files.join(', ')}` : 'activation'
      }
    })),
    docker: dockerCheck(spec),
    packages: spec.packages.map(packageCheck),
    commands: systemProbes(spec)
  }
}

/**
 * Whether `exclude` (the checks file's `derived.exclude`) turns a derived check off: an entry
 * names the check (`sshd.service`, `alice`, `hostname`) or its option (`users.users.alice`), or
 * an option prefix (`systemd.services` turns off every service).
 */
export function excludedBy(exclude: readonly string[], name: string, d: Declared): boolean {
  return exclude.some((e) => e === name || e === d.option || d.option.startsWith(`${e}.`))
}

/**
 * The checks of a run: the checks file's, then the derived ones it does not already have (the
 * file's own entry for the same unit, user, home or name wins), minus the excluded. Without a
 * checks file the derived ones replace the built-in defaults they overlap (the configuration's
 * `hostname` is more than "a hostname"). Returns the config and how many derived checks joined.
 */
export function withDerived(
  checks: ChecksConfig,
  derived: DerivedChecks,
  exclude: readonly string[]
): { checks: ChecksConfig; added: number } {
  let added = 0
  const fromFile = checks.source !== undefined
  const merge = <T extends Located>(own: T[], more: T[], key: (t: T) => string): T[] => {
    const wanted = more.filter(
      (t) => t.declared === undefined || !excludedBy(exclude, key(t), t.declared)
    )
    const ownKeys = new Set(own.map(key))
    const moreKeys = new Set(wanted.map(key))
    const add = fromFile ? wanted.filter((t) => !ownKeys.has(key(t))) : wanted
    added += add.length
    return [...(fromFile ? own : own.filter((t) => !moreKeys.has(key(t)))), ...add]
  }
  const d = derived.docker
  const docker =
    d !== undefined &&
    !(fromFile && checks.docker !== undefined) &&
    !excludedBy(exclude, 'docker', d.declared)
      ? (added++, d)
      : checks.docker
  return {
    checks: {
      ...checks,
      services: merge(checks.services, derived.services, (s) => s.unit),
      users: merge(checks.users, derived.users, (u) => u.name),
      homeManager: merge(checks.homeManager, derived.homeManager, (h) => h.user),
      packages: merge(checks.packages, derived.packages, (p) => p.name),
      commands: merge(checks.commands, derived.commands, (c) => c.name),
      ...(docker !== undefined ? { docker } : {})
    },
    added
  }
}
