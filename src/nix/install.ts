import { constants } from 'node:fs'
import { lstat, open, rm } from 'node:fs/promises'
import { delimiter, join } from 'node:path'
import { InputError, ValidationFailure } from '../util/errors.js'
import type { Logger } from '../util/log.js'
import type { EmulationPlan } from './binfmt.js'
import {
  nixConfLines,
  renderConf,
  withManagedBlock,
  withoutAccessTokens,
  type CachixSettings,
  type ConfMode,
  type NixConf,
  supportsBuildDir
} from './conf.js'
import {
  asRoot,
  lastLines,
  replaceFile,
  runCommands,
  writeFileStep,
  type Command,
  type Executor,
  type Step
} from './exec.js'
import { SYSTEM_CONF, findOnPath, type HostFacts } from './facts.js'

/**
 * The newest stable Nix release (2026-08-13), after the 2025 and 2026 security releases.
 * docs/nix-setup.md says where the version and its installer's sha256 come from.
 */
export const DEFAULT_NIX_VERSION = '2.35.2'

/**
 * sha256 of `releases.nixos.org/nix/nix-<version>/install`, for versions whose hash public sources
 * state (docs/nix-setup.md). A download of such a version is checked before it runs; any other
 * version relies on TLS and on the script's own check of the tarball it downloads.
 */
export const INSTALLER_SHA256: Readonly<Record<string, string>> = {
  '2.35.2': '9adda97297d9e8ab360df95c729eabff4f4f93d6db091953c3a68f29e3fb130c'
}

/** The official installer of the newest release, wherever it points at the time. */
export const LATEST_INSTALLER_URL = 'https://nixos.org/nix/install'

export interface NixSetupInput {
  /** Nix release the official installer installs when nix is absent (DEFAULT_NIX_VERSION), or `latest`. */
  installerVersion?: string
  /** Override of https://releases.nixos.org/nix/nix-<version>/install (a mirror). */
  installerUrl?: string
  extraSubstituters: string[]
  extraTrustedPublicKeys: string[]
  /** From resolveCachix(). */
  cachix?: CachixSettings
  githubToken?: string
  /** From planEmulation(): its nix.conf settings (extra-platforms, extra-sandbox-paths). */
  emulation?: EmulationPlan
}

/**
 * Where a run puts the GitHub token, so that the post step can take it out again (a self-hosted
 * runner keeps the file between jobs). `block`: the access-tokens line of our block in the user's
 * nix.conf. `file`: the run's own nix.conf (the user's is a symlink), removed whole.
 */
export interface TokenFile {
  path: string
  kind: 'block' | 'file'
}

export interface NixSetupPlan {
  mode: ConfMode
  /** One line for the log and the summary: installed how, or why not. */
  summary: string
  installerUrl?: string
  commands: Step[]
  conf: NixConf
  /**
   * Environment for this run's Nix commands. Set when the user's nix.conf is a symlink (Home
   * Manager manages it): our settings then live in a file of the run, listed first in
   * NIX_USER_CONF_FILES, and the user's file is left alone.
   */
  env: Record<string, string>
  /** Directories to put on PATH (this process and, via core.addPath, later steps). */
  path: string[]
  /** Our scratch dir under RUNNER_TEMP (installer, nix-extra.conf, build dir, result link). */
  workDir: string
  buildDir: string
  /** The file the commands write the GitHub token to, if they write it at all. */
  tokenFile?: TokenFile
}

/** Checks a downloaded installer. sha256sum reads its list from fd 0 (no open of /dev/stdin). */
export function installerCheckCommand(script: string, sha256: string): Command {
  return {
    argv: ['sha256sum', '--check', '--strict', '--status', '-'],
    input: `${sha256}  ${script}\n`,
    why: `check the installer against its published sha256 (${sha256.slice(0, 12)}…)`
  }
}

export function nixWorkDir(runnerTemp: string): string {
  return join(runnerTemp, 'nixos-vm-validate')
}

export function installerUrl(version: string, override?: string): string {
  if (override !== undefined && override !== '') return override
  if (version === 'latest') return LATEST_INSTALLER_URL
  if (!/^\d+\.\d+\.\d+$/.test(version)) {
    throw new InputError(
      `nix-installer-version: "${version}" is not a Nix release number like ${DEFAULT_NIX_VERSION} (or latest)`
    )
  }
  return `https://releases.nixos.org/nix/nix-${version}/install`
}

/** What every way of setting Nix up shares: where, which settings, where the token goes. */
interface SetupBase {
  mode: ConfMode
  workDir: string
  buildDir: string
  withBuildDir: boolean
  conf: NixConf
  env: Record<string, string>
  tokenFile?: TokenFile
  /** Writes the user's settings (to the run's own file when the user's is a symlink). */
  userConf: () => Step
}

function setupMode(facts: HostFacts): ConfMode {
  if (facts.nix !== undefined) return 'existing'
  return facts.systemd && !facts.act ? 'fresh-daemon' : 'fresh-single'
}

function setupBase(input: NixSetupInput, facts: HostFacts): SetupBase {
  const workDir = nixWorkDir(facts.runnerTemp)
  const buildDir = join(workDir, 'nix-build')
  const mode = setupMode(facts)
  const withBuildDir = supportsBuildDir(
    mode === 'existing' ? facts.nix?.version : (input.installerVersion ?? DEFAULT_NIX_VERSION)
  )
  const conf = nixConfLines(
    {
      extraSubstituters: input.extraSubstituters,
      extraTrustedPublicKeys: input.extraTrustedPublicKeys,
      ...(input.cachix !== undefined ? { cachix: input.cachix } : {}),
      ...(input.githubToken !== undefined && facts.githubServerUrl === 'https://github.com'
        ? { githubToken: input.githubToken }
        : {}),
      emulation: input.emulation?.settings ?? [],
      ...(withBuildDir ? { buildDir } : {}),
      user: facts.user,
      daemon: facts.daemon
    },
    mode
  )
  // A user nix.conf that is a symlink belongs to whatever made it (Home Manager): ours goes into
  // the run's own file, read before the user's through NIX_USER_CONF_FILES.
  const runConf = join(workDir, 'nix.conf')
  const env: Record<string, string> =
    facts.userConfSymlink !== undefined
      ? { NIX_USER_CONF_FILES: [runConf, facts.userConfPath].join(':') }
      : {}
  const tokenFile: TokenFile | undefined = conf.user.some(([k]) => k === 'access-tokens')
    ? facts.userConfSymlink !== undefined
      ? { path: runConf, kind: 'file' }
      : { path: facts.userConfPath, kind: 'block' }
    : undefined
  const userConf = (): Step =>
    userConfStep(conf, facts, runConf, input.githubToken !== undefined ? [input.githubToken] : [])
  return { mode, workDir, buildDir, withBuildDir, conf, env, tokenFile, userConf }
}

function userConfStep(conf: NixConf, facts: HostFacts, runConf: string, secrets: string[]): Step {
  const keys = conf.user.map(([k]) => k).join(', ')
  const file = { mode: '0600', uid: facts.uid, privileged: false, secrets }
  return facts.userConfSymlink !== undefined
    ? writeFileStep(runConf, renderConf(conf.user), {
        ...file,
        why: `${facts.userConfPath} is a symlink (to ${facts.userConfSymlink}): this run's settings go to ${runConf} (${keys}), first in NIX_USER_CONF_FILES`
      })
    : writeFileStep(facts.userConfPath, withManagedBlock(facts.userConfText, conf.user), {
        ...file,
        why: `write the user's nix.conf (${keys})`
      })
}

/** The plan of one mode: its summary, commands (after the scratch directory) and PATH. */
function setupPlan(
  b: SetupBase,
  p: { summary: string; installerUrl?: string; commands: Step[]; path: string[] }
): NixSetupPlan {
  return {
    mode: b.mode,
    summary: p.summary,
    ...(p.installerUrl !== undefined ? { installerUrl: p.installerUrl } : {}),
    commands: [
      { argv: ['mkdir', '-p', b.workDir], why: 'scratch directory under RUNNER_TEMP' },
      ...p.commands
    ],
    conf: b.conf,
    env: b.env,
    path: p.path,
    workDir: b.workDir,
    buildDir: b.buildDir,
    ...(b.tokenFile !== undefined ? { tokenFile: b.tokenFile } : {})
  }
}

/** Nix on PATH: nothing installed; our settings as extra-* values (and the daemon's platforms). */
function existingNixPlan(b: SetupBase, input: NixSetupInput, facts: HostFacts): NixSetupPlan {
  const nix = facts.nix as { path: string; version?: string }
  const uid = facts.uid
  const commands: Step[] = []
  if (!facts.daemon && b.withBuildDir)
    commands.push({
      argv: ['install', '-d', '-m', '0700', b.buildDir],
      why: 'build directory (build-dir)'
    })
  commands.push(b.userConf())
  if (b.conf.system.length > 0) {
    commands.push(
      writeFileStep(SYSTEM_CONF, withManagedBlock(facts.systemConfText, b.conf.system), {
        mode: '0644',
        uid,
        privileged: true,
        why: `let the nix-daemon build for ${b.conf.system.map(([k, v]) => `${k} = ${v}`).join(', ')}`,
        ifSymlink: `This host's Nix is configured by its own system configuration (a NixOS host): set boot.binfmt.emulatedSystems = [ "${input.emulation?.guest ?? 'aarch64-linux'}" ] there (it registers the emulator and adds extra-platforms), or run this leg on a runner of the guest's architecture.`
      }),
      {
        argv: asRoot(['systemctl', 'restart', 'nix-daemon.service'], uid),
        why: 'the daemon reads nix.conf at start',
        optional: true
      }
    )
  }
  return setupPlan(b, {
    summary: `Nix is already installed (${nix.path}${nix.version !== undefined ? `, ${nix.version}` : ''}): not installing; our settings go to ${facts.userConfPath}`,
    commands,
    path: []
  })
}

/** The installer: its version, URL and script path, and the steps that download and check it. */
function installerSteps(
  b: SetupBase,
  input: NixSetupInput
): { version: string; url: string; script: string; fetch: Command[] } {
  const version = input.installerVersion ?? DEFAULT_NIX_VERSION
  const url = installerUrl(version, input.installerUrl)
  const script = join(b.workDir, `install-nix-${version}`)
  const download: Command = {
    argv: [
      'curl',
      '--fail',
      '--silent',
      '--show-error',
      '--location',
      '--retry',
      '5',
      '--retry-connrefused',
      '--output',
      script,
      url
    ],
    why: `download the Nix ${version} installer`
  }
  const known = input.installerUrl === undefined ? INSTALLER_SHA256[version] : undefined
  const verify: Command[] = known !== undefined ? [installerCheckCommand(script, known)] : []
  return { version, url, script, fetch: [download, ...verify] }
}

/** systemd runs (not act): the installer with --daemon, settings in /etc/nix/nix.conf. */
function daemonPlan(b: SetupBase, input: NixSetupInput, facts: HostFacts): NixSetupPlan {
  const { version, url, script, fetch } = installerSteps(b, input)
  const extraConf = join(b.workDir, 'nix-extra.conf')
  const commands: Step[] = []
  if (b.withBuildDir) {
    commands.push({
      argv: asRoot(['install', '-d', '-m', '0700', b.buildDir], facts.uid),
      why: 'build directory of the daemon (build-dir)'
    })
  }
  commands.push(
    writeFileStep(extraConf, renderConf(b.conf.system), {
      mode: '0644',
      uid: facts.uid,
      privileged: false,
      why: 'settings for /etc/nix/nix.conf'
    }),
    ...fetch,
    {
      argv: [
        'sh',
        script,
        '--daemon',
        '--no-channel-add',
        '--daemon-user-count',
        String(Math.max(4, facts.cpus * 2)),
        '--nix-extra-conf-file',
        extraConf
      ],
      why: `install Nix ${version} (multi-user: systemd runs here)`
    }
  )
  if (b.conf.user.length > 0) commands.push(b.userConf())
  return setupPlan(b, {
    summary: `installing Nix ${version} multi-user (--daemon: systemd is running)`,
    installerUrl: url,
    commands,
    path: ['/nix/var/nix/profiles/default/bin', join(facts.home, '.nix-profile', 'bin')]
  })
}

/** act or no systemd: --no-daemon, /nix created first (act runs as root without sudo). */
function singleUserPlan(b: SetupBase, input: NixSetupInput, facts: HostFacts): NixSetupPlan {
  const { version, url, script, fetch } = installerSteps(b, input)
  const commands: Step[] = []
  if (b.withBuildDir) {
    commands.push({
      argv: ['install', '-d', '-m', '0700', b.buildDir],
      why: 'build directory (build-dir)'
    })
  }
  commands.push(
    {
      argv: asRoot(['install', '-d', '-m', '0755', '-o', facts.user, '/nix'], facts.uid),
      why: 'the store directory, owned by the single user'
    },
    b.userConf(),
    ...fetch,
    {
      argv: ['sh', script, '--no-daemon', '--no-channel-add'],
      why: `install Nix ${version} (single-user)`
    }
  )
  return setupPlan(b, {
    summary: `installing Nix ${version} single-user (--no-daemon: ${facts.act ? 'running under act' : 'no systemd in this container'})`,
    installerUrl: url,
    commands,
    path: [join(facts.home, '.nix-profile', 'bin')]
  })
}

/**
 * Pure: what installing and configuring Nix takes on this machine.
 * - nix on PATH: nothing is installed; our settings go to the user's nix.conf as extra-* values
 *   (plus, with a daemon and an emulated build, extra-platforms in /etc/nix/nix.conf).
 * - systemd running and not under act: the official installer with --daemon (multi-user),
 *   settings in /etc/nix/nix.conf through --nix-extra-conf-file.
 * - act or no systemd: --no-daemon (single-user), settings in the user's nix.conf, /nix created
 *   first (act's containers run as root without sudo, and the installer would call sudo).
 * The GitHub token only ever goes to the user's nix.conf, mode 0600.
 */
export function planNixSetup(input: NixSetupInput, facts: HostFacts): NixSetupPlan {
  const b = setupBase(input, facts)
  if (b.mode === 'existing') return existingNixPlan(b, input, facts)
  return b.mode === 'fresh-daemon' ? daemonPlan(b, input, facts) : singleUserPlan(b, input, facts)
}

export interface NixSetupResult {
  mode: ConfMode
  installed: boolean
  summary: string
  nixPath: string
  version?: string
  /** Directories put on PATH; the action also passes them to core.addPath for later steps. */
  path: string[]
  workDir: string
  warnings: string[]
}

/**
 * Installs (when absent) and configures Nix: runs planNixSetup's commands, puts Nix on this
 * process's PATH and checks `nix --version`.
 */
export async function setupNix(
  plan: NixSetupPlan,
  deps: {
    exec: Executor
    log: Logger
    /** The environment whose PATH gets Nix (default: this process's). */
    env?: NodeJS.ProcessEnv
    signal?: AbortSignal
    which?: (name: string, pathVar: string | undefined) => string | undefined
  }
): Promise<NixSetupResult> {
  const env = deps.env ?? process.env
  deps.log.info(plan.summary)
  const warnings = await runCommands(plan.commands, deps.exec, deps.log, deps.signal, {
    tempRoot: plan.workDir
  })
  Object.assign(env, plan.env)
  const current = (env.PATH ?? '').split(delimiter)
  const added = plan.path.filter((p) => !current.includes(p))
  if (added.length > 0) env.PATH = [...added, ...current].join(delimiter)
  const nixPath = (deps.which ?? findOnPath)('nix', env.PATH)
  if (nixPath === undefined) {
    throw new ValidationFailure(
      'tool-error',
      `nix is not on PATH after the setup (PATH=${env.PATH ?? ''})`
    )
  }
  const r = await deps.exec.run({ argv: [nixPath, '--version'], why: 'check the installation' })
  if (r.code !== 0)
    throw new ValidationFailure(
      'tool-error',
      `${nixPath} --version failed`,
      lastLines(r.stderr, 10)
    )
  const version = /(\d+\.\d+(?:\.\d+)?\S*)/.exec(r.stdout)?.[1]
  return {
    mode: plan.mode,
    installed: plan.mode !== 'existing',
    summary: plan.summary,
    nixPath,
    ...(version !== undefined ? { version } : {}),
    path: plan.path,
    workDir: plan.workDir,
    warnings
  }
}

/**
 * The post step's cleanup of what planNixSetup's `tokenFile` names: the access-tokens line(s) of
 * our block go (every other byte of the file stays, its mode too), or the run's own nix.conf is
 * removed. A symlink is never followed nor replaced: the file is then no longer the one the run
 * wrote. Missing files and files without the token are fine (main may have stopped before).
 * Returns what was done, for the log.
 */
export async function removeGithubToken(t: TokenFile): Promise<string> {
  if (t.kind === 'file') {
    const st = await lstat(t.path).catch(() => undefined)
    if (st === undefined) return `${t.path} does not exist: no GitHub token to remove`
    if (!st.isFile()) return `${t.path} is not a regular file (a symlink?): left alone`
    await rm(t.path, { force: true })
    return `removed ${t.path} (this run's nix.conf, which held the GitHub token)`
  }
  let text: string
  let mode: number
  try {
    // O_NOFOLLOW: a symlink put there since is not read through (ELOOP).
    const fh = await open(t.path, constants.O_RDONLY | constants.O_NOFOLLOW)
    try {
      const st = await fh.stat()
      if (!st.isFile()) return `${t.path} is not a regular file: left alone`
      mode = st.mode & 0o7777
      text = await fh.readFile('utf8')
    } finally {
      await fh.close()
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return `${t.path} does not exist: no GitHub token to remove`
    if (code === 'ELOOP') return `${t.path} is now a symlink: left alone`
    throw err
  }
  const cleaned = withoutAccessTokens(text)
  if (cleaned === text) return `no GitHub token in ${t.path}`
  await replaceFile(t.path, cleaned, mode)
  return `removed the GitHub token from ${t.path}`
}
