import { InputError } from '../util/errors.js'
import type { InputErrorCollector } from '../util/input-errors.js'
import { parseDuration } from '../util/duration.js'
import { STAGES, type StageName } from '../checks/stages.js'
import { parseAccel, type GuestSystem } from '../vm/system.js'
import type { CheckedSshKey } from '../nix/sshkey.js'
import { parseBootRetries, type RunSettings, type ValidateOptions } from './options.js'

/**
 * The defaults of the settings both front ends share, spelled as the CLI flags and action.yml's
 * inputs spell them: the one table (action.yml repeats the action's as text; a unit test keeps
 * the two equal).
 */
export const RUN_DEFAULTS = {
  'ssh-user': 'root',
  'ssh-port-guest': '22',
  stages: STAGES.join(','),
  'boot-timeout': '10m',
  'silence-timeout': '2m',
  'ssh-timeout': '3m',
  'stage-timeout': '10m',
  timeout: '0',
  accel: 'auto',
  out: 'vm-validation'
} as const

/** A setting of a run, named the way the CLI flag and the action input name it. */
export type SettingName =
  keyof typeof RUN_DEFAULTS | 'runner' | 'system' | 'ssh-key' | 'checks' | 'boot-retries' | 'cpu'

/** A front end's settings as text: what it was given, absent when not given. */
export type RawSettings = Partial<Record<SettingName, string>>

/**
 * How a front end names its settings in messages (`--boot-timeout` on the command line,
 * `input "boot-timeout"` in a workflow): the engine's checks speak through it.
 */
export interface Spelling {
  name(setting: SettingName): string
  /** A value outside what the setting accepts. */
  notAllowed(setting: SettingName, value: string, allowed: string): string
  /** A file the setting names does not exist. */
  missingFile(setting: SettingName, path: string): string
  /** The runner the setting names is not an executable file. */
  notExecutable(setting: SettingName, path: string): string
}

export type { RunSettings } from './options.js'

/**
 * Everything a run needs, whichever front end asked for it: checked settings, the files they
 * name (absolute, read and found valid) and the key. The engine's own input (ValidateOptions)
 * is made from it by engineOptions.
 */
export interface RunRequest extends RunSettings {
  /** Prebuilt runner script (`result/bin/run-<host>-vm`), absolute; else the VM is built. */
  runner?: string
  system: GuestSystem
  /** The key that logs into the guest, read and parsed once. */
  sshKey?: CheckedSshKey
  /** Absolute path of the checks file (given, else tests/vm/checks.yml when present). */
  checksFile?: string
  dryRun: boolean
}

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

/** A login name, as the `ssh-user` setting and the checks file accept it. */
export const USER_NAME = /^[a-z_][a-z0-9_.-]*\$?$/i

/** A QEMU -cpu value: it goes through QEMU_OPTS, which the runner word-splits. */
const CPU_MODEL = /^[\w.,=+-]+$/

export function parsePort(text: string, what: string): number {
  const n = Number(text)
  if (!Number.isInteger(n) || n < 1 || n > 65535)
    throw new InputError(`${what}: "${text}" is not a port (1-65535)`)
  return n
}

const DURATIONS = [
  ['boot-timeout', 'bootTimeoutMs'],
  ['silence-timeout', 'silenceTimeoutMs'],
  ['ssh-timeout', 'sshTimeoutMs'],
  ['stage-timeout', 'stageTimeoutMs'],
  ['timeout', 'timeoutMs']
] as const

/**
 * Parses the shared settings, each bad one recorded in `errors` (named the front end's way) and
 * replaced by its default so the rest are still checked; the result is only meaningful when
 * nothing was recorded. A setting absent from `raw` takes its RUN_DEFAULTS value.
 */
export function parseRunSettings(
  raw: RawSettings,
  spell: Spelling,
  errors: InputErrorCollector
): RunSettings {
  const text = (name: keyof typeof RUN_DEFAULTS): string => raw[name] ?? RUN_DEFAULTS[name]
  const parse = <T>(name: SettingName, fallback: T, fn: (what: string) => T): T =>
    errors.check(name, () => fn(spell.name(name))) ?? fallback
  const word = (name: SettingName, value: string, pattern: RegExp, what: string): boolean => {
    if (pattern.test(value)) return true
    errors.add(name, spell.notAllowed(name, value, what))
    return false
  }
  const sshUser = text('ssh-user')
  const cpu = raw.cpu
  const retries = raw['boot-retries']
  const settings: RunSettings = {
    sshUser: word('ssh-user', sshUser, USER_NAME, 'a user name (letters, digits, _ . -)')
      ? sshUser
      : RUN_DEFAULTS['ssh-user'],
    guestSshPort: parse('ssh-port-guest', 22, (w) => parsePort(text('ssh-port-guest'), w)),
    stages: parse('stages', [...STAGES], (w) => parseStages(text('stages'), w)),
    ...parseDurations(text, parse),
    accel: parse('accel', 'auto', (w) => parseAccel(text('accel'), w)),
    bootRetries:
      retries !== undefined
        ? parse('boot-retries', undefined, (w) => parseBootRetries(retries, w))
        : undefined,
    cpu:
      cpu !== undefined &&
      word(
        'cpu',
        cpu,
        CPU_MODEL,
        'a QEMU CPU model without spaces (max, host, cortex-a72, max,pauth=off)'
      )
        ? cpu
        : undefined
  }
  return settings
}

type Durations = Pick<RunSettings, (typeof DURATIONS)[number][1]>

function parseDurations(
  text: (name: (typeof DURATIONS)[number][0]) => string,
  parse: <T>(name: SettingName, fallback: T, fn: (what: string) => T) => T
): Durations {
  const out: Partial<Durations> = {}
  for (const [name, key] of DURATIONS) {
    const fallback = parseDuration(RUN_DEFAULTS[name], name, 'none')
    // timeout 0 means none; every other wait must be positive.
    out[key] = parse(name, fallback, (w) =>
      parseDuration(text(name), w, name === 'timeout' ? 'none' : undefined)
    )
  }
  return out as Durations
}

/** What only the run itself knows: the runner it booted, the key file, where reports go. */
export type RunPlace = Pick<ValidateOptions, 'runner' | 'sshKey' | 'outDir' | 'logger'> &
  Partial<
    Pick<
      ValidateOptions,
      | 'signal'
      | 'startedAt'
      | 'buildMs'
      | 'closureBytes'
      | 'perf'
      | 'configuration'
      | 'packagePath'
      | 'declared'
      | 'workRoot'
      | 'onStarted'
    >
  >

/** The engine's input for a request. */
export function engineOptions(r: RunRequest, place: RunPlace): ValidateOptions {
  return {
    system: r.system,
    sshUser: r.sshUser,
    guestSshPort: r.guestSshPort,
    stages: r.stages,
    bootTimeoutMs: r.bootTimeoutMs,
    silenceTimeoutMs: r.silenceTimeoutMs,
    sshTimeoutMs: r.sshTimeoutMs,
    stageTimeoutMs: r.stageTimeoutMs,
    timeoutMs: r.timeoutMs,
    accel: r.accel,
    bootRetries: r.bootRetries,
    cpu: r.cpu,
    checksFile: r.checksFile,
    ...place
  }
}
