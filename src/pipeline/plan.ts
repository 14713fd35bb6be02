import { existsSync } from 'node:fs'
import { hostSystem, type GuestSystem } from '../vm/system.js'
import { buildQemuOpts, tcgCpuOverride } from '../vm/qemu-opts.js'
import type { StageName } from '../report/model.js'

export interface PlanInput {
  runner?: string
  flake?: string
  system: GuestSystem
  stages: StageName[]
  accel: string
  cpu?: string
  checksFile?: string
  outDir: string
  /** Extra sections from other layers (Nix install/build, GitHub reporting). */
  sections?: { title: string; lines: string[] }[]
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
  const kvm = existsSync('/dev/kvm')
  lines.push(
    `  - accelerator: ${p.accel}${p.accel === 'auto' ? (emulated ? ' → TCG (architectures differ)' : kvm ? ' → probe KVM with a tiny guest, else TCG' : ' → TCG (/dev/kvm absent)') : ''}`
  )
  const cpu = p.cpu ?? tcgCpuOverride(p.system)
  if (cpu !== undefined)
    lines.push(
      `  - under TCG: -cpu ${cpu} appended through QEMU_OPTS (overrides the runner's -cpu max)`
    )
  const opts = buildQemuOpts({
    system: p.system,
    accel: 'tcg',
    qmpSocket: '<workdir>/qmp.sock',
    cpu: p.cpu
  })
  lines.push(`  - QEMU_OPTS: ${opts.join(' ')}`)
  lines.push('  - QEMU_NET_OPTS: hostfwd=tcp:127.0.0.1:<free port>-:22 (loopback only)')
  lines.push('  - NIX_DISK_IMAGE, TMPDIR: fresh per run (USE_TMPDIR=1)')
  lines.push('', 'Stages:', ...p.stages.map((s) => `  - ${s}`))
  if (p.checksFile !== undefined) lines.push(`  (checks from ${p.checksFile})`)
  lines.push(
    '',
    `Artifacts: ${p.outDir}/ (report.json, console.log, junit.xml, summary.md, screenshot-*.png, journal.txt on failure)`
  )
  return lines.join('\n')
}
