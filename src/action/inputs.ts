import { existsSync } from 'node:fs'
import { chmod, mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, isAbsolute, join, resolve } from 'node:path'
import * as core from '@actions/core'
import { parseStages } from '../cli/args.js'
import type { StageName } from '../report/model.js'
import { parseDuration } from '../util/duration.js'
import { InputError } from '../util/errors.js'
import { InputErrorCollector } from '../util/input-errors.js'
import { isExecutableFile } from '../util/fs.js'
import { loadChecks } from '../checks/config.js'
import { publicKeyOf } from '../nix/sshkey.js'
import { DEFAULT_NIX_VERSION } from '../nix/install.js'
import {
  hostSystem,
  parseAccel,
  parseSystem,
  SYSTEMS,
  type AccelChoice,
  type GuestSystem
} from '../vm/system.js'
import { FORBIDDEN_ARTIFACT_NAME_CHARS } from '../github/artifact.js'
import { parseFlakeTarget } from '../nix/flakeref.js'
import { parseBootRetries } from '../pipeline/options.js'

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
  'cache'
] as const
export type InputName = (typeof INPUT_NAMES)[number]

/**
 * action.yml's defaults, applied again here: the runner fills them in, but a bundle started by
 * hand (tests, act with a partial `with:`) sees an empty string. `github-token` defaults to an
 * expression, so it has none here.
 */
export const INPUT_DEFAULTS: Partial<Record<InputName, string>> = {
  flake: '.',
  'ssh-user': 'root',
  stages: 'boot,ssh,system,services,users,home-manager,packages,network,performance,e2e',
  'boot-timeout': '10m',
  timeout: '0',
  accel: 'auto',
  'pr-comment': 'false',
  'dry-run': 'false',
  'nix-installer-version': DEFAULT_NIX_VERSION,
  cache: 'true'
}

/** The private key for the guest: a file, or key text given in the input (masked, then written to a 0600 file). */
export type SshKeyInput = { kind: 'file'; path: string } | { kind: 'text'; text: string }

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
export interface ActionInputs {
  flake: string
  configuration?: string
  system: GuestSystem
  /** Absolute path of a prebuilt runner script; when set, Nix is skipped. */
  vmRunner?: string
  sshKey?: SshKeyInput
  sshUser: string
  stages: StageName[]
  /** Absolute path of the checks file. */
  checksFile?: string
  bootTimeoutMs: number
  /** Restarts of a boot silent before userspace; undefined: 1 under TCG, 0 with KVM. */
  bootRetries?: number
  timeoutMs: number
  accel: AccelChoice
  /** Explicit artifact name; the default is derived per leg and attempt (see runIdentity). */
  artifactName?: string
  retentionDays?: number
  githubToken?: string
  checkName?: string
  prComment: boolean
  dryRun: boolean
  nix: NixInputs
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
  const raw = (name: InputName): string => {
    const v = read(name).trim()
    return v !== '' ? v : (INPUT_DEFAULTS[name] ?? '')
  }
  const optional = (name: InputName): string | undefined => raw(name) || undefined
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(env.workspace, p))
  const check = <T>(name: InputName, fn: () => T): T | undefined => errors.check(name, fn)

  const systemText = optional('system')
  const system =
    check('system', (): GuestSystem => {
      if (systemText !== undefined) return parseSystem(systemText, 'input "system"')
      if (env.host !== undefined) return env.host
      throw new InputError(
        `input "system": the runner's architecture (${process.arch}) is not one this action boots; set it to one of: ${SYSTEMS.join(', ')}`
      )
    }) ?? SYSTEMS[0]

  const vmRunner = optional('vm-runner')
  const configuration = optional('configuration')
  if (configuration !== undefined) {
    check('configuration', () =>
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
    check('flake', () =>
      match(
        'flake',
        raw('flake'),
        /^\S+$/,
        'a flake reference without spaces, e.g. "." or "github:owner/repo"'
      )
    ) ?? '.'

  const stages = check('stages', () => parseStages(raw('stages'), 'input "stages"'))
  const sshText = optional('ssh-key')
  let sshKey: SshKeyInput | undefined
  if (sshText !== undefined) {
    const text = read('ssh-key')
    sshKey = /-----BEGIN |\n/.test(text)
      ? { kind: 'text', text }
      : { kind: 'file', path: abs(sshText) }
  }
  // Unknown stages say nothing about whether SSH is needed: no second error about the key then.
  if (vmRunner !== undefined && sshKey === undefined && stages?.includes('ssh') === true) {
    errors.add(
      'ssh-key',
      'input "ssh-key" is required with "vm-runner" (the private key, or a path to it, that logs into the guest), unless stages is just "boot"'
    )
  }

  const retentionText = optional('retention-days')
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
  const artifactName = optional('artifact-name')
  if (artifactName !== undefined) {
    const bad = FORBIDDEN_ARTIFACT_NAME_CHARS.filter((c) => artifactName.includes(c))
    if (bad.length > 0) {
      errors.add(
        'artifact-name',
        `input "artifact-name": "${artifactName}" contains ${bad.map((c) => JSON.stringify(c)).join(', ')}; not allowed in an artifact name: ${FORBIDDEN_ARTIFACT_NAME_CHARS.map((c) => JSON.stringify(c)).join(' ')}`
      )
    }
  }
  const cachixCache = optional('cachix-cache')
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
  const checks = optional('checks')
  const token = optional('github-token')
  const retriesText = optional('boot-retries')

  return {
    flake,
    configuration,
    system,
    vmRunner: vmRunner !== undefined ? abs(vmRunner) : undefined,
    sshKey,
    sshUser:
      check('ssh-user', () =>
        match(
          'ssh-user',
          raw('ssh-user'),
          /^[a-z_][a-z0-9_.-]*\$?$/i,
          'a user name (letters, digits, _ . -)'
        )
      ) ?? 'root',
    stages: stages ?? [],
    checksFile: checks !== undefined ? abs(checks) : undefined,
    bootTimeoutMs:
      check('boot-timeout', () => parseDuration(raw('boot-timeout'), 'input "boot-timeout"')) ?? 0,
    bootRetries:
      retriesText !== undefined
        ? check('boot-retries', () => parseBootRetries(retriesText, 'input "boot-retries"'))
        : undefined,
    timeoutMs:
      check('timeout', () => parseDuration(raw('timeout'), 'input "timeout"', 'none')) ?? 0,
    accel: check('accel', () => parseAccel(raw('accel'), 'input "accel"')) ?? 'auto',
    artifactName,
    retentionDays,
    githubToken: token !== undefined && !UNEVALUATED_EXPRESSION.test(token) ? token : undefined,
    checkName: optional('check-name'),
    prComment: check('pr-comment', () => parseBool('pr-comment', raw('pr-comment'))) ?? false,
    dryRun: check('dry-run', () => parseBool('dry-run', raw('dry-run'))) ?? false,
    nix: {
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
      cachixAuthToken: optional('cachix-auth-token'),
      cache: check('cache', () => parseBool('cache', raw('cache'))) ?? true
    }
  }
}

export const actionInputReader: InputReader = (name) => core.getInput(name)

/**
 * Reads every input once: parses them, masks the secrets, checks the files they name and the
 * flake reference, and writes nothing. Every problem found is thrown together as one InputErrors
 * before anything starts.
 */
export async function readInputs(
  read: InputReader = actionInputReader,
  env: NodeJS.ProcessEnv = process.env
): Promise<ActionInputs> {
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
  const runner = inputs.vmRunner
  if (runner !== undefined) {
    await errors.checkAsync('vm-runner', async () => {
      if (!(await isExecutableFile(runner)))
        throw new InputError(
          `input "vm-runner": ${runner} is not an executable file (expected result/bin/run-<host>-vm)`
        )
    })
  }
  if (inputs.checksFile !== undefined) {
    if (!existsSync(inputs.checksFile))
      errors.add('checks', `input "checks": ${inputs.checksFile}: no such file`)
  } else {
    const fallback = join(workspace, 'tests/vm/checks.yml')
    if (existsSync(fallback)) inputs.checksFile = fallback
  }
  // The checks file is read now, dry runs included: its errors are input errors, before any build.
  const checksFile = inputs.checksFile
  if (checksFile !== undefined && !errors.failed('checks'))
    await errors.checkAsync('checks', () => loadChecks(checksFile, inputs.stages, workspace))
  const key = inputs.sshKey
  if (key !== undefined) await errors.checkAsync('ssh-key', () => checkKey(key))
  // The flake reference and the configuration it names (the Nix layer's check; no Nix runs).
  if (
    inputs.vmRunner === undefined &&
    inputs.configuration !== undefined &&
    !errors.failed('configuration') &&
    !errors.failed('flake')
  ) {
    errors.check('flake', () => {
      try {
        // What assertCanBuild (./nix.ts) checks, without pulling the Nix layer into the post step.
        parseFlakeTarget(inputs.flake, { configuration: inputs.configuration, cwd: workspace })
      } catch (err) {
        if (err instanceof InputError && !err.message.startsWith('input "'))
          throw new InputError(`input "flake": ${err.message}`)
        throw err
      }
    })
  }
  errors.throwIfAny()
  return inputs
}

function maskKeyText(text: string): void {
  core.setSecret(text)
  // The runner masks line by line: register each line of the key body too.
  for (const line of text.split(/\r?\n/)) {
    const l = line.trim()
    if (l !== '' && !l.startsWith('-----')) core.setSecret(l)
  }
}

async function checkKey(key: SshKeyInput): Promise<void> {
  let text: Buffer
  if (key.kind === 'file') {
    try {
      text = await readFile(key.path)
    } catch {
      throw new InputError(
        `input "ssh-key": cannot read ${key.path} (give a path to the private key, or the key text itself)`
      )
    }
  } else {
    text = Buffer.from(normalizeKeyText(key.text))
  }
  // A public key parses too: demand the private half now, not as ssh-unreachable minutes later.
  publicKeyOf(text, `input "ssh-key" (${key.kind === 'file' ? key.path : 'the key text'})`)
}

function normalizeKeyText(text: string): string {
  const t = text.replace(/\r\n/g, '\n').trim()
  return t + '\n'
}

/** The key as a file path: key text goes to a fresh 0600 file under RUNNER_TEMP. */
export async function materializeSshKey(
  key: SshKeyInput | undefined,
  tempRoot: string = process.env.RUNNER_TEMP || tmpdir()
): Promise<{ path: string | undefined; dir: string | undefined }> {
  if (key === undefined) return { path: undefined, dir: undefined }
  if (key.kind === 'file') return { path: key.path, dir: undefined }
  const dir = await mkdtemp(join(tempRoot, 'nvv-key-'))
  const path = join(dir, 'id_key')
  await writeFile(path, normalizeKeyText(key.text), { mode: 0o600 })
  await chmod(path, 0o600)
  return { path, dir }
}

/** `.../bin/run-nixos-vm-vm` → `nixos-vm` (the NixOS runner contract's host name). */
export function runnerName(runner: string): string {
  const b = basename(runner)
  const m = /^run-(.+)-vm$/.exec(b)
  return m?.[1] ?? b
}

/** The post step's only input: the token (no other input is read twice). */
export function readGithubToken(read: InputReader = actionInputReader): string | undefined {
  const t = read('github-token').trim()
  if (t === '') return undefined
  core.setSecret(t)
  return t
}
