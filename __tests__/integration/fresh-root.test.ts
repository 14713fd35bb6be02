/**
 * scripts/setup.sh on a minimal Debian 12 root, not on this warm machine: scripts/test-fresh-root.sh
 * bootstraps (once, cached) an `mmdebstrap --variant=minbase bookworm` chroot, runs setup.sh in it
 * twice, then the first step of the aarch64 guest build (arch-test / mmdebstrap's foreign
 * architecture check), QEMU with the guests' devices and a --dry-run of the CLI. The script cleans
 * up after itself: no mount and nothing under TMPDIR may be left.
 */
import { describe, expect, it } from '@jest/globals'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, readdirSync, rmdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ROOT } from './helpers.js'

function run(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv
): Promise<{ code: number | null; output: string }> {
  return new Promise((done) => {
    const child = spawn(cmd, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (d: Buffer) => (output += d.toString()))
    child.stderr.on('data', (d: Buffer) => {
      output += d.toString()
      process.stderr.write(d) // progress, step by step
    })
    child.on('close', (code) => done({ code, output }))
  })
}

describe('scripts/setup.sh on a minimal Debian 12 root', () => {
  it('installs everything, passes its preflight and readies the aarch64 guest build', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'nvv-it-fresh-root-'))
    try {
      const started = Date.now()
      const r = await run('bash', [join(ROOT, 'scripts/test-fresh-root.sh')], {
        ...process.env,
        TMPDIR: tmp
      })
      const seconds = Math.round((Date.now() - started) / 1000)
      process.stderr.write(`test-fresh-root.sh: exit ${r.code} in ${seconds} s\n`)
      if (r.code !== 0) throw new Error(`test-fresh-root.sh failed (exit ${r.code}):\n${r.output}`)
      expect(r.output).toMatch(/── bash \/project\/scripts\/setup\.sh \(first run\)/)
      expect(r.output).toMatch(/arm64: ok/)
      expect(r.output).toMatch(/passed in \d+ s/)

      // Nothing left: no temp dir, no mount of the chroot in this namespace.
      expect(readdirSync(tmp)).toEqual([])
      expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain('nvv-fresh-root.')
    } finally {
      try {
        rmdirSync(tmp) // only when empty: anything left stays for a look
      } catch {
        // not empty: the assertion above says what
      }
    }
  })
})
