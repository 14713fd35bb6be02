import { constants, existsSync } from 'node:fs'
import { access, lstat, readFile, readdir, readlink } from 'node:fs/promises'
import { homedir, availableParallelism, tmpdir, userInfo } from 'node:os'
import { delimiter, join } from 'node:path'
import { hostSystem as currentHostSystem, type GuestSystem } from '../vm/system.js'
import {
  BINFMT_DIR,
  parseBinfmtEntry,
  staticInterpreter,
  type BinfmtEntry,
  type BinfmtFacts
} from './binfmt.js'
import type { Executor } from './exec.js'

/**
 * Everything the Nix setup decides on, read once from the machine. The planners are pure
 * functions of this, so every case (native, emulated, act, Nix already installed) is a unit test.
 */
export interface HostFacts {
  hostSystem: GuestSystem
  uid: number
  /** The runner user (trusted-users, ownership of /nix in single-user mode). */
  user: string
  home: string
  /** RUNNER_TEMP, or the OS temp dir outside GitHub. */
  runnerTemp: string
  /** Running under nektos/act (ACT=true): no systemd, no udev. */
  act: boolean
  /** /run/systemd/system exists: a multi-user (daemon) install is possible. */
  systemd: boolean
  /** /run/udev/control exists: udev rules can be reloaded. */
  udev: boolean
  nix?: { path: string; version?: string }
  /** A nix-daemon socket exists (multi-user installation). */
  daemon: boolean
  cpus: number
  /** Where this user's nix.conf lives and what it holds now. */
  userConfPath: string
  userConfText?: string
  /** The user's nix.conf is a symlink (to this): Home Manager manages it; it is not rewritten. */
  userConfSymlink?: string
  systemConfText?: string
  /**
   * Nix as root without a daemon builds as a member of `build-users-group` (default nixbld).
   * Debian's nix-bin, containers and act have no such group: then every build of this run passes
   * `build-users-group =` (builds run as root, as a single-user install does).
   */
  buildUsers?: { group: string; exists: boolean }
  kvm: 'absent' | 'rw' | 'no-access'
  binfmt: BinfmtFacts
  githubServerUrl: string
}

export const SYSTEM_CONF = '/etc/nix/nix.conf'
export const DAEMON_SOCKET = '/nix/var/nix/daemon-socket/socket'

/** NIX_USER_CONF_FILES' first file, else $XDG_CONFIG_HOME/nix/nix.conf, else ~/.config/nix/nix.conf. */
export function userConfPath(env: NodeJS.ProcessEnv, home: string): string {
  const listed = (env.NIX_USER_CONF_FILES ?? '').split(':').filter(Boolean)
  if (listed.length > 0) return listed[0]
  const xdg =
    env.XDG_CONFIG_HOME !== undefined && env.XDG_CONFIG_HOME !== ''
      ? env.XDG_CONFIG_HOME
      : join(home, '.config')
  return join(xdg, 'nix', 'nix.conf')
}

/** An executable named `name` on PATH (no shell: PATH is searched here). */
export function findOnPath(name: string, pathVar = process.env.PATH ?? ''): string | undefined {
  for (const dir of pathVar.split(delimiter).filter(Boolean)) {
    const candidate = join(dir, name)
    if (existsSync(candidate)) return candidate
  }
  return undefined
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8')
  } catch {
    return undefined
  }
}

async function symlinkTarget(path: string): Promise<string | undefined> {
  const st = await lstat(path).catch(() => undefined)
  return st?.isSymbolicLink() === true ? readlink(path).catch(() => '?') : undefined
}

/** Whether /etc/group names the group (getent would also ask NSS; runners use files). */
export async function groupExists(name: string, groupFile = '/etc/group'): Promise<boolean> {
  const text = await readOptional(groupFile)
  return (text ?? '').split('\n').some((l) => l.split(':')[0] === name)
}

/** `build-users-group = nixbld` from `nix show-config` (Nix 2.8) or `nix config show` (2.20+). */
export function parseBuildUsersGroup(configText: string): string | undefined {
  const m = /^build-users-group = ?(.*)$/m.exec(configText)
  return m !== null ? m[1].trim() : undefined
}

/**
 * The build-users-group this Nix would use, and whether it exists. Only asked where it matters:
 * root, no daemon (a daemon's builds are its own business).
 */
export async function readBuildUsers(
  exec: Executor,
  nix: string,
  o: { uid: number; daemon: boolean; env?: NodeJS.ProcessEnv; groupFile?: string }
): Promise<HostFacts['buildUsers']> {
  if (o.uid !== 0 || o.daemon) return undefined
  for (const sub of [['config', 'show'], ['show-config']]) {
    const r = await exec
      .run({
        argv: [nix, '--extra-experimental-features', 'nix-command flakes', ...sub],
        why: "which group Nix's builds run as",
        ...(o.env !== undefined ? { env: o.env as Record<string, string> } : {})
      })
      .catch(() => undefined)
    if (r === undefined || r.code !== 0) continue
    const group = parseBuildUsersGroup(r.stdout)
    if (group === undefined) continue
    return { group, exists: group === '' || (await groupExists(group, o.groupFile)) }
  }
  return undefined
}

async function kvmState(device = '/dev/kvm'): Promise<HostFacts['kvm']> {
  if (!existsSync(device)) return 'absent'
  try {
    await access(device, constants.R_OK | constants.W_OK)
    return 'rw'
  } catch {
    return 'no-access'
  }
}

async function binfmtFacts(): Promise<BinfmtFacts> {
  const mounted = existsSync(join(BINFMT_DIR, 'register'))
  const entries: BinfmtEntry[] = []
  if (mounted) {
    for (const name of await readdir(BINFMT_DIR).catch(() => [] as string[])) {
      if (name === 'register' || name === 'status') continue
      const text = await readOptional(join(BINFMT_DIR, name))
      if (text !== undefined) entries.push(parseBinfmtEntry(name, text))
    }
  }
  const interpreters = (['aarch64-linux', 'x86_64-linux'] as const)
    .map(staticInterpreter)
    .filter((p) => existsSync(p))
  return { mounted, entries, interpreters }
}

/** Reads the facts (read-only: safe for --dry-run). `nix --version` runs when nix is found. */
export async function gatherHostFacts(
  exec: Executor,
  env: NodeJS.ProcessEnv = process.env
): Promise<HostFacts> {
  const host = currentHostSystem()
  if (host === undefined)
    throw new Error(`unsupported host architecture ${process.arch}: x86_64 or aarch64 Linux only`)
  const info = userInfo()
  const home = env.HOME ?? homedir()
  const nixPath = findOnPath('nix', env.PATH)
  let nix: HostFacts['nix']
  if (nixPath !== undefined) {
    const r = await exec
      .run({ argv: [nixPath, '--version'], why: 'which Nix is installed' })
      .catch(() => undefined)
    const version =
      r !== undefined && r.code === 0 ? /(\d+\.\d+(?:\.\d+)?\S*)/.exec(r.stdout)?.[1] : undefined
    nix = { path: nixPath, ...(version !== undefined ? { version } : {}) }
  }
  const confPath = userConfPath(env, home)
  const uid = info.uid
  const daemon = existsSync(DAEMON_SOCKET)
  const [userConfText, userConfSymlink, systemConfText, kvm, binfmt, buildUsers] =
    await Promise.all([
      readOptional(confPath),
      symlinkTarget(confPath),
      readOptional(SYSTEM_CONF),
      kvmState(),
      binfmtFacts(),
      nix !== undefined ? readBuildUsers(exec, nix.path, { uid, daemon }) : undefined
    ])
  return {
    hostSystem: host,
    uid,
    user: env.USER ?? info.username,
    home,
    runnerTemp: env.RUNNER_TEMP ?? tmpdir(),
    act: env.ACT === 'true',
    systemd: existsSync('/run/systemd/system'),
    udev: existsSync('/run/udev/control'),
    ...(nix !== undefined ? { nix } : {}),
    daemon,
    cpus: availableParallelism(),
    userConfPath: confPath,
    ...(userConfText !== undefined ? { userConfText } : {}),
    ...(userConfSymlink !== undefined ? { userConfSymlink } : {}),
    ...(buildUsers !== undefined ? { buildUsers } : {}),
    ...(systemConfText !== undefined ? { systemConfText } : {}),
    kvm,
    binfmt,
    githubServerUrl: env.GITHUB_SERVER_URL ?? 'https://github.com'
  }
}

/**
 * `--option` pairs every Nix command of this run needs on this host: `build-users-group =` when
 * Nix runs as root without a daemon and its build-users-group does not exist (Debian's nix-bin
 * on a fresh machine, containers, act). Without it every build fails with "the group 'nixbld'
 * specified in 'build-users-group' does not exist".
 */
export function nixRunOptions(facts: Pick<HostFacts, 'buildUsers'>): [string, string][] {
  const b = facts.buildUsers
  return b !== undefined && b.group !== '' && !b.exists ? [['build-users-group', '']] : []
}
