import { join } from 'node:path'
import type { GuestSystem } from '../vm/system.js'
import { planEmulation, type EmulationPlan } from './binfmt.js'
import { renderConf, type ConfLine } from './conf.js'
import { renderCommand, type Step } from './exec.js'
import { nixBuildArgv, validationModuleText, BUILD_EXPRESSION } from './expr.js'
import { SPEC_EXPRESSION, specArgv } from './spec.js'
import { nixRunOptions, type HostFacts } from './facts.js'
import type { FlakeTarget } from './flakeref.js'
import { planNixSetup, type NixSetupInput } from './install.js'
import { planKvmAccess } from './kvm.js'
import { localSubstituter, type StoreCacheKeys } from './cache.js'

export interface PlanSection {
  title: string
  lines: string[]
}

export interface NixPlanInput {
  /** The action installs and configures; the CLI uses the Nix it finds as it is. */
  frontEnd: 'action' | 'cli'
  target: FlakeTarget
  system: GuestSystem
  sshUser: string
  facts: HostFacts
  /** Action: what to install and configure. */
  setup?: NixSetupInput
  /** Action: the store cache, when enabled. */
  cache?: { keys: StoreCacheKeys; dir: string }
  /** Action: Cachix cache name, and whether a token allows pushing. */
  cachix?: { name: string; push: boolean }
  /** Where the out-link goes (`<workDir>/result`). */
  workDir: string
  outDir: string
}

function command(c: Step): string {
  return `$ ${renderCommand(c)}  # ${c.why}${c.optional === true ? ' (may fail)' : ''}`
}

function confLines(lines: ConfLine[]): string[] {
  return renderConf(lines)
    .trimEnd()
    .split('\n')
    .map((l) => l.replace(/(access-tokens = github\.com=).*/, '$1***'))
}

/** The emulation the build of `system` needs on this host. */
export function emulationFor(system: GuestSystem, facts: HostFacts): EmulationPlan {
  return planEmulation(system, facts.hostSystem, facts.binfmt, facts.uid)
}

/** The action's Nix install and settings, and its KVM access. */
function actionSetupSections(
  p: NixPlanInput,
  setupInput: NixSetupInput,
  emulation: EmulationPlan
): PlanSection[] {
  const f = p.facts
  const setup = planNixSetup({ ...setupInput, emulation }, f)
  const kvm = planKvmAccess(f)
  return [
    {
      title: 'Nix',
      lines: [
        setup.summary,
        ...(setup.installerUrl !== undefined ? [`installer: ${setup.installerUrl}`] : []),
        ...setup.commands.map(command),
        ...(setup.conf.system.length > 0
          ? ['/etc/nix/nix.conf:', ...confLines(setup.conf.system).map((l) => `    ${l}`)]
          : []),
        ...(setup.conf.user.length > 0
          ? [`${f.userConfPath} (0600):`, ...confLines(setup.conf.user).map((l) => `    ${l}`)]
          : []),
        ...(setup.path.length > 0 ? [`PATH += ${setup.path.join(':')}`] : [])
      ]
    },
    {
      title: 'KVM',
      lines: [
        kvm.reason,
        ...kvm.commands.map(command),
        'the engine still proves KVM with a probe guest before using it'
      ]
    }
  ]
}

/** The CLI's Nix: used as found. */
function cliNixSection(f: HostFacts): PlanSection {
  return {
    title: 'Nix',
    lines:
      f.nix !== undefined
        ? [
            `uses ${f.nix.path}${f.nix.version !== undefined ? ` (Nix ${f.nix.version})` : ''} as it is: the CLI installs and configures nothing`,
            "every nix command gets --extra-experimental-features 'nix-command flakes'"
          ]
        : ['nix is not on PATH: the build cannot run (install Nix, or pass --runner)']
  }
}

function architectureSection(p: NixPlanInput, emulation: EmulationPlan): PlanSection {
  const lines: string[] = [emulation.reason]
  if (emulation.state !== 'native') {
    lines.push(
      `binfmt: ${emulation.state === 'ready' ? 'ready' : 'to register'}, interpreter ${emulation.interpreter ?? '?'}`
    )
    if (p.frontEnd === 'action') lines.push(...emulation.commands.map(command))
    else if (emulation.state === 'register') {
      lines.push(
        `the CLI registers nothing: ${p.system} derivations that are not substituted cannot be built until this is done:`,
        ...emulation.commands.map(command)
      )
    }
    lines.push(...emulation.settings.map(([k, v]) => `nix setting: ${k} = ${v}`))
  }
  return { title: `Architecture (guest ${p.system}, host ${p.facts.hostSystem})`, lines }
}

function buildSection(p: NixPlanInput, emulation: EmulationPlan): PlanSection {
  const f = p.facts
  const outLink = join(p.workDir, 'result')
  const argv = nixBuildArgv({
    target: p.target,
    sshUser: p.sshUser,
    sshPublicKey: '<ephemeral ed25519 public key>',
    hostSystem: f.hostSystem,
    outLink,
    emulation: emulation.settings,
    options: nixRunOptions(f),
    ...(p.cache !== undefined ? { extraSubstituters: [localSubstituter(p.cache.dir)] } : {})
  })
  const shown = argv.map((a) => (a === BUILD_EXPRESSION ? '<expression>' : a))
  const specShown = specArgv({
    target: p.target,
    sshUser: p.sshUser,
    sshPublicKey: '<ephemeral ed25519 public key>',
    hostSystem: f.hostSystem,
    options: nixRunOptions(f)
  }).map((a) => (a === SPEC_EXPRESSION ? '<spec expression>' : a))
  return {
    title: 'Build',
    lines: [
      `flake ${p.target.flakeRef}, nixosConfigurations.${p.target.configuration}, extended through extendModules (the flake needs no change) with:`,
      ...validationModuleText({ sshUser: p.sshUser, guest: p.system, host: f.hostSystem }).map(
        (l) => `module: ${l}`
      ),
      ...(nixRunOptions(f).length > 0
        ? [
            `Nix runs as root without a daemon and the group "${f.buildUsers?.group ?? ''}" does not exist: builds of this run pass --option build-users-group ''`
          ]
        : []),
      `$ ${renderCommand({ argv: shown, why: '' })}`,
      `<expression>: let cfg = (builtins.getFlake flakeRef).nixosConfigurations.\${configuration}.extendModules { modules = [ <module above> ]; }; in cfg.config.system.build.vm`,
      `runner: ${outLink}/bin/run-*-vm; log: ${join(p.outDir, 'build.log')}; a failure is build-failed with the file and line Nix names`,
      `beside the build, what the configuration declares (units, users, Home Manager files, packages, hostname, …) becomes checks (docs/derived-checks.md): $ ${renderCommand({ argv: specShown, why: '' })}`
    ]
  }
}

/** The store cache and Cachix sections, for those enabled. */
function cacheSections(p: NixPlanInput): PlanSection[] {
  const sections: PlanSection[] = []
  if (p.cache !== undefined) {
    sections.push({
      title: 'Store cache',
      lines: [
        `restore ${p.cache.dir} with key ${p.cache.keys.key} (inputs from ${p.cache.keys.inputsFrom}; restore keys: ${p.cache.keys.restoreKeys.join(', ')})`,
        `build with extra substituter ${localSubstituter(p.cache.dir)} (trusted for this one store; other caches keep needing signatures)`,
        `after the build: nix copy --to file://${p.cache.dir}?compression=zstd <runner>, then save as ${p.cache.keys.key} (skipped when that key was restored, or when a partial hit already holds 90 % of the closure's bytes; a parallel leg saving it too is a warning)`
      ]
    })
  }
  if (p.cachix !== undefined) {
    sections.push({
      title: 'Cachix',
      lines: [
        `substituter https://${p.cachix.name}.cachix.org (public key from extra-trusted-public-keys, else from the Cachix API)`,
        p.cachix.push
          ? 'on success: cachix push the VM closure (auth token set)'
          : 'no auth token: nothing is pushed'
      ]
    })
  }
  return sections
}

/** Sections for renderPlan(): Nix, KVM, emulation, build, caches — nothing is run. */
export function nixPlanSections(p: NixPlanInput): PlanSection[] {
  const emulation = emulationFor(p.system, p.facts)
  const setup =
    p.frontEnd === 'action' && p.setup !== undefined
      ? actionSetupSections(p, p.setup, emulation)
      : [cliNixSection(p.facts)]
  return [
    ...setup,
    architectureSection(p, emulation),
    buildSection(p, emulation),
    ...cacheSections(p)
  ]
}
