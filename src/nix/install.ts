import { delimiter, join } from 'node:path'
import { InputError, ValidationFailure } from '../util/errors.js'
import type { Logger } from '../util/log.js'
import type { EmulationPlan } from './binfmt.js'
import {
  nixConfLines,
  renderConf,
  withManagedBlock,
  type CachixSettings,
  type ConfMode,
  type NixConf,
  supportsBuildDir
} from './conf.js'
import {
  asRoot,
  lastLines,
  runCommands,
  writeFileCommand,
  type Command,
  type Executor
} from './exec.js'
import { SYSTEM_CONF, findOnPath, type HostFacts } from './facts.js'

export const DEFAULT_NIX_VERSION = '2.28.3'

export interface NixSetupInput {
  /** Nix release the official installer installs when nix is absent (default 2.28.3). */
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

export interface NixSetupPlan {
  mode: ConfMode
  /** One line for the log and the summary: installed how, or why not. */
  summary: string
  installerUrl?: string
  commands: Command[]
  conf: NixConf
  /** Directories to put on PATH (this process and, via core.addPath, later steps). */
  path: string[]
  /** Our scratch dir under RUNNER_TEMP (installer, nix-extra.conf, build dir, result link). */
  workDir: string
  buildDir: string
}

export function nixWorkDir(runnerTemp: string): string {
  return join(runnerTemp, 'nixos-vm-validate')
}

export function installerUrl(version: string, override?: string): string {
  if (override !== undefined && override !== '') return override
  if (!/^\d+\.\d+\.\d+$/.test(version)) {
    throw new InputError(
      `nix-installer-version: "${version}" is not a Nix release number like ${DEFAULT_NIX_VERSION}`
    )
  }
  return `https://releases.nixos.org/nix/nix-${version}/install`
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
  const workDir = nixWorkDir(facts.runnerTemp)
  const buildDir = join(workDir, 'nix-build')
  const mode: ConfMode =
    facts.nix !== undefined
      ? 'existing'
      : facts.systemd && !facts.act
        ? 'fresh-daemon'
        : 'fresh-single'
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
  const uid = facts.uid
  const secrets = input.githubToken !== undefined ? [input.githubToken] : []
  const userConf = (): Command =>
    writeFileCommand(facts.userConfPath, withManagedBlock(facts.userConfText, conf.user), {
      mode: '0600',
      uid,
      privileged: false,
      why: `write the user's nix.conf (${conf.user.map(([k]) => k).join(', ')})`,
      secrets
    })
  const commands: Command[] = [
    { argv: ['mkdir', '-p', workDir], why: 'scratch directory under RUNNER_TEMP' }
  ]

  if (mode === 'existing') {
    const nix = facts.nix as { path: string; version?: string }
    if (!facts.daemon && withBuildDir)
      commands.push({
        argv: ['install', '-d', '-m', '0700', buildDir],
        why: 'build directory (build-dir)'
      })
    commands.push(userConf())
    if (conf.system.length > 0) {
      commands.push(
        writeFileCommand(SYSTEM_CONF, withManagedBlock(facts.systemConfText, conf.system), {
          mode: '0644',
          uid,
          privileged: true,
          why: `let the nix-daemon build for ${conf.system.map(([k, v]) => `${k} = ${v}`).join(', ')}`
        }),
        {
          argv: asRoot(['systemctl', 'restart', 'nix-daemon.service'], uid),
          why: 'the daemon reads nix.conf at start',
          optional: true
        }
      )
    }
    return {
      mode,
      summary: `Nix is already installed (${nix.path}${nix.version !== undefined ? `, ${nix.version}` : ''}): not installing; our settings go to ${facts.userConfPath}`,
      commands,
      conf,
      path: [],
      workDir,
      buildDir
    }
  }

  const version = input.installerVersion ?? DEFAULT_NIX_VERSION
  const url = installerUrl(version, input.installerUrl)
  const script = join(workDir, `install-nix-${version}`)
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
  if (mode === 'fresh-daemon') {
    const extraConf = join(workDir, 'nix-extra.conf')
    if (withBuildDir) {
      commands.push({
        argv: asRoot(['install', '-d', '-m', '0700', buildDir], uid),
        why: 'build directory of the daemon (build-dir)'
      })
    }
    commands.push(
      writeFileCommand(extraConf, renderConf(conf.system), {
        mode: '0644',
        uid,
        privileged: false,
        why: 'settings for /etc/nix/nix.conf'
      }),
      download,
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
    if (conf.user.length > 0) commands.push(userConf())
    return {
      mode,
      summary: `installing Nix ${version} multi-user (--daemon: systemd is running)`,
      installerUrl: url,
      commands,
      conf,
      path: ['/nix/var/nix/profiles/default/bin', join(facts.home, '.nix-profile', 'bin')],
      workDir,
      buildDir
    }
  }
  if (withBuildDir) {
    commands.push({
      argv: ['install', '-d', '-m', '0700', buildDir],
      why: 'build directory (build-dir)'
    })
  }
  commands.push(
    {
      argv: asRoot(['install', '-d', '-m', '0755', '-o', facts.user, '/nix'], uid),
      why: 'the store directory, owned by the single user'
    },
    userConf(),
    download,
    {
      argv: ['sh', script, '--no-daemon', '--no-channel-add'],
      why: `install Nix ${version} (single-user)`
    }
  )
  return {
    mode,
    summary: `installing Nix ${version} single-user (--no-daemon: ${facts.act ? 'running under act' : 'no systemd in this container'})`,
    installerUrl: url,
    commands,
    conf,
    path: [join(facts.home, '.nix-profile', 'bin')],
    workDir,
    buildDir
  }
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
  const warnings = await runCommands(plan.commands, deps.exec, deps.log, deps.signal)
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
