import { accessSync, constants } from 'node:fs'
import { hostSystem, type Accelerator, type GuestSystem } from '../vm/system.js'
import { buildQemuOpts, tcgCpuOverride } from '../vm/qemu-opts.js'
import { DEFAULT_BOOT_RETRIES } from './options.js'
import type { StageName } from '../checks/stages.js'

export interface PlanInput {
  runner?: string
  flake?: string
  system: GuestSystem
  stages: StageName[]
  accel: string
  /** --boot-retries / the boot-retries input; undefined: the accelerator's default. */
  bootRetries?: number
  cpu?: string
  checksFile?: string
  outDir: string
  /**
   * Whether /dev/kvm will be readable and writable when the run starts (the action's Nix path
   * opens it with a udev rule first); default: whether it is now.
   */
  kvm?: boolean
  /** Extra sections from other layers (Nix install/build, GitHub reporting). */
  sections?: { title: string; lines: string[] }[]
}

/** Whether this process can open the KVM device read-write (what decideAccelerator asks first). */
export function kvmUsable(device = '/dev/kvm'): boolean {
  try {
    accessSync(device, constants.R_OK | constants.W_OK)
    return true
  } catch {
    return false
  }
}

/**
 * The accelerator a real run would try first, from the `accel` choice and this machine (the same
 * order as decideAccelerator, without starting the probe guest): `tcg` when asked for or when the
 * guest's architecture is not the host's, `kvm` when asked for or when `auto` finds /dev/kvm
 * usable (the real run proves it with a probe guest and falls back to TCG if it fails).
 */
export function plannedAccelerator(
  choice: string,
  system: GuestSystem,
  o: { host?: GuestSystem | undefined; kvm?: boolean } = {}
): Accelerator {
  if (choice === 'tcg') return 'tcg'
  if (choice === 'kvm') return 'kvm'
  const host = 'host' in o ? o.host : hostSystem()
  if (host !== system) return 'tcg'
  return (o.kvm ?? kvmUsable()) ? 'kvm' : 'tcg'
}

/** The retry policy of the boot stage, as the plan states it. */
export function bootRetryPolicy(
  given: number | undefined,
  accel: Accelerator,
  mayFallBack = false
): string {
  const what =
    'a boot-timeout by silence before userspace started (no init/systemd line on the console) stops the VM and boots a fresh one on a fresh disk; the deadline, a panic, emergency mode and a silence after userspace started are not retried; a retried run that passes is reported as flaky'
  if (given !== undefined) return `${given}${given === 0 ? ' (never retried)' : ''} — ${what}`
  const n = DEFAULT_BOOT_RETRIES[accel]
  const fallback =
    accel === 'kvm' && mayFallBack ? `, ${DEFAULT_BOOT_RETRIES.tcg} if it falls back to TCG` : ''
  return `${n} (default under ${accel === 'kvm' ? 'KVM' : 'TCG'}${fallback}) — ${what}`
}

/** What a run would do, step by step; printed by --dry-run and the action's dry-run input. */
export function renderPlan(p: PlanInput): string {
  const host = hostSystem()
  const emulated = host !== p.system
  const lines: string[] = ['Plan (dry run: nothing is installed, built or booted)', '']
  for (const s of p.sections ?? []) {
    lines.push(`${s.title}:`, ...s.lines.map((l) => `  - ${l}`), '')
  }
  lines.push('VM:')
  lines.push(
    p.runner !== undefined ? `  - runner: ${p.runner}` : `  - runner: built from ${p.flake ?? '?'}`
  )
  lines.push(
    `  - guest ${p.system} on host ${host ?? process.arch}${emulated ? ' (emulated: TCG only)' : ''}`
  )
  const kvm = p.kvm ?? kvmUsable()
  const accel = plannedAccelerator(p.accel, p.system, { host, kvm })
  const how =
    p.accel === 'auto'
      ? emulated
        ? ' → TCG (architectures differ)'
        : kvm
          ? ' → KVM, once a tiny probe guest has run under it; else TCG'
          : ' → TCG (/dev/kvm absent or not readable and writable)'
      : p.accel === 'kvm' && emulated
        ? " → the run would fail: KVM needs the guest to be of the host's architecture"
        : p.accel === 'kvm' && !kvm
          ? ' → the run would fail: /dev/kvm is absent or not readable and writable'
          : ''
  lines.push(`  - accelerator: ${p.accel}${how}`)
  const cpu = p.cpu ?? tcgCpuOverride(p.system)
  if (cpu !== undefined && (accel === 'tcg' || p.accel === 'auto'))
    lines.push(
      `  - under TCG: -cpu ${cpu} appended through QEMU_OPTS (overrides the runner's -cpu max)`
    )
  const opts = buildQemuOpts({
    system: p.system,
    accel,
    qmpSocket: '<workdir>/qmp.sock',
    cpu: p.cpu
  })
  lines.push(
    `  - QEMU_OPTS: ${opts.join(' ')}${accel === 'kvm' && p.accel === 'auto' ? ' (accel=tcg if the KVM probe fails)' : ''}`
  )
  lines.push('  - QEMU_NET_OPTS: hostfwd=tcp:127.0.0.1:<free port>-:22 (loopback only)')
  lines.push('  - NIX_DISK_IMAGE, TMPDIR: fresh per run (USE_TMPDIR=1)')
  lines.push(`  - boot retries: ${bootRetryPolicy(p.bootRetries, accel, p.accel === 'auto')}`)
  lines.push('', 'Stages:', ...p.stages.map((s) => `  - ${s}`))
  if (p.checksFile !== undefined) lines.push(`  (checks from ${p.checksFile})`)
  lines.push(
    '',
    `Artifacts: ${p.outDir}/ (report.json, console.log, junit.xml, summary.md, screenshot-*.png, journal.txt on failure)`
  )
  return lines.join('\n')
}
