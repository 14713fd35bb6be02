import type { CheckResult, Report, StageName } from '../report/model.js'
import type { SshSession } from '../ssh/client.js'
import type { Deadline } from '../util/time.js'
import type { Machine } from '../vm/machine.js'
import type { ValidateOptions } from '../pipeline/options.js'
import { formatDuration } from '../util/duration.js'
import type { ChecksConfig } from './config.js'
import { packagesStage } from './commands.js'
import { e2eStage, type E2eCopies } from './e2e.js'
import { networkStage } from './network.js'
import { performanceStage } from './performance.js'
import type { RunContext } from './run.js'
import { servicesStage } from './services.js'
import { systemStage, type BootEnd } from './system.js'
import { homeManagerStage, usersStage } from './users.js'

export interface StageContext {
  ssh: SshSession
  machine: Machine
  options: ValidateOptions
  checks: ChecksConfig
  report: Report
  signal: AbortSignal
  /** Budget of this stage. */
  deadline: Deadline
  /** The one wait per run for the end of the boot (systemctl is-system-running --wait). */
  bootEnd: BootEnd
  /** The e2e scripts copied into the guest, once per run (started while the boot runs). */
  e2eCopies: () => Promise<E2eCopies>
}

/**
 * Stages that judge the booted system start once the boot has ended and the system stage found it
 * healthy: a unit still starting, a URL fetched while the network comes up or an e2e script racing
 * the services it tests would fail for the wrong reason, boot timings do not exist before then,
 * and polling units (or the docker CLI) while the boot runs takes the CPU the boot needs — under
 * emulation that made the boot itself end 5 s later. The other stages (system's own wait, users,
 * packages: plain commands, no polling) start as soon as SSH works, in the boot's idle moments.
 */
export const AFTER_BOOT_END: ReadonlySet<StageName> = new Set([
  'services',
  'home-manager',
  'network',
  'performance',
  'e2e'
])

export type StageRunner = (ctx: StageContext) => Promise<CheckResult[]>

function runContext(
  ctx: StageContext,
  stage: string
): RunContext & { report: Report; outDir: string } {
  const log = ctx.options.logger
  return {
    ssh: ctx.ssh,
    sshUser: ctx.options.sshUser,
    signal: ctx.signal,
    deadline: ctx.deadline,
    report: ctx.report,
    outDir: ctx.options.outDir,
    onResult: (r) => {
      const where =
        r.file !== undefined ? ` [${r.file}${r.line !== undefined ? `:${r.line}` : ''}]` : ''
      log.debug(`${stage}: ${r.status} ${r.name} (${formatDuration(r.durationMs)})${where}`)
    }
  }
}

export type CheckStageName = Exclude<StageName, 'boot' | 'ssh'>

export const CHECK_STAGES: Record<CheckStageName, StageRunner> = {
  system: (ctx) => systemStage(runContext(ctx, 'system'), ctx.checks, ctx.bootEnd),
  services: (ctx) => servicesStage(runContext(ctx, 'services'), ctx.checks),
  users: (ctx) => usersStage(runContext(ctx, 'users'), ctx.checks),
  'home-manager': (ctx) => homeManagerStage(runContext(ctx, 'home-manager'), ctx.checks),
  packages: (ctx) => packagesStage(runContext(ctx, 'packages'), ctx.checks),
  network: (ctx) => networkStage(runContext(ctx, 'network'), ctx.checks, ctx.options.packagePath),
  performance: (ctx) => performanceStage(runContext(ctx, 'performance'), ctx.checks),
  e2e: (ctx) => e2eStage({ ...runContext(ctx, 'e2e'), copies: ctx.e2eCopies }, ctx.checks)
}
