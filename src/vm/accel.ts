import { spawn } from 'node:child_process'
import { constants as fsConstants } from 'node:fs'
import { access, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { childEnv } from '../util/env.js'
import type { AccelChoice, Accelerator, GuestSystem } from './system.js'
import { hostSystem } from './system.js'

export interface AccelDecision {
  accelerator: Accelerator
  /** Why this accelerator: shown in the log and the report. */
  reason: string
  probeMs: number
}

/**
 * A multiboot (v1, a.out kludge) image for x86: in 32-bit protected mode it writes "K" to COM1 and
 * halts. Enough to prove KVM enters the guest and exits on port I/O with the runner's CPU model.
 */
export function x86ProbeImage(): Buffer {
  const magic = 0x1badb002
  const flags = 0x00010000
  const base = 0x100000
  const header = Buffer.alloc(32)
  const words = [magic, flags, -(magic + flags) >>> 0, base, base, 0, 0, base + 32]
  words.forEach((w, i) => header.writeUInt32LE(w >>> 0, i * 4))
  // mov dx,0x3f8; mov al,'K'; out dx,al; 1: hlt; jmp 1b
  const code = Buffer.from([0x66, 0xba, 0xf8, 0x03, 0xb0, 0x4b, 0xee, 0xf4, 0xeb, 0xfd])
  return Buffer.concat([header, code])
}

/** An arm64 Linux "Image" that stores "K" into the virt machine's PL011 UART and spins. */
export function aarch64ProbeImage(): Buffer {
  const header = Buffer.alloc(64)
  header.writeUInt32LE(0x14000010, 0) // b +64: jump over the header
  header.writeBigUInt64LE(0n, 8) // text_offset
  header.writeBigUInt64LE(BigInt(64 + 16), 16) // image_size
  header.writeUInt32LE(0x644d5241, 56) // "ARM\x64"
  const code = Buffer.alloc(16)
  code.writeUInt32LE(0xd2a12000, 0) // movz x0, #0x0900, lsl #16  (UART0 at 0x09000000)
  code.writeUInt32LE(0x52800961, 4) // movz w1, #'K'
  code.writeUInt32LE(0x39000001, 8) // strb w1, [x0]
  code.writeUInt32LE(0x14000000, 12) // b .
  return Buffer.concat([header, code])
}

export function probeArgs(system: GuestSystem, image: string, cpu: string): string[] {
  const machine =
    system === 'aarch64-linux'
      ? ['-machine', 'virt,gic-version=max,accel=kvm']
      : ['-machine', 'accel=kvm']
  return [
    ...machine,
    '-cpu',
    cpu,
    '-nodefaults',
    '-display',
    'none',
    '-m',
    '64',
    '-serial',
    'stdio',
    '-no-reboot',
    '-kernel',
    image
  ]
}

/** Runs the probe image under KVM; resolves with why it failed, or undefined when it ran. */
export function runKvmProbe(
  qemu: string,
  args: string[],
  timeoutMs: number
): Promise<string | undefined> {
  return new Promise((resolve) => {
    let stderr = ''
    let settled = false
    const child = spawn(qemu, args, { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
    const finish = (why: string | undefined): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      child.kill('SIGKILL')
      resolve(why)
    }
    const timer = setTimeout(
      () => finish(`a KVM guest printed nothing within ${timeoutMs} ms (hung)`),
      timeoutMs
    )
    child.stdout.on('data', (d: Buffer) => {
      if (d.includes('K')) finish(undefined)
    })
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', (err) => finish(`cannot start ${qemu}: ${err.message}`))
    child.on('close', (code, signal) => {
      const lastLine = stderr.trim().split('\n').filter(Boolean).slice(-2).join(' / ')
      finish(
        `QEMU under KVM exited (${signal ?? `code ${code}`}) before running the guest: ${lastLine || 'no message'}`
      )
    })
  })
}

export interface DecideAccelInput {
  choice: AccelChoice
  system: GuestSystem
  /** CPU model the runner will use under KVM (NixOS runners: max). */
  cpu: string
  qemu: string
  workDir: string
  probeTimeoutMs?: number
  kvmDevice?: string
  host?: GuestSystem | undefined
}

/**
 * Decides the accelerator. KVM is used only after a guest has run under it: on some hosts
 * /dev/kvm opens and creates a VM, yet QEMU aborts on an MSR or the guest never runs.
 */
export async function decideAccelerator(input: DecideAccelInput): Promise<AccelDecision> {
  const started = Date.now()
  const done = (accelerator: Accelerator, reason: string): AccelDecision => ({
    accelerator,
    reason,
    probeMs: Date.now() - started
  })
  if (input.choice === 'tcg') return done('tcg', 'TCG requested (--accel tcg)')
  const host = 'host' in input ? input.host : hostSystem()
  const unusable = await kvmUnusableReason(input, host)
  if (unusable === undefined)
    return done('kvm', 'KVM proven: a probe guest ran under KVM with the runner CPU model')
  if (input.choice === 'kvm') {
    throw new KvmUnavailableError(`--accel kvm: KVM cannot run this guest: ${unusable}`)
  }
  return done('tcg', `KVM not usable (${unusable}); using TCG software emulation`)
}

export class KvmUnavailableError extends Error {}

async function kvmUnusableReason(
  input: DecideAccelInput,
  host: GuestSystem | undefined
): Promise<string | undefined> {
  if (host !== input.system) {
    return `guest is ${input.system} but this host is ${host ?? process.arch}; KVM needs the same architecture`
  }
  const dev = input.kvmDevice ?? '/dev/kvm'
  try {
    await access(dev, fsConstants.R_OK | fsConstants.W_OK)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    return code === 'ENOENT'
      ? `${dev} does not exist`
      : `${dev} is not readable and writable (${code})`
  }
  const image = join(input.workDir, 'kvm-probe.img')
  await writeFile(image, input.system === 'aarch64-linux' ? aarch64ProbeImage() : x86ProbeImage())
  return runKvmProbe(
    input.qemu,
    probeArgs(input.system, image, input.cpu),
    input.probeTimeoutMs ?? 3000
  )
}
