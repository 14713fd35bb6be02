import type { Logger } from '../util/log.js'
import type { StageName } from '../report/model.js'
import type { AccelChoice, GuestSystem } from '../vm/system.js'
import type { PackagePathResolver } from '../checks/substitute.js'

/** Everything one validation run needs, parsed and checked (CLI flags or action inputs). */
export interface ValidateOptions {
  /** Runner script (`result/bin/run-<host>-vm`), absolute. */
  runner: string
  system: GuestSystem
  sshKey: string
  sshUser: string
  guestSshPort: number
  stages: StageName[]
  outDir: string
  bootTimeoutMs: number
  silenceTimeoutMs: number
  sshTimeoutMs: number
  /** Budget of one check stage. */
  stageTimeoutMs: number
  /** Whole run (0: none). */
  timeoutMs: number
  accel: AccelChoice
  cpu?: string
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
  /**
   * Store path of a package of the configuration's own nixpkgs (a flake run): the network stage's
   * substitution checks by `package`. Memoized (memoResolver); started while the VM boots.
   */
  packagePath?: PackagePathResolver
  /** Called once the runner is started (the action saves the pid for its post step). */
  onStarted?: (info: { pid: number; workDir: string }) => void
}
