import { e2eUnit } from './e2e.js'
import { homeManagerStageUnit } from './home-manager.js'
import { networkUnit } from './network.js'
import { packagesUnit } from './packages.js'
import { performanceUnit } from './performance.js'
import { servicesUnit } from './services.js'
import { systemUnit } from './system.js'
import type { CheckStageName } from './unit.js'
import { usersUnit } from './users.js'

/**
 * The check stages, in stage order (and their sections in checks-file order): the one list.
 * Adding a stage is its module, one line here, and its documentation.
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
/** Fails to compile when a check stage of report/model.ts has no unit here. */
type Complete<Missing extends never> = Missing
export type AllStagesRegistered = Complete<Exclude<CheckStageName, Registered['name']>>

type Intersection<U> = (U extends unknown ? (u: U) => void : never) extends (i: infer I) => void
  ? I
  : never

/** Per-check timeouts when the file gives none: every stage's own, by check kind. */
export const DEFAULT_TIMEOUTS = Object.freeze(
  Object.assign({}, ...STAGE_UNITS.map((u) => u.timeouts))
) as Intersection<Registered['timeouts']>
