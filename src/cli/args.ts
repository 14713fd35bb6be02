import { isAbsolute, resolve } from 'node:path'
import { InputError } from '../util/errors.js'
import { InputErrorCollector } from '../util/input-errors.js'
import { STAGES } from '../checks/stages.js'
import { HOME_USAGE } from './home.js'
import { parseSystem, type GuestSystem } from '../vm/system.js'
import type { SshKeyWording } from '../nix/sshkey.js'
import { DEFAULT_CHECKS_FILE } from '../pipeline/preflight.js'
import { parsePerfSettings, PERF_SETTING_DEFAULTS, type PerfSettings } from '../perf/settings.js'
import {
  parseRunSettings,
  RUN_DEFAULTS,
  type RawSettings,
  type RunSettings,
  type Spelling
} from '../pipeline/request.js'

const D = RUN_DEFAULTS

export const USAGE = `usage: vm-automation validate (--runner PATH | --flake REF) --system aarch64-linux|x86_64-linux [options]

Boots a NixOS VM runner (result/bin/run-<host>-vm) with QEMU and validates it.

  --runner PATH          prebuilt runner script (NixOS config.system.build.vm)
  --flake REF            build the runner first with the nix on PATH, e.g. .#nixos-vm-aarch64;
                         the VM authorizes a fresh ed25519 key of this run (no flake change)
  --system SYSTEM        guest system: aarch64-linux, x86_64-linux
  --ssh-key PATH         private key that logs into the guest (needed with --runner; with
                         --flake its public half is authorized instead of a fresh key)
  --ssh-user USER        default ${D['ssh-user']}
  --ssh-port-guest N     guest SSH port, default ${D['ssh-port-guest']}
  --stages LIST          comma-separated, default all: ${STAGES.join(',')}
  --checks FILE          checks file (default ${DEFAULT_CHECKS_FILE} when present)
  --out DIR              artifacts and report.json, default ./${D.out}
  --boot-timeout D       login prompt deadline, default ${D['boot-timeout']}
  --silence-timeout D    fail when the console is silent this long, default ${D['silence-timeout']}
  --boot-retries N       restarts (0-3) of a boot that went silent before userspace, on a
                         fresh disk; default 1 under TCG, 0 with KVM (the run is marked flaky)
  --ssh-timeout D        SSH deadline after the login prompt, default ${D['ssh-timeout']}
  --stage-timeout D      budget of one check stage, default ${D['stage-timeout']}
  --timeout D            whole run, default none
  --accel MODE           auto (prove KVM, else TCG), kvm, tcg; default ${D.accel}
  --cpu MODEL            QEMU -cpu override (default: max,pauth=off for aarch64 under TCG)
  --perf-history DIR     compare the run with the earlier runs kept in DIR (one history per
                         configuration, system and accelerator), then add it there
  --perf-threshold P     a metric worse by more than P percent (and beyond the history's own
                         spread) is a regression; default ${PERF_SETTING_DEFAULTS.threshold}
  --perf-regression M    warn (default) or fail: what a regression does to the exit code
  --dry-run              print the plan, boot nothing
  --verbose              debug lines
Durations: 90 (seconds), 90s, 10m, 1m30s, 500ms.
Exit codes: 0 every stage passed, 1 a stage failed, 2 bad input (nothing started).

${HOME_USAGE}`

export interface CliOptions extends RunSettings {
  command: 'validate' | 'help' | 'version'
  runner?: string
  flake?: string
  system: GuestSystem
  sshKey?: string
  checksFile?: string
  outDir: string
  dryRun: boolean
  verbose: boolean
  /** `--perf-history DIR`, absolute. */
  perfHistory?: string
  perf: PerfSettings
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
  'cpu',
  'perf-history',
  'perf-threshold',
  'perf-regression'
] as const
const BOOL_FLAGS = ['dry-run', 'verbose', 'help'] as const

/** How the command line names its settings in messages. */
export const CLI_SPELLING: Spelling & SshKeyWording = {
  name: (setting) => `--${setting}`,
  notAllowed: (setting, value, allowed) => `--${setting}: "${value}" is not ${allowed}`,
  missingFile: (setting, path) => `--${setting} ${path}: no such file`,
  notExecutable: (setting, path) =>
    `--${setting} ${path}: not an executable file (expected result/bin/run-<host>-vm)`,
  unreadable: (path) => `--ssh-key ${path}: cannot read the file`,
  what: (source) => `--ssh-key ${source.kind === 'file' ? source.path : 'text'}`
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
  const settings = (): RunSettings => parseRunSettings({}, CLI_SPELLING, errors)
  const other = (command: 'help' | 'version'): CliOptions => ({
    ...settings(),
    command,
    system: 'x86_64-linux',
    outDir: resolve(cwd, RUN_DEFAULTS.out),
    dryRun: false,
    verbose: false,
    perf: parsePerfSettings({}, (n) => `--${n}`)
  })
  if (command === undefined || command === 'help' || command === '--help' || command === '-h')
    return other('help')
  if (command === 'version' || command === '--version') return other('version')
  if (command !== 'validate')
    throw new InputError(
      `unknown command "${command}"; allowed: validate, home-consistency, help, version`
    )
  const { values, bools } = readFlags(rest, errors)
  if (bools.has('help')) return other('help')
  return validateOptions(values, bools, cwd, errors)
}

/** `--name value`, `--name=value` and the boolean flags; each unknown one is recorded. */
function readFlags(
  rest: string[],
  errors: InputErrorCollector
): { values: Map<string, string>; bools: Set<string> } {
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
  return { values, bools }
}

/** `--perf-history DIR` and its settings (a bad one recorded, its default used meanwhile). */
function perfOptions(
  values: Map<string, string>,
  abs: (p: string) => string,
  errors: InputErrorCollector
): Pick<CliOptions, 'perfHistory' | 'perf'> {
  const dir = values.get('perf-history')
  const perf = parsePerfSettings(
    {
      'perf-threshold': values.get('perf-threshold'),
      'perf-regression': values.get('perf-regression')
    },
    (n) => `--${n}`,
    (n, fn) => errors.check(n, fn)
  )
  return { perf, ...(dir !== undefined ? { perfHistory: abs(dir) } : {}) }
}

/** The options of `validate`: what it needs, then the settings shared with the action. */
function validateOptions(
  values: Map<string, string>,
  bools: Set<string>,
  cwd: string,
  errors: InputErrorCollector
): CliOptions {
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
  const system =
    systemText !== undefined ? errors.check('system', () => parseSystem(systemText)) : undefined
  const checks = values.get('checks')
  return {
    command: 'validate',
    runner: runner !== undefined ? abs(runner) : undefined,
    flake,
    system: system ?? 'x86_64-linux',
    sshKey: sshKey !== undefined ? abs(sshKey) : undefined,
    ...parseRunSettings(Object.fromEntries(values) as RawSettings, CLI_SPELLING, errors),
    checksFile: checks !== undefined ? abs(checks) : undefined,
    outDir: abs(values.get('out') ?? RUN_DEFAULTS.out),
    dryRun: bools.has('dry-run'),
    verbose: bools.has('verbose'),
    ...perfOptions(values, abs, errors)
  }
}
