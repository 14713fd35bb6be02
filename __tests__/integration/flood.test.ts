/**
 * A guest that floods its console: a runner (same contract, no QEMU) prints 512 MiB without a
 * single newline, then 512 MiB of lines, then goes silent. The run must end with a verdict and
 * a report (the boot's silence limit), console.log must stay within its cap with the head, a
 * marker and the tail, and nothing of the run may be left running. The throughput of this
 * pipeline is measured by `npm run bench` (part F), not here.
 */
import { afterEach, describe, expect, it } from '@jest/globals'
import { chmodSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { execFileSync } from 'node:child_process'
import { CONSOLE_HEAD_BYTES, CONSOLE_TAIL_BYTES } from '../../src/vm/capped-log.js'
import { ed25519Pair } from '../../src/nix/sshkey.js'
import { runCli, scratch, type CliRun } from './helpers.js'

const MIB = 1024 * 1024
const LINE = 'flood: a guest stuck printing the same line, over and over, at full speed'

/** A runner that floods `mib` MiB without a newline and `mib` MiB of lines, then sleeps. */
function floodRunner(dir: string, mib: number): string {
  const runner = join(dir, 'bin', 'run-flood-vm')
  execFileSync('mkdir', ['-p', join(dir, 'bin')])
  writeFileSync(
    runner,
    [
      '#!/bin/sh',
      '# A guest console out of control (nixos-vm-validate flood test): no QEMU, same contract.',
      'echo "flood guest: start"',
      `head -c ${mib * MIB} /dev/zero | tr '\\0' x`,
      'echo',
      `yes '${LINE}' | head -c ${mib * MIB}`,
      'echo',
      'echo "flood guest: end"',
      'exec sleep 600',
      ''
    ].join('\n')
  )
  chmodSync(runner, 0o755)
  return runner
}

function processesOf(marker: string): string[] {
  try {
    return execFileSync('pgrep', ['-af', marker], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.includes('pgrep'))
  } catch {
    return []
  }
}

let last: CliRun | undefined
afterEach(() => {
  // The runner's process group (sleep included) is gone with the run.
  if (last !== undefined) expect(processesOf(last.marker)).toEqual([])
  last = undefined
})

describe('a flooding console', () => {
  it(
    '1 GiB: a verdict, a report, a capped console.log with head, marker and tail',
    async () => {
      const dir = mkdtempSync(join(scratch('flood'), 'guest-'))
      const runner = floodRunner(dir, 512)
      const key = join(dir, 'id_ed25519')
      writeFileSync(key, ed25519Pair('flood').private, { mode: 0o600 })
      const run = await runCli(
        [
          'validate',
          '--runner',
          runner,
          '--system',
          'x86_64-linux',
          '--ssh-key',
          key,
          '--stages',
          'boot',
          '--accel',
          'tcg',
          '--silence-timeout',
          '5s',
          '--boot-timeout',
          '10m'
        ],
        { timeoutMs: 12 * 60_000 }
      )
      last = run
      expect(run.code).toBe(1)
      const report = run.report()
      expect(report.failure).toMatchObject({ stage: 'boot', kind: 'boot-timeout' })
      expect(report.failure?.message).toMatch(
        /^no console output for 5\.0s \(silence limit\); the guest printed \d+ bytes/
      )
      // The evidence is the end of the flood, one line of it — not a gigabyte.
      expect(report.failure?.excerpt).toContain('flood guest: end')
      expect((report.failure?.excerpt ?? '').length).toBeLessThan(64 * 1024)
      const log = join(run.outDir, 'console.log')
      const size = statSync(log).size
      expect(size).toBeLessThanOrEqual(CONSOLE_HEAD_BYTES + CONSOLE_TAIL_BYTES + 1024)
      expect(size).toBeGreaterThan(CONSOLE_HEAD_BYTES)
      const bytes = readFileSync(log)
      expect(bytes.subarray(0, 24).toString()).toBe('flood guest: start\nxxxxx')
      const marker = bytes.indexOf('\n… nixos-vm-validate: ')
      expect(marker).toBeGreaterThanOrEqual(CONSOLE_HEAD_BYTES)
      expect(bytes.subarray(marker, marker + 300).toString()).toMatch(
        /^\n… nixos-vm-validate: \d+ bytes of console output cut here \(console\.log keeps the first 50331648 and the last 16777216 of \d+ bytes\) …\n/
      )
      expect(bytes.subarray(-200).toString()).toMatch(/\nflood guest: end\n$/)
      expect(report.artifacts).toContain('console.log')
    },
    12 * 60_000
  )
})
