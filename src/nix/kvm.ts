import { constants } from 'node:fs'
import { access } from 'node:fs/promises'
import type { Logger } from '../util/log.js'
import { asRoot, runCommands, writeFileStep, type Executor, type Step } from './exec.js'
import type { HostFacts } from './facts.js'

export const KVM_UDEV_RULE = 'KERNEL=="kvm", GROUP="kvm", MODE="0666", OPTIONS+="static_node=kvm"'
export const KVM_RULE_PATH = '/etc/udev/rules.d/99-nixos-vm-validate-kvm.rules'

export interface KvmPlan {
  /** absent: no /dev/kvm; ok: read/write already; fix: the udev rule below; skip: cannot fix here. */
  state: 'absent' | 'ok' | 'fix' | 'skip'
  reason: string
  commands: Step[]
}

/**
 * /dev/kvm present but not read/writable (hosted x86_64 runners): a udev rule opens it to all
 * users (group membership is not enough: nix-daemon build users drop supplementary groups).
 * Access is probed first, so nothing is touched when it already works; act has no udev.
 * The engine's run-time probe (src/vm/accel.ts) still decides whether KVM is used.
 */
export function planKvmAccess(facts: Pick<HostFacts, 'kvm' | 'act' | 'udev' | 'uid'>): KvmPlan {
  if (facts.kvm === 'absent')
    return {
      state: 'absent',
      reason: '/dev/kvm does not exist: the VM runs under TCG',
      commands: []
    }
  if (facts.kvm === 'rw')
    return { state: 'ok', reason: '/dev/kvm is readable and writable', commands: [] }
  if (facts.act) {
    return {
      state: 'skip',
      reason:
        '/dev/kvm is not accessible and act containers have no udev (run act with --privileged --device /dev/kvm)',
      commands: []
    }
  }
  if (!facts.udev) {
    return {
      state: 'skip',
      reason: '/dev/kvm is not accessible and udev is not running here',
      commands: []
    }
  }
  return {
    state: 'fix',
    reason: '/dev/kvm exists but is not readable and writable: adding a udev rule',
    commands: [
      writeFileStep(KVM_RULE_PATH, KVM_UDEV_RULE + '\n', {
        mode: '0644',
        uid: facts.uid,
        privileged: true,
        why: 'udev rule: /dev/kvm mode 0666'
      }),
      {
        argv: asRoot(['udevadm', 'control', '--reload-rules'], facts.uid),
        why: 'reload the udev rules'
      },
      {
        argv: asRoot(['udevadm', 'trigger', '--name-match=kvm'], facts.uid),
        why: 'apply them to /dev/kvm'
      }
    ]
  }
}

export interface KvmResult {
  state: KvmPlan['state']
  /** Read/write access after the fix. */
  accessible: boolean
  message: string
}

async function canOpen(device: string): Promise<boolean> {
  try {
    await access(device, constants.R_OK | constants.W_OK)
    return true
  } catch {
    return false
  }
}

/** Applies planKvmAccess and re-checks access; never throws (TCG remains). */
export async function ensureKvmAccess(
  facts: Pick<HostFacts, 'kvm' | 'act' | 'udev' | 'uid'>,
  deps: { exec: Executor; log: Logger; device?: string; settleMs?: number }
): Promise<KvmResult> {
  const plan = planKvmAccess(facts)
  const device = deps.device ?? '/dev/kvm'
  if (plan.state !== 'fix') {
    deps.log.info(plan.reason)
    return { state: plan.state, accessible: plan.state === 'ok', message: plan.reason }
  }
  deps.log.info(plan.reason)
  try {
    await runCommands(plan.commands, deps.exec, deps.log)
  } catch (err) {
    const message = `could not apply the udev rule: ${(err as Error).message}`
    deps.log.warning(message)
    return { state: 'fix', accessible: await canOpen(device), message }
  }
  // udevadm trigger returns before the device node is updated.
  const deadline = Date.now() + (deps.settleMs ?? 3000)
  let ok = await canOpen(device)
  while (!ok && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200))
    ok = await canOpen(device)
  }
  const message = ok
    ? '/dev/kvm is now readable and writable'
    : '/dev/kvm is still not accessible after the udev rule'
  if (ok) deps.log.info(message)
  else deps.log.warning(message)
  return { state: 'fix', accessible: ok, message }
}
