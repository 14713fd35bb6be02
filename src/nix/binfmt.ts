import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ValidationFailure } from '../util/errors.js'
import type { Logger } from '../util/log.js'
import type { GuestSystem } from '../vm/system.js'
import { asRoot, runCommands, type Command, type Executor } from './exec.js'

export const BINFMT_DIR = '/proc/sys/fs/binfmt_misc'

/** ELF magic and mask of each architecture, as in QEMU's scripts/qemu-binfmt-conf.sh. */
const ELF: Record<GuestSystem, { magic: string; mask: string; qemu: string }> = {
  'aarch64-linux': {
    magic:
      '\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00',
    mask: '\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff',
    qemu: 'aarch64'
  },
  'x86_64-linux': {
    magic:
      '\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\x3e\\x00',
    mask: '\\xff\\xff\\xff\\xff\\xff\\xfe\\xfe\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff',
    qemu: 'x86_64'
  }
}

/** Hex form of a magic/mask as /proc/sys/fs/binfmt_misc/<entry> prints it. */
function hexOf(escaped: string): string {
  return escaped
    .split('\\x')
    .filter(Boolean)
    .map((part) => {
      // "7fELF": the first two characters are hex, the rest literal characters.
      const head = part.slice(0, 2)
      const rest = [...part.slice(2)]
        .map((c) => c.charCodeAt(0).toString(16).padStart(2, '0'))
        .join('')
      return head + rest
    })
    .join('')
}

/** Our own entry name: registered after any distribution entry, so the kernel tries it first. */
export function binfmtEntryName(system: GuestSystem): string {
  return `nixos-vm-validate-${ELF[system].qemu}`
}

/** Statically linked user-mode QEMU (Debian/Ubuntu qemu-user-static): usable inside the Nix sandbox. */
export function staticInterpreter(system: GuestSystem): string {
  return `/usr/bin/qemu-${ELF[system].qemu}-static`
}

/**
 * The line written to /proc/sys/fs/binfmt_misc/register. Flag F (fix binary) makes the kernel
 * open the interpreter now, so builds in the Nix sandbox, where its path does not exist, can use it.
 */
export function binfmtRegistration(system: GuestSystem, interpreter: string, flags = 'F'): string {
  const e = ELF[system]
  return `:${binfmtEntryName(system)}:M::${e.magic}:${e.mask}:${interpreter}:${flags}`
}

export interface BinfmtEntry {
  name: string
  enabled: boolean
  interpreter: string
  flags: string
  magic: string
  mask: string
}

/** Parses /proc/sys/fs/binfmt_misc/<name> (`enabled`, `interpreter …`, `flags: PF`, …). */
export function parseBinfmtEntry(name: string, text: string): BinfmtEntry {
  const field = (key: string): string => {
    const m = new RegExp(`^${key}:?\\s+(.*)$`, 'm').exec(text)
    return m !== null ? m[1].trim() : ''
  }
  return {
    name,
    enabled: /^enabled$/m.test(text),
    interpreter: field('interpreter'),
    flags: field('flags'),
    magic: field('magic'),
    mask: field('mask')
  }
}

/** Whether an entry runs `system` ELF binaries (same magic and mask). */
export function entryMatches(entry: BinfmtEntry, system: GuestSystem): boolean {
  return entry.magic === hexOf(ELF[system].magic) && entry.mask === hexOf(ELF[system].mask)
}

export interface BinfmtFacts {
  /** /proc/sys/fs/binfmt_misc/register exists. */
  mounted: boolean
  entries: BinfmtEntry[]
  /** Static QEMU interpreters present on the host. */
  interpreters: string[]
}

export interface EmulationPlan {
  /** native: same architecture; ready: a usable F entry exists; register: commands below. */
  state: 'native' | 'ready' | 'register'
  guest: GuestSystem
  host: GuestSystem
  /** Interpreter the kernel runs guest binaries with (also an extra-sandbox-path). */
  interpreter?: string
  reason: string
  commands: Command[]
  /** nix.conf settings the emulated build needs. */
  settings: [string, string][]
}

/**
 * The commands that register our own entry: mount binfmt_misc, install qemu-user-static, remove
 * an earlier entry of our name, register with flag F (in that order).
 */
function registrationCommands(
  guest: GuestSystem,
  interpreter: string,
  facts: BinfmtFacts,
  uid: number
): Command[] {
  const commands: Command[] = []
  if (!facts.mounted) {
    commands.push({
      argv: asRoot(['mount', '-t', 'binfmt_misc', 'binfmt_misc', BINFMT_DIR], uid),
      why: 'mount binfmt_misc'
    })
  }
  if (!facts.interpreters.includes(interpreter)) {
    commands.push(
      {
        argv: asRoot(['apt-get', 'update', '-q'], uid),
        why: 'refresh the package lists for qemu-user-static'
      },
      {
        argv: asRoot(
          ['apt-get', 'install', '-y', '-q', '--no-install-recommends', 'qemu-user-static'],
          uid
        ),
        env: { DEBIAN_FRONTEND: 'noninteractive' },
        why: `install a statically linked ${interpreter}`
      }
    )
  }
  const stale = facts.entries.find((e) => e.name === binfmtEntryName(guest))
  if (stale !== undefined) {
    commands.push({
      argv: asRoot(['tee', `${BINFMT_DIR}/${stale.name}`], uid),
      input: '-1',
      why: `remove the earlier ${stale.name} entry (flags ${stale.flags || 'none'})`
    })
  }
  commands.push({
    argv: asRoot(['tee', `${BINFMT_DIR}/register`], uid),
    input: binfmtRegistration(guest, interpreter),
    why: `register ${interpreter} for ${guest} binaries with flag F`
  })
  return commands
}

/**
 * What building a `guest` system on a `host` needs: nothing when they match (native ARM runners
 * build natively); otherwise a binfmt_misc entry with flag F plus extra-platforms and
 * extra-sandbox-paths. An enabled entry with F is reused; anything else registers our own.
 */
export function planEmulation(
  guest: GuestSystem,
  host: GuestSystem,
  facts: BinfmtFacts,
  uid: number
): EmulationPlan {
  const base = { guest, host }
  if (guest === host) {
    return {
      ...base,
      state: 'native',
      reason: `native build: the host is ${host}`,
      commands: [],
      settings: []
    }
  }
  const settings = (interpreter: string): [string, string][] => [
    // The setting replaces Nix's default (i686-linux on x86_64 hosts): keep that one too.
    ['extra-platforms', host === 'x86_64-linux' ? `${guest} i686-linux` : guest],
    ['extra-sandbox-paths', interpreter]
  ]
  const usable = facts.entries.find(
    (e) => e.enabled && e.flags.includes('F') && entryMatches(e, guest)
  )
  if (usable !== undefined) {
    return {
      ...base,
      state: 'ready',
      interpreter: usable.interpreter,
      reason: `binfmt entry ${usable.name} runs ${guest} binaries with ${usable.interpreter} (flags ${usable.flags}: fixed binary, usable in the build sandbox)`,
      commands: [],
      settings: settings(usable.interpreter)
    }
  }
  const interpreter = staticInterpreter(guest)
  const commands = registrationCommands(guest, interpreter, facts, uid)
  const existing = facts.entries.filter((e) => entryMatches(e, guest))
  const why =
    existing.length > 0
      ? `the ${guest} entries (${existing.map((e) => `${e.name}: ${e.enabled ? 'enabled' : 'disabled'}, flags ${e.flags || 'none'}`).join('; ')}) lack an enabled F flag`
      : `no binfmt entry runs ${guest} binaries`
  return {
    ...base,
    state: 'register',
    interpreter,
    reason: why,
    commands,
    settings: settings(interpreter)
  }
}

/** Runs planEmulation's commands, then checks that an enabled entry with flag F exists. */
export async function ensureEmulation(
  plan: EmulationPlan,
  deps: { exec: Executor; log: Logger; readEntry?: (name: string) => Promise<string | undefined> }
): Promise<EmulationPlan> {
  deps.log.info(plan.reason)
  if (plan.state !== 'register') return plan
  await runCommands(plan.commands, deps.exec, deps.log)
  const name = binfmtEntryName(plan.guest)
  const read =
    deps.readEntry ?? ((n: string) => readFile(join(BINFMT_DIR, n), 'utf8').catch(() => undefined))
  const text = await read(name)
  const entry = text !== undefined ? parseBinfmtEntry(name, text) : undefined
  if (entry === undefined || !entry.enabled || !entry.flags.includes('F')) {
    throw new ValidationFailure(
      'tool-error',
      `binfmt entry ${name} is not enabled with flag F after registering it`,
      text ?? ''
    )
  }
  deps.log.info(`registered ${name}: ${entry.interpreter} (flags ${entry.flags})`)
  return { ...plan, state: 'ready' }
}
