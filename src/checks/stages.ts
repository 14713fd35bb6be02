import { STAGE_UNITS, type ChecksConfig, type CheckStageName, type StageName } from './registry.js'
import type { StageContext as UnitContext, StageRunner as UnitRunner } from './unit.js'

export { STAGES, type CheckStageName, type StageName } from './registry.js'
export type { StageSettings } from './unit.js'

/** What the pipeline gives a check stage: the whole checks config (each stage reads its part). */
export type StageContext = UnitContext<ChecksConfig>
export type StageRunner = UnitRunner<ChecksConfig>

/**
 * Stages that judge the booted system start once the boot has ended and the system stage found it
 * healthy: a unit still starting, a URL fetched while the network comes up or an e2e script racing
 * the services it tests would fail for the wrong reason, boot timings do not exist before then,
 * and polling units (or the docker CLI) while the boot runs takes the CPU the boot needs — under
 * emulation that made the boot itself end 5 s later. The other stages (system's own wait, users,
 * packages: plain commands, no polling) start as soon as SSH works, in the boot's idle moments.
 * Each stage module says which it is (`afterBootEnd`).
 */
export const AFTER_BOOT_END: ReadonlySet<StageName> = new Set(
  STAGE_UNITS.filter((u) => u.afterBootEnd).map((u) => u.name)
)

/** Each check stage's runner, by name (from the registry). */
export const CHECK_STAGES = Object.fromEntries(
  STAGE_UNITS.map((u): [CheckStageName, StageRunner] => [u.name, u.run])
) as Record<CheckStageName, StageRunner>
