import type { Report } from '../report/model.js'
import { loadChecks, type ChecksConfig } from '../checks/config.js'
import { bootPhase, chooseAccelerator } from './boot.js'
import type { ValidateOptions } from './options.js'
import { RunState } from './run-state.js'
import { StageScheduler } from './scheduler.js'
import { deriveChecks, withDerived } from '../spec/derive.js'
import { errorMessage } from '../util/errors.js'

/**
 * One validation run: boot → ssh → check stages → teardown. Never throws past a stage: every
 * failure is classified into the report, and teardown (screenshot, QEMU stopped, artifacts written)
 * runs on every path. The phases: boot.ts (accelerator, runner, console, retries), scheduler.ts
 * (ssh and check stages), run-state.ts (failures, evidence, teardown) and report/artifacts.ts;
 * docs/architecture.md draws the whole flow.
 */
export async function validate(o: ValidateOptions): Promise<Report> {
  const run = await RunState.open(o)
  try {
    const checks = await loadChecks(o.checksFile, o.stages)
    prefetchPackages(o, checks)
    const accel = await chooseAccelerator(run)
    const sshWait = await bootPhase(run, accel, o.stages.includes('ssh'))
    // The derived checks are first needed by the stages: the boot never waits for the spec.
    await new StageScheduler(run, await withDeclared(run, checks)).runAll(sshWait)
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

/**
 * The checks file's (or default) checks, plus those the flake's configuration implies. A spec
 * that could not be evaluated is said in the log and the report; the run goes on with the rest.
 */
async function withDeclared(run: RunState, checks: ChecksConfig): Promise<ChecksConfig> {
  if (run.o.declared === undefined) return checks
  const exclude = checks.derived?.exclude.map((e) => e.name) ?? []
  try {
    const merged = withDerived(checks, deriveChecks(await run.o.declared), exclude)
    run.report.declared = { checks: merged.added, excluded: exclude }
    run.log.info(`checks derived from the configuration: ${merged.added}`)
    return merged.checks
  } catch (err) {
    const error = errorMessage(err)
    run.report.declared = { checks: 0, excluded: exclude, error }
    run.log.warning(`no checks derived from the configuration: ${error}`)
    return checks
  }
}
