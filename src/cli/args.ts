import { isAbsolute, resolve } from 'node:path'
import { InputError } from '../util/errors.js'
import { InputErrorCollector } from '../util/input-errors.js'
import { parseDuration } from '../util/duration.js'
import { STAGES, type StageName } from '../report/model.js'
import { parseAccel, parseSystem, type AccelChoice, type GuestSystem } from '../vm/system.js'
import { parseBootRetries } from '../pipeline/options.js'

export const USAGE = `usage: vm-automation validate (--runner PATH | --flake REF) --system aarch64-linux|x86_64-linux [options]

Boots a NixOS VM runner (result/bin/run-<host>-vm) with QEMU and validates it.

  --runner PATH          prebuilt runner script (NixOS config.system.build.vm)
  --flake REF            build the runner first with the nix on PATH, e.g. .#nixos-vm-aarch64;
                         the VM authorizes a fresh ed25519 key of this run (no flake change)
  --system SYSTEM        guest system: aarch64-linux, x86_64-linux
  --ssh-key PATH         private key that logs into the guest (needed with --runner; with
                         --flake its public half is authorized instead of a fresh key)
  --ssh-user USER        default root
  --ssh-port-guest N     guest SSH port, default 22
  --stages LIST          comma-separated, default all: ${STAGES.join(',')}
  --checks FILE          checks file (default tests/vm/checks.yml when present)
  --out DIR              artifacts and report.json, default ./vm-validation
  --boot-timeout D       login prompt deadline, default 10m
  --silence-timeout D    fail when the console is silent this long, default 2m
  --boot-retries N       restarts (0-3) of a boot that went silent before userspace, on a
                         fresh disk; default 1 under TCG, 0 with KVM (the run is marked flaky)
  --ssh-timeout D        SSH deadline after the login prompt, default 3m
  --stage-timeout D      budget of one check stage, default 10m
  --timeout D            whole run, default none
  --accel MODE           auto (prove KVM, else TCG), kvm, tcg; default auto
  --cpu MODEL            QEMU -cpu override (default: max,pauth=off for aarch64 under TCG)
  --dry-run              print the plan, boot nothing
  --verbose              debug lines
Durations: 90 (seconds), 90s, 10m, 1m30s, 500ms.
Exit codes: 0 every stage passed, 1 a stage failed, 2 bad input (nothing started).`

export interface CliOptions {
  command: 'validate' | 'help' | 'version'
  runner?: string
  flake?: string
  system: GuestSystem
  sshKey?: string
  sshUser: string
  guestSshPort: number
  stages: StageName[]
  checksFile?: string
  outDir: string
  bootTimeoutMs: number
  silenceTimeoutMs: number
  sshTimeoutMs: number
  stageTimeoutMs: number
  timeoutMs: number
  accel: AccelChoice
  /** --boot-retries; undefined: the default of the accelerator used (1 under TCG, 0 with KVM). */
  bootRetries?: number
  cpu?: string
  dryRun: boolean
  verbose: boolean
}

const VALUE_FLAGS = [
  'runner',
  'flake',
  'system',
  'ssh-key',
  'ssh-user',
  'ssh-port-guest',
  'stages',
  'checks',
  'out',
  'boot-timeout',
  'silence-timeout',
  'boot-retries',
  'ssh-timeout',
  'stage-timeout',
  'timeout',
  'accel',
  'cpu'
] as const
const BOOL_FLAGS = ['dry-run', 'verbose', 'help'] as const

/** Stage names: `homeManager` is accepted for `home-manager` (the checks file key). */
export function parseStages(text: string, what = '--stages'): StageName[] {
  const names = text
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => (s === 'homeManager' ? 'home-manager' : s))
  if (names.length === 0)
    throw new InputError(`${what}: empty; allowed values: ${STAGES.join(', ')}`)
  for (const n of names) {
    if (!(STAGES as readonly string[]).includes(n)) {
      throw new InputError(`${what}: unknown stage "${n}"; allowed values: ${STAGES.join(', ')}`)
    }
  }
  const set = new Set(names as StageName[])
  // Every check stage runs over SSH, and SSH needs a booted guest.
  if ([...set].some((s) => s !== 'boot')) set.add('ssh')
  set.add('boot')
  return STAGES.filter((s) => set.has(s))
}

/** A login name, as the action's `ssh-user` input and the checks file accept it. */
export const USER_NAME = /^[a-z_][a-z0-9_.-]*\$?$/i

export function parsePort(text: string, what: string): number {
  const n = Number(text)
  if (!Number.isInteger(n) || n < 1 || n > 65535)
    throw new InputError(`${what}: "${text}" is not a port (1-65535)`)
  return n
}

/**
 * Parses the command line. Every bad option is reported at once (one InputErrors listing each,
 * naming the option and what it accepts); only an unknown command stops at once.
 */
export function parseArgs(argv: string[], cwd = process.cwd()): CliOptions {
  const errors = new InputErrorCollector()
  const options = collectArgs(argv, cwd, errors)
  errors.throwIfAny()
  return options
}

/**
 * parseArgs that records each bad option in `errors` instead of throwing (the caller adds the
 * checks of files and the flake to the same list). The options are only meaningful when nothing
 * was recorded: a bad value is replaced by its default so the rest is still checked.
 */
export function collectArgs(argv: string[], cwd: string, errors: InputErrorCollector): CliOptions {
  const [command, ...rest] = argv
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    return { ...defaults(cwd), command: 'help' }
  }
  if (command === 'version' || command === '--version')
    return { ...defaults(cwd), command: 'version' }
  if (command !== 'validate')
    throw new InputError(`unknown command "${command}"; allowed: validate, help, version`)
  const values = new Map<string, string>()
  const bools = new Set<string>()
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]
    if (!arg.startsWith('--')) {
      errors.add('argument', `unexpected argument "${arg}"`)
      continue
    }
    const eq = arg.indexOf('=')
    const name = arg.slice(2, eq >= 0 ? eq : undefined)
    if ((BOOL_FLAGS as readonly string[]).includes(name)) {
      bools.add(name)
      continue
    }
    if (!(VALUE_FLAGS as readonly string[]).includes(name)) {
      errors.add(
        name,
        `unknown option --${name}; allowed: ${[...VALUE_FLAGS, ...BOOL_FLAGS].map((f) => `--${f}`).join(', ')}`
      )
      continue
    }
    const value = eq >= 0 ? arg.slice(eq + 1) : rest[++i]
    if (value === undefined) {
      errors.add(name, `--${name} needs a value`)
      continue
    }
    values.set(name, value)
  }
  if (bools.has('help')) return { ...defaults(cwd), command: 'help' }
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(cwd, p))
  const runner = values.get('runner')
  const flake = values.get('flake')
  if (runner === undefined && flake === undefined)
    errors.add('runner', 'validate needs --runner PATH or --flake REF')
  if (runner !== undefined && flake !== undefined)
    errors.add('runner', 'give either --runner or --flake, not both')
  const systemText = values.get('system')
  if (systemText === undefined && !errors.failed('system'))
    errors.add('system', '--system is required; allowed values: aarch64-linux, x86_64-linux')
  const sshKey = values.get('ssh-key')
  if (runner !== undefined && sshKey === undefined && !errors.failed('ssh-key'))
    errors.add('ssh-key', '--runner needs --ssh-key PATH (the key that logs into the guest)')
  const d = defaults(cwd)
  const dur = (name: string, fallback: number): number => {
    const v = values.get(name)
    if (v === undefined) return fallback
    // --timeout 0 means none; every other wait must be positive.
    return (
      errors.check(name, () =>
        parseDuration(v, `--${name}`, name === 'timeout' ? 'none' : undefined)
      ) ?? fallback
    )
  }
  const word = (name: string, pattern: RegExp, what: string): string | undefined => {
    const v = values.get(name)
    if (v === undefined) return undefined
    if (pattern.test(v)) return v
    errors.add(name, `--${name}: "${v}" is not ${what}`)
    return undefined
  }
  const stagesText = values.get('stages')
  const portText = values.get('ssh-port-guest')
  const accelText = values.get('accel')
  const retriesText = values.get('boot-retries')
  const options: CliOptions = {
    command: 'validate',
    runner: runner !== undefined ? abs(runner) : undefined,
    flake,
    system:
      (systemText !== undefined
        ? errors.check('system', () => parseSystem(systemText))
        : undefined) ?? d.system,
    sshKey: sshKey !== undefined ? abs(sshKey) : undefined,
    sshUser: word('ssh-user', USER_NAME, 'a user name (letters, digits, _ . -)') ?? d.sshUser,
    guestSshPort:
      (portText !== undefined
        ? errors.check('ssh-port-guest', () => parsePort(portText, '--ssh-port-guest'))
        : undefined) ?? 22,
    stages:
      (stagesText !== undefined
        ? errors.check('stages', () => parseStages(stagesText))
        : undefined) ?? d.stages,
    checksFile: values.has('checks') ? abs(values.get('checks') as string) : undefined,
    outDir: abs(values.get('out') ?? d.outDir),
    bootTimeoutMs: dur('boot-timeout', d.bootTimeoutMs),
    silenceTimeoutMs: dur('silence-timeout', d.silenceTimeoutMs),
    sshTimeoutMs: dur('ssh-timeout', d.sshTimeoutMs),
    stageTimeoutMs: dur('stage-timeout', d.stageTimeoutMs),
    timeoutMs: dur('timeout', 0),
    accel:
      (accelText !== undefined ? errors.check('accel', () => parseAccel(accelText)) : undefined) ??
      'auto',
    bootRetries:
      retriesText !== undefined
        ? errors.check('boot-retries', () => parseBootRetries(retriesText))
        : undefined,
    // A QEMU -cpu value goes through QEMU_OPTS, which the runner word-splits.
    cpu: word(
      'cpu',
      /^[\w.,=+-]+$/,
      'a QEMU CPU model without spaces (max, host, cortex-a72, max,pauth=off)'
    ),
    dryRun: bools.has('dry-run'),
    verbose: bools.has('verbose')
  }
  return options
}

function defaults(cwd: string): Omit<CliOptions, 'command'> {
  return {
    system: 'x86_64-linux',
    sshUser: 'root',
    guestSshPort: 22,
    stages: [...STAGES],
    outDir: resolve(cwd, 'vm-validation'),
    bootTimeoutMs: 10 * 60_000,
    silenceTimeoutMs: 2 * 60_000,
    sshTimeoutMs: 3 * 60_000,
    stageTimeoutMs: 10 * 60_000,
    timeoutMs: 0,
    accel: 'auto',
    dryRun: false,
    verbose: false
  }
}
