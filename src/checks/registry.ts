import { e2eUnit } from './e2e.js'
import { homeManagerStageUnit } from './home-manager.js'
import type { ChecksFile } from './model.js'
import { networkUnit } from './network.js'
import { packagesUnit } from './packages.js'
import { performanceUnit } from './performance.js'
import { servicesUnit } from './services.js'
import { systemUnit } from './system.js'
import type { StageUnit } from './unit.js'
import { usersUnit } from './users.js'

/**
 * The check stages, in stage order (and their sections in checks-file order): the one list.
 * Adding a stage is its module, one line here, and its documentation (docs/architecture.md):
 * the stage names, the checks config and the default timeouts below are derived from it.
 */
export const STAGE_UNITS = [
  systemUnit,
  servicesUnit,
  usersUnit,
  homeManagerStageUnit,
  packagesUnit,
  networkUnit,
  performanceUnit,
  e2eUnit
] as const

type Registered = (typeof STAGE_UNITS)[number]

type Intersection<U> = (U extends unknown ? (u: U) => void : never) extends (i: infer I) => void
  ? I
  : never

/** A unit's part of the checks config. */
type SectionOf<U> =
  U extends StageUnit<string, infer S, Readonly<Record<string, number>>> ? S : never

/** The check stages' names (every stage after boot and ssh). */
export type CheckStageName = Registered['name']

/** The stages the pipeline runs itself, before the check stages. */
const PIPELINE_STAGES = ['boot', 'ssh'] as const

/** Every stage, in run (and report) order. */
export const STAGES: readonly StageName[] = Object.freeze([
  ...PIPELINE_STAGES,
  ...STAGE_UNITS.map((u): CheckStageName => u.name)
])
export type StageName = (typeof PIPELINE_STAGES)[number] | CheckStageName

/** The checks file model (tests/vm/checks.yml), or the built-in defaults: every stage's sections. */
export type ChecksConfig = ChecksFile & Intersection<SectionOf<Registered>>

/** Per-check timeouts when the file gives none: every stage's own, by check kind. */
export const DEFAULT_TIMEOUTS = Object.freeze(
  Object.assign({}, ...STAGE_UNITS.map((u) => u.timeouts))
) as Intersection<Registered['timeouts']>
