import type { CheckResult, Report } from '../report/model.js'
import type { ExecResult } from '../ssh/client.js'
import type { Guest } from '../ssh/guest.js'
import { formatDuration } from '../util/duration.js'
import type { Logger } from '../util/log.js'
import type { Deadline } from '../util/time.js'
import type { ChecksFile } from './model.js'
import type { SectionParser } from './reader.js'
import type { RunContext } from './run.js'
import type { PackagePathResolver } from './substitute.js'

export const DEFAULTS_LABEL = 'built-in default checks'

/** The few run settings the stages need (the run request carries them). */
export interface StageSettings {
  /** The SSH login user: running as another user goes through runuser/su (root) or sudo. */
  sshUser: string
  /** Where artifacts go (e2e logs). */
  outDir: string
  logger: Logger
  /** Evaluates a package attribute to its store path (network.substitute); absent without a flake. */
  packagePath?: PackagePathResolver
}

/** Waits for the end of the boot once, for every stage that asks (see the pipeline). */
export type BootEnd = (timeoutMs: number) => Promise<ExecResult>

/** Where the scripts went in the guest: one temp dir, a numbered subdir per script. */
export interface E2eCopies {
  /** Remote path per script (index in the e2e section), or why it could not be copied. */
  scripts: ({ remote: string } | { error: string })[]
}

/**
 * What a check stage runs with. `Section` is what the stage reads of the checks: its own
 * section(s) (the registry's ChecksConfig holds every stage's, so the pipeline passes that).
 */
export interface StageContext<Section extends object = object> {
  /** The booted guest: stages speak only its verbs (ssh/guest.ts). */
  guest: Guest
  settings: StageSettings
  checks: ChecksFile & Section
  report: Report
  signal: AbortSignal
  /** Budget of this stage. */
  deadline: Deadline
  /** The one wait per run for the end of the boot (systemctl is-system-running --wait). */
  bootEnd: BootEnd
  /** The e2e scripts copied into the guest, once per run (started while the boot runs). */
  e2eCopies: () => Promise<E2eCopies>
}

export type StageRunner<Section extends object = object> = (
  ctx: StageContext<Section>
) => Promise<CheckResult[]>

/**
 * A check stage, whole: its name, its checks-file sections (in file order) and their shape
 * (`Section`: its part of the checks config), what a checks file without them gets and what the
 * built-in defaults hold, its default timeouts, whether it starts only once the boot has ended,
 * and its runner. The registry (registry.ts) lists them in stage order and derives the stage
 * names and the checks config from them.
 */
export interface StageUnit<
  Name extends string = string,
  Section extends object = object,
  Timeouts extends Readonly<Record<string, number>> = Readonly<Record<string, number>>
> {
  name: Name
  sections: Record<string, SectionParser<Section>>
  /** The config of a checks file that leaves the sections out. */
  fileBase: () => Section
  /** This stage's part of the built-in default checks. */
  defaults: () => Section
  /** Per-check timeouts when the file gives none (milliseconds). */
  timeouts: Timeouts
  /** Starts once the boot has ended and the system stage found it healthy (see stages.ts). */
  afterBootEnd: boolean
  run: StageRunner<Section>
}

/** What a stage's checks run with: the guest, the budget, and a debug line per result. */
export function runContext(
  ctx: StageContext,
  stage: string
): RunContext & { report: Report; outDir: string } {
  const log = ctx.settings.logger
  return {
    guest: ctx.guest,
    signal: ctx.signal,
    deadline: ctx.deadline,
    report: ctx.report,
    outDir: ctx.settings.outDir,
    onResult: (r) => {
      const where =
        r.file !== undefined ? ` [${r.file}${r.line !== undefined ? `:${r.line}` : ''}]` : ''
      log.debug(`${stage}: ${r.status} ${r.name} (${formatDuration(r.durationMs)})${where}`)
    }
  }
}
