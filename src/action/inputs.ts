import { isAbsolute, resolve } from 'node:path'
import * as core from '@actions/core'
import { InputError } from '../util/errors.js'
import { parsePerfSettings, PERF_SETTING_DEFAULTS, type PerfSettings } from '../perf/settings.js'
import { InputErrorCollector } from '../util/input-errors.js'
import type { SshKeySource, SshKeyWording } from '../nix/sshkey.js'
import { DEFAULT_NIX_VERSION } from '../nix/install.js'
import { hostSystem, parseSystem, SYSTEMS, type GuestSystem } from '../vm/system.js'
import { FORBIDDEN_ARTIFACT_NAME_CHARS } from '../github/artifact.js'
import { parseFlakeTarget } from '../nix/flakeref.js'
import { preflight } from '../pipeline/preflight.js'
import { parseLegs, type ExpectedLeg } from '../rollup/collect.js'
import {
  parseRunSettings,
  RUN_DEFAULTS,
  type RawSettings,
  type RunRequest,
  type RunSettings,
  type SettingName,
  type Spelling
} from '../pipeline/request.js'

/** Every input of action.yml, in its order (a unit test keeps the two in step). */
export const INPUT_NAMES = [
  'flake',
  'configuration',
  'system',
  'vm-runner',
  'ssh-key',
  'ssh-user',
  'stages',
  'checks',
  'boot-timeout',
  'boot-retries',
  'timeout',
  'accel',
  'artifact-name',
  'retention-days',
  'github-token',
  'check-name',
  'pr-comment',
  'dry-run',
  'nix-installer-version',
  'extra-substituters',
  'extra-trusted-public-keys',
  'cachix-cache',
  'cachix-auth-token',
  'cache',
  'perf-baseline',
  'perf-threshold',
  'perf-regression',
  'mode',
  'legs'
] as const
export type InputName = (typeof INPUT_NAMES)[number]

/**
 * action.yml's defaults, applied again here: the runner fills them in, but a bundle started by
 * hand (tests, act with a partial `with:`) sees an empty string. The run's settings take theirs
 * from the one table (RUN_DEFAULTS); `github-token` defaults to an expression, so it has none here.
 */
export const INPUT_DEFAULTS: Partial<Record<InputName, string>> = {
  flake: '.',
  'ssh-user': RUN_DEFAULTS['ssh-user'],
  stages: RUN_DEFAULTS.stages,
  'boot-timeout': RUN_DEFAULTS['boot-timeout'],
  timeout: RUN_DEFAULTS.timeout,
  accel: RUN_DEFAULTS.accel,
  'pr-comment': 'false',
  'dry-run': 'false',
  'nix-installer-version': DEFAULT_NIX_VERSION,
  cache: 'true',
  'perf-baseline': PERF_SETTING_DEFAULTS.baseline,
  'perf-threshold': PERF_SETTING_DEFAULTS.threshold,
  'perf-regression': PERF_SETTING_DEFAULTS.regression,
  mode: 'validate'
}

/** What the action does: validate one leg (boot a VM), or roll the run's legs up (docs/rollup.md). */
export const MODES = ['validate', 'roll-up'] as const
export type Mode = (typeof MODES)[number]

/** The action's inputs that are run settings, by the name the settings table gives them. */
const RUN_INPUTS = [
  'ssh-user',
  'stages',
  'boot-timeout',
  'boot-retries',
  'timeout',
  'accel'
] as const

/** How the action names its inputs in messages. */
export const ACTION_SPELLING: Spelling & SshKeyWording = {
  name: (setting) => `input "${inputName(setting)}"`,
  notAllowed: (setting, value, allowed) =>
    `input "${inputName(setting)}": "${value}" is not allowed; allowed values: ${allowed}`,
  missingFile: (setting, path) => `input "${inputName(setting)}": ${path}: no such file`,
  notExecutable: (setting, path) =>
    `input "${inputName(setting)}": ${path} is not an executable file (expected result/bin/run-<host>-vm)`,
  unreadable: (path) =>
    `input "ssh-key": cannot read ${path} (give a path to the private key, or the key text itself)`,
  what: (key) => `input "ssh-key" (${key.kind === 'file' ? key.path : 'the key text'})`
}

function inputName(setting: SettingName): string {
  return setting === 'runner' ? 'vm-runner' : setting
}

/** Consumed by the Nix layer (src/nix): parsed and checked here, passed on as they are. */
export interface NixInputs {
  installerVersion: string
  extraSubstituters: string[]
  extraTrustedPublicKeys: string[]
  cachixCache?: string
  cachixAuthToken?: string
  cache: boolean
}

/** All inputs, read once and checked: nothing else in the action calls core.getInput. */
export interface ActionInputs extends RunSettings {
  flake: string
  configuration?: string
  system: GuestSystem
  /** Absolute path of a prebuilt runner script; when set, Nix is skipped. */
  vmRunner?: string
  /** The private key: a file, or key text given in the input (masked, then written to a 0600 file). */
  sshKey?: SshKeySource
  /** Absolute path of the checks file. */
  checksFile?: string
  /** Explicit artifact name; the default is derived per leg and attempt (see runIdentity). */
  artifactName?: string
  retentionDays?: number
  githubToken?: string
  checkName?: string
  prComment: boolean
  dryRun: boolean
  nix: NixInputs
  /** perf-baseline, perf-threshold, perf-regression (docs/performance-history.md). */
  perf: PerfSettings
}

/** The inputs once their files are checked too (readInputs): with the run's request. */
export interface CheckedInputs extends ActionInputs {
  request: RunRequest
}

export type InputReader = (name: InputName) => string

export interface ParseEnv {
  /** Relative paths (vm-runner, checks, ssh-key) are resolved against it: GITHUB_WORKSPACE. */
  workspace: string
  /** The machine's own system, the default of `system`. */
  host: GuestSystem | undefined
}

const BOOL_TRUE = ['true', 'True', 'TRUE']
const BOOL_FALSE = ['false', 'False', 'FALSE']

function parseBool(name: InputName, value: string): boolean {
  if (BOOL_TRUE.includes(value)) return true
  if (BOOL_FALSE.includes(value)) return false
  throw new InputError(`input "${name}": "${value}" is not a boolean; allowed values: true, false`)
}

function match(name: InputName, value: string, re: RegExp, allowed: string): string {
  if (!re.test(value))
    throw new InputError(`input "${name}": "${value}" is not allowed; allowed values: ${allowed}`)
  return value
}

function words(value: string): string[] {
  return value.split(/\s+/).filter(Boolean)
}

/**
 * A github-token of `${{ github.token }}` that reached us unevaluated: a local runner
 * (@github/local-action) hands action.yml's default through as text. It is no token.
 */
const UNEVALUATED_EXPRESSION = /^\$\{\{[\s\S]*\}\}$/

/**
 * Pure parsing of the raw input strings: every value is checked, and every bad one is reported
 * together in one InputErrors (each message names the input and what it accepts). No file is
 * touched (see readInputs).
 */
export function parseInputs(read: InputReader, env: ParseEnv): ActionInputs {
  const errors = new InputErrorCollector()
  const inputs = collectInputs(read, env, errors)
  errors.throwIfAny()
  return inputs
}

/** One input as text: trimmed, action.yml's default when empty; `optional`: undefined when empty. */
interface Raw {
  (name: InputName): string
  optional(name: InputName): string | undefined
}

function rawReader(read: InputReader): Raw {
  const raw = (name: InputName): string => {
    const v = read(name).trim()
    return v !== '' ? v : (INPUT_DEFAULTS[name] ?? '')
  }
  return Object.assign(raw, { optional: (name: InputName) => raw(name) || undefined })
}

/**
 * Parses every input, recording each bad one in `errors` instead of stopping at the first. The
 * object it returns is only meaningful when nothing was recorded: a bad value is replaced by a
 * stand-in so the remaining inputs are still checked.
 */
function collectInputs(
  read: InputReader,
  env: ParseEnv,
  errors: InputErrorCollector
): ActionInputs {
  const raw = rawReader(read)
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(env.workspace, p))
  const system = systemInput(raw, env, errors)
  const target = targetInputs(raw, errors)
  const runSettings: RawSettings = {}
  for (const name of RUN_INPUTS) runSettings[name] = raw.optional(name)
  const settings = parseRunSettings(runSettings, ACTION_SPELLING, errors)
  const sshText = raw.optional('ssh-key')
  let sshKey: SshKeySource | undefined
  if (sshText !== undefined) {
    const text = read('ssh-key')
    sshKey = /-----BEGIN |\n/.test(text)
      ? { kind: 'text', text }
      : { kind: 'file', path: abs(sshText) }
  }
  // Unknown stages say nothing about whether SSH is needed: no second error about the key then.
  const needsSsh = !errors.failed('stages') && settings.stages.includes('ssh')
  if (target.vmRunner !== undefined && sshKey === undefined && needsSsh) {
    errors.add(
      'ssh-key',
      'input "ssh-key" is required with "vm-runner" (the private key, or a path to it, that logs into the guest), unless stages is just "boot"'
    )
  }
  const checks = raw.optional('checks')
  const token = raw.optional('github-token')
  return {
    ...target,
    ...settings,
    system,
    vmRunner: target.vmRunner !== undefined ? abs(target.vmRunner) : undefined,
    sshKey,
    checksFile: checks !== undefined ? abs(checks) : undefined,
    ...reportingInputs(raw, errors),
    githubToken: token !== undefined && !UNEVALUATED_EXPRESSION.test(token) ? token : undefined,
    checkName: raw.optional('check-name'),
    prComment:
      errors.check('pr-comment', () => parseBool('pr-comment', raw('pr-comment'))) ?? false,
    dryRun: errors.check('dry-run', () => parseBool('dry-run', raw('dry-run'))) ?? false,
    nix: nixInputs(raw, errors),
    perf: perfInputs(raw, errors)
  }
}

function perfInputs(raw: Raw, errors: InputErrorCollector): PerfSettings {
  return parsePerfSettings(
    {
      'perf-baseline': raw.optional('perf-baseline'),
      'perf-threshold': raw.optional('perf-threshold'),
      'perf-regression': raw.optional('perf-regression')
    },
    (n) => `input "${n}"`,
    (n, fn) => errors.check(n, fn)
  )
}

function systemInput(raw: Raw, env: ParseEnv, errors: InputErrorCollector): GuestSystem {
  const systemText = raw.optional('system')
  return (
    errors.check('system', (): GuestSystem => {
      if (systemText !== undefined) return parseSystem(systemText, 'input "system"')
      if (env.host !== undefined) return env.host
      throw new InputError(
        `input "system": the runner's architecture (${process.arch}) is not one this action boots; set it to one of: ${SYSTEMS.join(', ')}`
      )
    }) ?? SYSTEMS[0]
  )
}

/** What is validated: a configuration of a flake, or a prebuilt runner (as given). */
function targetInputs(
  raw: Raw,
  errors: InputErrorCollector
): Pick<ActionInputs, 'flake' | 'configuration' | 'vmRunner'> {
  const vmRunner = raw.optional('vm-runner')
  const configuration = raw.optional('configuration')
  if (configuration !== undefined) {
    errors.check('configuration', () =>
      match(
        'configuration',
        configuration,
        /^[A-Za-z0-9_][A-Za-z0-9_.'+-]*$/,
        "a nixosConfigurations attribute name (letters, digits, _ . ' + -)"
      )
    )
  }
  if (vmRunner === undefined && configuration === undefined) {
    errors.add(
      'configuration',
      'input "configuration" is required unless "vm-runner" is given (the name of one of your flake\'s nixosConfigurations, e.g. my-host)'
    )
  }
  const flake =
    errors.check('flake', () =>
      match(
        'flake',
        raw('flake'),
        /^\S+$/,
        'a flake reference without spaces, e.g. "." or "github:owner/repo"'
      )
    ) ?? '.'
  return { flake, configuration, vmRunner }
}

/** The artifact's name and retention. */
function reportingInputs(
  raw: Raw,
  errors: InputErrorCollector
): Pick<ActionInputs, 'artifactName' | 'retentionDays'> {
  const retentionText = raw.optional('retention-days')
  let retentionDays: number | undefined
  if (retentionText !== undefined) {
    retentionDays = Number(retentionText)
    if (!/^\d+$/.test(retentionText) || retentionDays < 1 || retentionDays > 90) {
      errors.add(
        'retention-days',
        `input "retention-days": "${retentionText}" is not allowed; allowed values: a whole number of days from 1 to 90 (empty: the repository's default)`
      )
    }
  }
  const artifactName = raw.optional('artifact-name')
  if (artifactName !== undefined) {
    const bad = FORBIDDEN_ARTIFACT_NAME_CHARS.filter((c) => artifactName.includes(c))
    if (bad.length > 0) {
      errors.add(
        'artifact-name',
        `input "artifact-name": "${artifactName}" contains ${bad.map((c) => JSON.stringify(c)).join(', ')}; not allowed in an artifact name: ${FORBIDDEN_ARTIFACT_NAME_CHARS.map((c) => JSON.stringify(c)).join(' ')}`
      )
    }
  }
  return { artifactName, retentionDays }
}

function nixInputs(raw: Raw, errors: InputErrorCollector): NixInputs {
  const check = <T>(name: InputName, fn: () => T): T | undefined => errors.check(name, fn)
  const cachixCache = raw.optional('cachix-cache')
  if (cachixCache !== undefined)
    check('cachix-cache', () =>
      match(
        'cachix-cache',
        cachixCache,
        /^[a-z0-9][a-z0-9-]*$/,
        'a Cachix cache name (lowercase letters, digits, -)'
      )
    )
  const substituters = words(raw('extra-substituters'))
  for (const s of substituters) {
    if (!URL.canParse(s))
      errors.add(
        'extra-substituters',
        `input "extra-substituters": "${s}" is not a URL; allowed values: space-separated cache URLs, e.g. https://cache.example.org`
      )
  }
  const publicKeys = words(raw('extra-trusted-public-keys'))
  for (const k of publicKeys) {
    check('extra-trusted-public-keys', () =>
      match(
        'extra-trusted-public-keys',
        k,
        /^[^\s:]+:[A-Za-z0-9+/]+=*$/,
        'space-separated keys of the form name:base64, e.g. cache.example.org-1:AbC…='
      )
    )
  }
  return {
    installerVersion:
      check('nix-installer-version', () =>
        match(
          'nix-installer-version',
          raw('nix-installer-version'),
          /^(latest|\d+\.\d+\.\d+)$/,
          `a Nix release such as ${DEFAULT_NIX_VERSION}, or latest`
        )
      ) ?? DEFAULT_NIX_VERSION,
    extraSubstituters: substituters,
    extraTrustedPublicKeys: publicKeys,
    cachixCache,
    cachixAuthToken: raw.optional('cachix-auth-token'),
    cache: check('cache', () => parseBool('cache', raw('cache'))) ?? true
  }
}

export const actionInputReader: InputReader = (name) => core.getInput(name)

/** The `mode` input, read before anything else: it says which inputs matter. */
export function readMode(read: InputReader = actionInputReader): Mode {
  const value = rawReader(read)('mode')
  if (!(MODES as readonly string[]).includes(value))
    throw new InputError(
      `input "mode": "${value}" is not allowed; allowed values: ${MODES.join(', ')}`
    )
  return value as Mode
}

/** The inputs of `mode: roll-up`; the others (configuration, system, …) are not read. */
export interface RollUpInputs {
  mode: 'roll-up'
  /** The legs the matrix runs; each without an artifact is missing. Empty: what was found. */
  legs: ExpectedLeg[]
  githubToken?: string
  checkName?: string
  prComment: boolean
}

/** Reads and checks the roll-up's inputs; every problem thrown together as one InputErrors. */
export function readRollUpInputs(read: InputReader = actionInputReader): RollUpInputs {
  const raw = rawReader(read)
  const token = raw.optional('github-token')
  if (token !== undefined) core.setSecret(token)
  const errors = new InputErrorCollector()
  const legs =
    errors.check('legs', () => {
      try {
        return parseLegs(raw('legs'))
      } catch (err) {
        throw new InputError(`input "legs": ${err instanceof Error ? err.message : String(err)}`)
      }
    }) ?? []
  const prComment =
    errors.check('pr-comment', () => parseBool('pr-comment', raw('pr-comment'))) ?? false
  errors.throwIfAny()
  return {
    mode: 'roll-up',
    legs,
    githubToken: token !== undefined && !UNEVALUATED_EXPRESSION.test(token) ? token : undefined,
    checkName: raw.optional('check-name'),
    prComment
  }
}

/**
 * Reads every input once: parses them, masks the secrets, checks the files they name and the
 * flake reference, and writes nothing. Every problem found is thrown together as one InputErrors
 * before anything starts.
 */
export async function readInputs(
  read: InputReader = actionInputReader,
  env: NodeJS.ProcessEnv = process.env
): Promise<CheckedInputs> {
  const workspace = env.GITHUB_WORKSPACE || process.cwd()
  // Mask first: a parse error below must not echo a secret.
  for (const name of ['github-token', 'cachix-auth-token'] as const) {
    const v = read(name).trim()
    if (v !== '') core.setSecret(v)
  }
  const sshRaw = read('ssh-key')
  if (/-----BEGIN |\n/.test(sshRaw)) maskKeyText(sshRaw)

  const errors = new InputErrorCollector()
  const inputs = collectInputs(read, { workspace, host: hostSystem() }, errors)
  const request = await preflight(
    {
      settings: inputs,
      system: inputs.system,
      runner: inputs.vmRunner,
      checks: inputs.checksFile,
      sshKey: inputs.sshKey,
      root: workspace,
      dryRun: inputs.dryRun,
      spell: ACTION_SPELLING
    },
    errors
  )
  // The flake reference and the configuration it names (the Nix layer's check; no Nix runs).
  if (
    inputs.vmRunner === undefined &&
    inputs.configuration !== undefined &&
    !errors.failed('configuration') &&
    !errors.failed('flake')
  )
    errors.check('flake', () => checkFlakeReference(inputs, workspace))
  errors.throwIfAny()
  // `legs` belongs to the roll-up; said, not silently dropped (a copied roll-up step, most likely).
  if (read('legs').trim() !== '')
    core.warning(
      'input "legs" is only read with mode: roll-up; this step validates one leg and ignores it'
    )
  return { ...inputs, checksFile: request.checksFile, request }
}

/** What assertCanBuild (./nix.ts) checks, without pulling the Nix layer into the post step. */
function checkFlakeReference(inputs: ActionInputs, workspace: string): void {
  try {
    parseFlakeTarget(inputs.flake, { configuration: inputs.configuration, cwd: workspace })
  } catch (err) {
    if (err instanceof InputError && !err.message.startsWith('input "'))
      throw new InputError(`input "flake": ${err.message}`)
    throw err
  }
}

function maskKeyText(text: string): void {
  core.setSecret(text)
  // The runner masks line by line: register each line of the key body too.
  for (const line of text.split(/\r?\n/)) {
    const l = line.trim()
    if (l !== '' && !l.startsWith('-----')) core.setSecret(l)
  }
}

/** The post step's only input: the token (no other input is read twice). */
export function readGithubToken(read: InputReader = actionInputReader): string | undefined {
  const t = read('github-token').trim()
  if (t === '') return undefined
  core.setSecret(t)
  return t
}
