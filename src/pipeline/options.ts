import type { Logger } from '../util/log.js'
import { InputError } from '../util/errors.js'
import type { StageName } from '../checks/stages.js'
import type { AccelChoice, Accelerator, GuestSystem } from '../vm/system.js'
import type { PackagePathResolver } from '../checks/substitute.js'
import type { DeclaredSpec } from '../nix/spec.js'
import type { PerfOptions } from '../perf/apply.js'

/** The settings both front ends parse alike (pipeline/request.ts parses them). */
export interface RunSettings {
  sshUser: string
  guestSshPort: number
  stages: StageName[]
  bootTimeoutMs: number
  silenceTimeoutMs: number
  sshTimeoutMs: number
  /** Budget of one check stage. */
  stageTimeoutMs: number
  /** Whole run (0: none). */
  timeoutMs: number
  accel: AccelChoice
  /**
   * Restarts of a boot that went silent before userspace (see bootRetriesFor); undefined: the
   * default of the accelerator the VM actually runs under (DEFAULT_BOOT_RETRIES).
   */
  bootRetries?: number
  cpu?: string
}

/** The engine's input for one validation run (made from a RunRequest by engineOptions, request.ts). */
export interface ValidateOptions extends RunSettings {
  /** Runner script (`result/bin/run-<host>-vm`), absolute. */
  runner: string
  system: GuestSystem
  sshKey: string
  outDir: string
  checksFile?: string
  configuration?: string
  /** Scratch space (RUNNER_TEMP on GitHub). */
  workRoot?: string
  env?: NodeJS.ProcessEnv
  logger: Logger
  signal?: AbortSignal
  /** Time already spent before the VM part (e.g. the Nix build), counted in totalMs. */
  startedAt?: number
  buildMs?: number
  /** NAR bytes of the built VM's closure. */
  closureBytes?: number
  /** Compare the run with its history and record it (docs/performance-history.md). */
  perf?: PerfOptions
  /**
   * Store path of a package of the configuration's own nixpkgs (a flake run): the network stage's
   * substitution checks by `package`. Memoized (memoResolver); started while the VM boots.
   */
  packagePath?: PackagePathResolver
  /**
   * What the flake's configuration declares (a flake run), evaluated beside the build: the
   * checks derived from it join the checks file's (docs/derived-checks.md).
   */
  declared?: Promise<DeclaredSpec>
  /** Called once the runner is started (the action saves the pid for its post step). */
  onStarted?: (info: { pid: number; workDir: string }) => void
}

/** The values `--boot-retries` / the `boot-retries` input accept. */
export const BOOT_RETRIES = [0, 1, 2, 3] as const

/**
 * Restarts per accelerator when none is given: under TCG a transient emulator hang early in the
 * boot is a known flake worth one fresh boot; under KVM a silent boot is a real fault.
 */
export const DEFAULT_BOOT_RETRIES: Record<Accelerator, number> = { tcg: 1, kvm: 0 }

/** How many restarts a run allows: the given value, else the default of the accelerator used. */
export function bootRetriesFor(given: number | undefined, accelerator: Accelerator): number {
  return given ?? DEFAULT_BOOT_RETRIES[accelerator]
}

/** Parses `--boot-retries` / the `boot-retries` input: a whole number from 0 to 3. */
export function parseBootRetries(text: string, what = '--boot-retries'): number {
  const n = Number(text)
  if (!/^\d+$/.test(text) || !(BOOT_RETRIES as readonly number[]).includes(n))
    throw new InputError(
      `${what}: "${text}" is not allowed; allowed values: ${BOOT_RETRIES.join(', ')} (unset: 1 under TCG, 0 with KVM)`
    )
  return n
}
