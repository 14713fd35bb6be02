import { constants, existsSync } from 'node:fs'
import { access, readFile, readdir } from 'node:fs/promises'
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
  systemConfText?: string
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
  const [userConfText, systemConfText, kvm, binfmt] = await Promise.all([
    readOptional(confPath),
    readOptional(SYSTEM_CONF),
    kvmState(),
    binfmtFacts()
  ])
  return {
    hostSystem: host,
    uid: info.uid,
    user: env.USER ?? info.username,
    home,
    runnerTemp: env.RUNNER_TEMP ?? tmpdir(),
    act: env.ACT === 'true',
    systemd: existsSync('/run/systemd/system'),
    udev: existsSync('/run/udev/control'),
    ...(nix !== undefined ? { nix } : {}),
    daemon: existsSync(DAEMON_SOCKET),
    cpus: availableParallelism(),
    userConfPath: confPath,
    ...(userConfText !== undefined ? { userConfText } : {}),
    ...(systemConfText !== undefined ? { systemConfText } : {}),
    kvm,
    binfmt,
    githubServerUrl: env.GITHUB_SERVER_URL ?? 'https://github.com'
  }
}
