import { InputError } from '../util/errors.js'

export const SYSTEMS = ['x86_64-linux', 'aarch64-linux'] as const
export type GuestSystem = (typeof SYSTEMS)[number]

export const ACCEL_CHOICES = ['auto', 'kvm', 'tcg'] as const
export type AccelChoice = (typeof ACCEL_CHOICES)[number]
export type Accelerator = 'kvm' | 'tcg'

export function parseSystem(value: string, what = '--system'): GuestSystem {
  if ((SYSTEMS as readonly string[]).includes(value)) return value as GuestSystem
  throw new InputError(
    `${what}: "${value}" is not supported; allowed values: ${SYSTEMS.join(', ')}`
  )
}

export function parseAccel(value: string, what = '--accel'): AccelChoice {
  if ((ACCEL_CHOICES as readonly string[]).includes(value)) return value as AccelChoice
  throw new InputError(
    `${what}: "${value}" is not allowed; allowed values: ${ACCEL_CHOICES.join(', ')}`
  )
}

/** The Nix system of the machine we run on (what QEMU can accelerate with KVM). */
export function hostSystem(arch: string = process.arch): GuestSystem | undefined {
  if (arch === 'x64') return 'x86_64-linux'
  if (arch === 'arm64') return 'aarch64-linux'
  return undefined
}

/** Serial console device NixOS uses for the guest architecture (nixos/lib/qemu-common.nix). */
export function serialDevice(system: GuestSystem): string {
  return system === 'aarch64-linux' ? 'ttyAMA0' : 'ttyS0'
}
