import { readFileSync } from 'node:fs'
import { readFile, readdir } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { isAlive } from './process.js'
import type { Accelerator, GuestSystem } from './system.js'

/*
 * The NixOS runner contract as the engine, the action and its post step each rely on it: a VM
 * built from a flake is started by `<store path>/bin/run-<hostname>-vm`, a shell script that execs
 * QEMU (a store path) with QEMU_OPTS appended (see qemu-opts.ts for the environment it reads). The
 * runner runs in a process group of its own, so its pid names the group of the script and QEMU.
 */

/** `run-<hostname>-vm`: the file name of a runner script. */
const RUNNER_FILE = /^run-(.+)-vm$/

/** Whether a file name (no directory) is a runner script's, e.g. `run-nixos-vm-vm`. */
export function isRunnerFileName(name: string): boolean {
  return RUNNER_FILE.test(name)
}

/** `.../bin/run-nixos-vm-vm` → `nixos-vm`: the host name the runner carries; else the file name. */
export function runnerHostName(runner: string): string {
  const b = basename(runner)
  return RUNNER_FILE.exec(b)?.[1] ?? b
}

/** `bin/run-<name>-vm` of a built VM (the first by name when there are several). */
export async function findRunner(storePath: string): Promise<string | undefined> {
  const names = await readdir(join(storePath, 'bin')).catch(() => [] as string[])
  const runner = names.filter(isRunnerFileName).sort()[0]
  return runner !== undefined ? join(storePath, 'bin', runner) : undefined
}

/** The QEMU the runner script execs (NixOS: a store path), else the one on PATH. */
export function qemuBinaryFromRunner(script: string, system: GuestSystem): string {
  const m = /(\S*qemu-system-(?:x86_64|aarch64|i386|arm))\b/.exec(script)
  if (m !== null) return m[1].replace(/^["']/, '')
  return system === 'aarch64-linux' ? 'qemu-system-aarch64' : 'qemu-system-x86_64'
}

/** The runner script's text ('' when unreadable), for qemuBinaryFromRunner. */
export function readRunnerScript(runner: string): Promise<string> {
  return readFile(runner, 'utf8').catch(() => '')
}

/** The accelerator a QEMU command line asks for: the last `accel=` wins, as in QEMU. */
export function acceleratorFromCmdline(cmdline: string): Accelerator | undefined {
  const all = [...cmdline.matchAll(/accel=(kvm|tcg)\b/g)]
  return all.at(-1)?.[1] as Accelerator | undefined
}

/**
 * Whether a process's command line is still a runner or QEMU of ours (`runner`: the script we
 * started, when known): a pid saved earlier may have been recycled by then, and is left alone.
 */
export function isOurRunner(cmdline: string, runner: string | undefined): boolean {
  return (
    /qemu-system-/.test(cmdline) ||
    (runner !== undefined && cmdline.includes(runner)) ||
    /run-.+-vm/.test(cmdline)
  )
}

/** True while the process runs (a zombie waiting for its reaper counts as gone). */
export function processRunning(pid: number): boolean {
  if (!isAlive(pid)) return false
  try {
    // /proc/<pid>/stat: "pid (comm) S …"; comm may hold spaces and parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]
    return state !== 'Z' && state !== 'X'
  } catch {
    return isAlive(pid)
  }
}

/** A process's command line while it lives (readable before a kill, gone after). */
export async function cmdlineOf(pid: number): Promise<string | undefined> {
  try {
    return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').join(' ')
  } catch {
    return undefined
  }
}
