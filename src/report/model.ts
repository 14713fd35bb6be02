import type { FailureKind } from '../util/errors.js'
import { hostSystem, type Accelerator, type GuestSystem } from '../vm/system.js'
import { TOOL_VERSION } from '../version.js'

export type Status = 'passed' | 'failed' | 'skipped'

export interface CheckResult {
  name: string
  status: Status
  durationMs: number
  /** Trimmed output (stdout+stderr) or the reason for a skip. */
  output: string
  /** Where the check was declared (checks file or e2e script), for annotations. */
  file?: string
  line?: number
  /** The systemd unit the evidence is about (its journal is saved on failure). */
  unit?: string
}

export interface StageResult {
  name: string
  status: Status
  durationMs: number
  /** Milliseconds since the run started when the stage began (for the timeline). */
  startMs?: number
  checks: CheckResult[]
  message?: string
}

export interface Failure {
  stage: string
  kind: FailureKind
  message: string
  excerpt: string
  check?: string
  file?: string
  line?: number
  /** Milliseconds from the runner's start to the moment the failure was detected. */
  atMs?: number
}

export interface BootAnalysis {
  kernelMs?: number
  initrdMs?: number
  userspaceMs?: number
  totalMs?: number
  blame?: { unit: string; ms: number }[]
  criticalChain?: string
  memoryUsedMiB?: number
}

/** report.json (docs/plans/2025-10-26-nixos-vm-validation-design.md: add fields, never rename). */
export interface Report {
  schemaVersion: 1
  tool: { name: 'nixos-vm-validate'; version: string }
  system: GuestSystem
  accelerator: Accelerator | 'none'
  /** Why that accelerator (e.g. the KVM probe's finding). */
  acceleratorReason?: string
  /** The guest architecture differs from the host's (software-emulated CPU). */
  emulated: boolean
  hostSystem: string
  runner?: string
  configuration?: string
  conclusion: 'success' | 'failure'
  failure: Failure | null
  timings: {
    /** From runner start to the login prompt / multi-user target. */
    bootMs?: number
    /** From runner start to a working SSH session. */
    sshReadyMs?: number
    totalMs: number
    /** From the start of the run to the runner's start (inputs, KVM probe, build). */
    preflightMs?: number
    buildMs?: number
  }
  boot?: BootAnalysis
  stages: StageResult[]
  artifacts: string[]
  startedAt: string
}

export const STAGES = [
  'boot',
  'ssh',
  'system',
  'services',
  'users',
  'home-manager',
  'packages',
  'network',
  'performance',
  'e2e'
] as const
export type StageName = (typeof STAGES)[number]

export function firstFailedCheck(stage: StageResult): CheckResult | undefined {
  return stage.checks.find((c) => c.status === 'failed')
}

/** A report before anything ran: one place for the fields every run, failed early or not, carries. */
export function newReport(o: {
  system: GuestSystem
  startedAt: number
  runner?: string
  configuration?: string
  accelerator?: Report['accelerator']
}): Report {
  const host = hostSystem()
  return {
    schemaVersion: 1,
    tool: { name: 'nixos-vm-validate', version: TOOL_VERSION },
    system: o.system,
    accelerator: o.accelerator ?? 'none',
    emulated: host !== o.system,
    hostSystem: host ?? process.arch,
    runner: o.runner,
    configuration: o.configuration,
    conclusion: 'failure',
    failure: null,
    timings: { totalMs: 0 },
    stages: [],
    artifacts: [],
    startedAt: new Date(o.startedAt).toISOString()
  }
}
