/**
 * The roll-up: one verdict for every leg of a matrix (docs/rollup.md). Built from the report.json
 * each leg uploaded in its artifact and the home-consistency.json of the Home Manager evaluation;
 * rendered once as the job summary, one check run and one pull request comment.
 */
import type { HomeConsistency } from '../home/model.js'
import type { Report, Status } from '../report/model.js'

/** One matrix leg, as its artifact shows it. */
export interface RollUpLeg {
  artifactName: string
  artifactId?: number
  /** Where a person downloads the artifact (the run page's link). */
  artifactUrl?: string
  /** The configuration (or the runner's name) the leg validated. */
  configuration: string
  /** The configuration without its architecture: legs of one group are compared. */
  group: string
  system: string
  emulated: boolean
  accelerator: Report['accelerator']
  conclusion: 'success' | 'failure'
  /**
   * The failure in one line (`services: check-failed (nginx) — …`), for a failed leg; for an
   * artifact without a readable report.json, why.
   */
  failure?: string
  bootMs?: number
  /** The leg's performance comparison in one cell (perfCell), when the leg compared. */
  perf?: string
  /** Stage name → its status, in the order the leg ran them. */
  stages: Record<string, Status>
  /** Checks that ran, by `stage/check`, for the comparison between legs. */
  checks: Record<string, Status>
  /** Packages from the packages stage (the declared package name when derived). */
  packages: Record<string, Status>
}

/** A leg the `legs` input expects that uploaded no artifact (cancelled, timed out, runner lost). */
export interface MissingLeg {
  /** The entry as listed: `x86_64-linux`, `my-host/x86_64-linux`, `my-host/aarch64-linux/emulated`. */
  entry: string
  configuration?: string
  system: string
  emulated?: boolean
}

export type DifferenceKind = 'check' | 'package' | 'boot-time'

/** Something legs of one group disagree on. */
export interface LegDifference {
  kind: DifferenceKind
  group: string
  /** The check (`stage/check`), the package, or `boot` for the boot time. */
  item: string
  /** Labels of the legs where it passed (or, for boot-time, the faster leg). */
  passed: string[]
  /** Labels of the legs where it failed or is absent (or, for boot-time, the slower leg). */
  failed: string[]
  /** One sentence saying the difference. */
  detail: string
}

/** One home-consistency.json and the artifact it came in. */
export interface HomeSource {
  artifactName: string
  artifactUrl?: string
  consistency: HomeConsistency
}

export interface RollUp {
  legs: RollUpLeg[]
  missing: MissingLeg[]
  differences: LegDifference[]
  home: HomeSource[]
  /** success only when every leg passed and none is missing. */
  conclusion: 'success' | 'failure'
}

/** How a leg is named in tables and differences: `my-host (aarch64-linux, emulated)`. */
export function legLabel(l: Pick<RollUpLeg, 'configuration' | 'system' | 'emulated'>): string {
  return `${l.configuration} (${l.system}${l.emulated ? ', emulated' : ''})`
}
