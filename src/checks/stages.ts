import type { CheckResult, Report, StageName } from '../report/model.js'
import type { SshSession } from '../ssh/client.js'
import type { Deadline } from '../util/time.js'
import type { Machine } from '../vm/machine.js'
import type { ValidateOptions } from '../pipeline/options.js'
import type { ChecksConfig } from './config.js'

export interface StageContext {
  ssh: SshSession
  machine: Machine
  options: ValidateOptions
  checks: ChecksConfig
  report: Report
  signal: AbortSignal
  /** Budget of this stage. */
  deadline: Deadline
}

export type StageRunner = (ctx: StageContext) => Promise<CheckResult[]>

const notYet: StageRunner = async () => [
  { name: 'not implemented', status: 'skipped', durationMs: 0, output: 'this stage has no checks yet' }
]

export const CHECK_STAGES: Record<Exclude<StageName, 'boot' | 'ssh'>, StageRunner> = {
  system: notYet,
  services: notYet,
  users: notYet,
  'home-manager': notYet,
  packages: notYet,
  network: notYet,
  performance: notYet,
  e2e: notYet
}
