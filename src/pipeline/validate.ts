import type { Report } from '../report/model.js'
import { loadChecks, type ChecksConfig } from '../checks/config.js'
import { bootPhase, chooseAccelerator } from './boot.js'
import type { ValidateOptions } from './options.js'
import { RunState } from './run-state.js'
import { StageScheduler } from './scheduler.js'

/**
 * One validation run: boot → ssh → check stages → teardown. Never throws past a stage: every
 * failure is classified into the report, and teardown (screenshot, QEMU stopped, artifacts written)
 * runs on every path. The phases: boot.ts (accelerator, runner, console, retries), scheduler.ts
 * (ssh and check stages), run-state.ts (failures, evidence, teardown) and report/artifacts.ts.
 */
export async function validate(o: ValidateOptions): Promise<Report> {
  const run = await RunState.open(o)
  try {
    const checks = await loadChecks(o.checksFile, o.stages)
    prefetchPackages(o, checks)
    const accel = await chooseAccelerator(run)
    const sshWait = await bootPhase(run, accel, o.stages.includes('ssh'))
    await new StageScheduler(run, checks).runAll(sshWait)
  } catch (err) {
    run.failSetup(err)
  }
  return run.close()
}

/** Package paths are evaluated on the host while the VM boots; the network stage awaits them. */
function prefetchPackages(o: ValidateOptions, checks: ChecksConfig): void {
  if (!o.stages.includes('network') || o.packagePath === undefined) return
  for (const s of checks.network?.substitute ?? [])
    if (s.package !== undefined) o.packagePath(s.package).catch(() => undefined)
}
