import type { FailureKind } from '../util/errors.js'
import { hostSystem, type Accelerator, type GuestSystem } from '../vm/system.js'
import { TOOL_VERSION } from '../version.js'
import type { PerfComparison } from '../perf/model.js'

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
  /** What the NixOS configuration declared, for a check derived from it (docs/derived-checks.md). */
  declared?: Declared
}

/** The checks derived from the flake's configuration (docs/derived-checks.md). */
export interface DeclaredSummary {
  /** Derived checks that joined the run. */
  checks: number
  /** The checks file's `derived.exclude`. */
  excluded: string[]
  /** Why nothing could be derived (the evaluation failed). */
  error?: string
}

/** One declaration of the configuration a derived check stands for. */
export interface Declared {
  /** The option path (`users.users.alice`, `systemd.services.sshd`). */
  option: string
  /** The declared value in a few words (`groups users, wheel, docker`). */
  value: string
  /** The file of the flake that declares it, when the module system says. */
  file?: string
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

/** The performance stage's probes of a booted guest (medians of a few tries). */
export interface Responsiveness {
  /** A trivial command (`true`) over the open SSH session, there and back. */
  sshRoundTripMs?: number
  /** A fixed shell loop in the guest, timed by the guest's clock. */
  cpuProbeMs?: number
  /** Writing and syncing a small file in the guest's /var/tmp, timed by the guest's clock. */
  diskProbeMs?: number
}

/** Why one boot attempt failed (the failure it would have been reported as). */
export interface BootAttemptFailure {
  kind: FailureKind
  message: string
  excerpt: string
  /** For a boot-timeout: `silence` (the console stopped) or `deadline` (no login prompt in time). */
  reason?: string
  /** The silence limit that ran out. */
  silenceMs?: number
  /** When the console last printed, in milliseconds from this attempt's runner start. */
  lastOutputAtMs?: number
  /** The last console line before the silence. */
  lastLine?: string
}

/** One start of the VM during the boot stage (report.json lists them when the boot was retried). */
export interface BootAttempt {
  /** 1 for the first start. */
  attempt: number
  /** Milliseconds from the start of the run to this attempt's runner start. */
  startedAtMs: number
  durationMs: number
  accelerator: Accelerator
  /** Whether the console showed userspace (init) starting: see ConsoleMonitor.userspaceAt. */
  userspaceSeen: boolean
  /** Why the attempt failed; null for the attempt that booted. */
  failure: BootAttemptFailure | null
  /** Its serial console, an artifact of the run (`console-attempt-<n>.log`, the last `console.log`). */
  consoleLog: string
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
  /** A flake run: the checks derived from what its configuration declares. */
  declared?: DeclaredSummary
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
  /** NAR bytes of the VM's closure (a flake run). */
  closureBytes?: number
  /** How quickly the booted guest answers (the performance stage). */
  responsiveness?: Responsiveness
  /** This run against its base's history (docs/performance-history.md). */
  perf?: PerfComparison
  /**
   * Every start of the VM, present only when the boot was retried (boot-retries): a silence before
   * userspace stopped a VM and a fresh one was started.
   */
  bootAttempts?: BootAttempt[]
  /** Present when the boot was retried: true when the run then passed (a flaky leg), else false. */
  flaky?: boolean
  stages: StageResult[]
  artifacts: string[]
  startedAt: string
}

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

export interface BareReportInput {
  system: GuestSystem
  configuration?: string
  runner?: string
  startedAt: number
  failure: Failure
  /** The stage that was running (its duration runs to now). */
  stage?: { name: string; startMs: number }
  /** What QEMU ran with, when known (post reads it from QEMU's command line). */
  accelerator?: Accelerator
}

/**
 * A report for a run that never reached validate()'s own report (a Nix build that failed, a main
 * step killed before it wrote one): same model, so the summary, check run and artifacts treat it
 * like any other.
 */
export function bareReport(i: BareReportInput): Report {
  const now = Date.now()
  const stages: StageResult[] =
    i.stage !== undefined
      ? [
          {
            name: i.stage.name,
            status: 'failed',
            startMs: i.stage.startMs,
            durationMs: Math.max(0, now - i.startedAt - i.stage.startMs),
            checks: [],
            message: i.failure.message
          }
        ]
      : []
  return {
    ...newReport({
      system: i.system,
      startedAt: i.startedAt,
      runner: i.runner,
      configuration: i.configuration,
      accelerator: i.accelerator
    }),
    failure: i.failure,
    timings: { totalMs: now - i.startedAt },
    stages
  }
}
