import { childEnv } from '../util/env.js'
import { InputError } from '../util/errors.js'
import type { Accelerator, GuestSystem } from './system.js'

/**
 * CPU model used under TCG when the runner asks for `-cpu max`. On aarch64, `max` emulates pointer
 * authentication with the QARMA cipher, which dominates boot time under TCG. `max,pauth=off` keeps
 * every other feature the runner asked for, and a guest loses nothing by it: PAC instructions sit
 * in the hint space and run as no-ops without the feature, and software finds pauth through HWCAP.
 * On the Debian test guest (boot to the login prompt, 3 runs each, same machine and hour):
 * `max` 42.6–44.1 s; `max,pauth=off` 15.3–17.6 s; `max,pauth-impdef=on` 18.0–21.2 s; cortex-a72
 * (ARMv8.0: no LSE atomics, so slower under multi-threaded TCG, and fewer features) 18.4–23.0 s.
 * x86_64's `max` costs little under TCG.
 */
export function tcgCpuOverride(system: GuestSystem): string | undefined {
  return system === 'aarch64-linux' ? 'max,pauth=off' : undefined
}

export interface QemuOptsInput {
  system: GuestSystem
  accel: Accelerator
  qmpSocket: string
  /** Overrides `-cpu`; `undefined` keeps the runner's own (or the TCG tuning default). */
  cpu?: string
  /** Words from the user's own QEMU_OPTS, kept in front of ours. */
  userOpts?: string
}

/**
 * The words the engine appends to the runner through QEMU_OPTS. The runner expands QEMU_OPTS unquoted
 * at the end of its QEMU command line, so a later `-machine`/`-cpu` overrides the runner's own and
 * every word must be free of whitespace.
 */
export function buildQemuOpts(input: QemuOptsInput): string[] {
  const words: string[] = []
  // The console: our own serial chardev on QEMU's stdout. Giving any -serial disables QEMU's default
  // serial (which -nographic would put on stdio together with the monitor), and -qmp disables the
  // default monitor, so stdout carries the guest's serial console and nothing else.
  words.push('-chardev', 'stdio,id=nvv-console,signal=off', '-serial', 'chardev:nvv-console')
  words.push('-qmp', `unix:${input.qmpSocket},server=on,wait=off`)
  // A runner built with graphics = true would open a window (and fail on a headless runner);
  // screendump still reads the emulated display.
  words.push('-display', 'none')
  // A panicking guest with panic=-1 would otherwise reboot forever (NixOS runners have no -no-reboot).
  words.push('-no-reboot')
  // Force the accelerator that was proven: `accel=kvm:tcg` would fall back to TCG silently.
  words.push('-machine', `accel=${input.accel}`)
  const cpu = input.cpu ?? (input.accel === 'tcg' ? tcgCpuOverride(input.system) : undefined)
  if (cpu !== undefined) words.push('-cpu', cpu)
  for (const w of words) {
    if (/\s/.test(w)) {
      throw new InputError(
        `QEMU option "${w}" contains whitespace; QEMU_OPTS is word-split by the runner, so paths must not contain spaces`
      )
    }
  }
  const user = (input.userOpts ?? '').trim()
  return user === '' ? words : [...user.split(/\s+/), ...words]
}

export interface RunnerEnvInput {
  diskImage: string
  tmpDir: string
  hostSshPort: number
  guestSshPort: number
  qemuOpts: string[]
  /** The user's own QEMU_NET_OPTS / QEMU_KERNEL_PARAMS, kept. */
  userNetOpts?: string
  userKernelParams?: string
  /**
   * The environment the runner inherits (the engine's own), without the action's inputs and
   * runner credentials (childEnv): the runner script and QEMU need none of them.
   */
  base?: NodeJS.ProcessEnv
}

/**
 * Environment of the runner script per the NixOS runner contract
 * (docs/plans/2025-10-26-nixos-vm-validation-design.md): `base` (filtered), then our variables.
 */
export function buildRunnerEnv(input: RunnerEnvInput): Record<string, string> {
  // Forward on loopback only: the guest's sshd must not be reachable from the network.
  const fwd = `hostfwd=tcp:127.0.0.1:${input.hostSshPort}-:${input.guestSshPort}`
  const net = [input.userNetOpts?.trim(), fwd].filter((s) => s !== undefined && s !== '').join(',')
  const env: Record<string, string> = {
    ...(input.base !== undefined ? childEnv(input.base) : {}),
    NIX_DISK_IMAGE: input.diskImage,
    TMPDIR: input.tmpDir,
    USE_TMPDIR: '1',
    QEMU_NET_OPTS: net,
    QEMU_OPTS: input.qemuOpts.join(' ')
  }
  if (input.userKernelParams !== undefined && input.userKernelParams.trim() !== '') {
    env.QEMU_KERNEL_PARAMS = input.userKernelParams.trim()
  }
  return env
}
