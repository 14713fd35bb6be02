/**
 * scripts/demo.sh leaves nothing behind — no HTTP server, no node, no QEMU, no temp dir — and exits
 * with node's code, whether the validation passes or fails, and when it is interrupted: Ctrl-C to
 * the whole process group as a terminal sends it (also through `npm run demo`, which passes the
 * SIGINT on once more), or SIGTERM to the script alone. Each run gets a fresh TMPDIR that must end
 * empty. All runs use the demo's own aarch64 guest (built by `npm run guests`). The whole demo takes
 * 70 s or more under TCG (its later stages wait for the guest's boot to end), and the clean-up path
 * is the same whatever the stages, so the passing run is boot,ssh (about 35 s); the others stop
 * within seconds.
 */
import { afterEach, describe, expect, it } from '@jest/globals'
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import type { Report } from '../../src/report/model.js'
import { ROOT, buildGuest, qemuLeft, scratch } from './helpers.js'

interface DemoRun {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  seconds: number
  tmp: string
  out: string
}

interface Demo {
  child: ChildProcess
  done: Promise<DemoRun>
  tmp: string
}

/** Every run's TMPDIR and DEMO_OUT: removed after each test, with anything a failed demo left. */
const dirs: string[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) {
    for (const line of processesIn(dir)) {
      try {
        process.kill(Number(line.split(' ')[0]), 'SIGKILL')
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true })
  }
})

/** Starts the demo in a process group of its own (as a terminal's foreground job is). */
function startDemo(args: string[], via: 'bash' | 'npm' = 'bash'): Demo {
  buildGuest('aarch64', 'ok') // cached by `npm run guests`: the demo's own build.sh call is instant
  const tmp = scratch('demo-tmp')
  const out = scratch('demo-out')
  dirs.push(tmp, out)
  const [cmd, argv] =
    via === 'npm'
      ? ['npm', ['run', '--silent', 'demo', '--', ...args]]
      : ['bash', ['scripts/demo.sh', ...args]]
  const started = Date.now()
  const child = spawn(cmd, argv, {
    cwd: ROOT,
    detached: true,
    env: { ...process.env, TMPDIR: tmp, DEMO_ARCH: 'aarch64', DEMO_OUT: out },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()))
  const done = new Promise<DemoRun>((resolve) =>
    child.on('close', (code, signal) =>
      resolve({
        code,
        signal,
        stdout,
        stderr,
        seconds: (Date.now() - started) / 1000,
        tmp,
        out
      })
    )
  )
  return { child, done, tmp }
}

/** Processes whose command line names the run's TMPDIR: the HTTP server, node (--checks), QEMU. */
function processesIn(dir: string): string[] {
  try {
    return execFileSync('pgrep', ['-a', '-f', dir], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
  } catch {
    return [] // pgrep exits 1 when nothing matches
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

async function waitFor(what: string, ok: () => boolean, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs
  while (!ok()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await sleep(200)
  }
}

/** Nothing of the run is left: no process, no file under its TMPDIR. */
async function expectNothingLeft(run: DemoRun): Promise<void> {
  // The demo has exited; give orphans a moment to show (they must not exist at all).
  await sleep(500)
  expect(processesIn(run.tmp)).toEqual([])
  expect(qemuLeft(run.tmp)).toEqual([])
  expect(readdirSync(run.tmp)).toEqual([])
}

function report(run: DemoRun): Report {
  return JSON.parse(readFileSync(join(run.out, 'report.json'), 'utf8')) as Report
}

/** Starts a boot,ssh run and resolves once its QEMU is running (the server and node are up). */
async function startedVm(via: 'bash' | 'npm' = 'bash'): Promise<Demo> {
  const demo = startDemo(['--stages', 'boot,ssh', '--accel', 'tcg'], via)
  await waitFor('QEMU of the demo', () => qemuLeft(demo.tmp).length > 0, 120_000)
  expect(processesIn(demo.tmp).some((p) => p.includes('http.server'))).toBe(true)
  return demo
}

describe('scripts/demo.sh cleans up', () => {
  it('after a passing run: exit 0, report success', async () => {
    const run = await startDemo(['--stages', 'boot,ssh']).done
    if (run.code !== 0) throw new Error(`exit ${run.code}\n${run.stdout}\n${run.stderr}`)
    const r = report(run)
    expect(r.conclusion).toBe('success')
    expect(r.stages.map((s) => [s.name, s.status])).toEqual([
      ['boot', 'passed'],
      ['ssh', 'passed']
    ])
    await expectNothingLeft(run)
  })

  it('after a dry run: exit 0', async () => {
    const run = await startDemo(['--dry-run']).done
    expect(run.code).toBe(0)
    expect(run.stdout).toMatch(/^Plan \(dry run/m)
    await expectNothingLeft(run)
  })

  it("after a failing run: node's exit code (1, boot-timeout)", async () => {
    const run = await startDemo(['--stages', 'boot', '--boot-timeout', '3s', '--accel', 'tcg']).done
    expect(run.code).toBe(1)
    expect(report(run).failure?.kind).toBe('boot-timeout')
    await expectNothingLeft(run)
  })

  it("after bad input: node's exit code (2)", async () => {
    const run = await startDemo(['--stages', 'nope']).done
    expect(run.code).toBe(2)
    expect(run.stderr).toMatch(/unknown stage "nope"/)
    await expectNothingLeft(run)
  })

  it('after Ctrl-C (SIGINT to the process group): exit 130, the report says cancelled', async () => {
    const demo = await startedVm()
    process.kill(-(demo.child.pid as number), 'SIGINT')
    const run = await demo.done
    expect(run.code).toBe(130)
    // One SIGINT reached node: it stopped the VM and wrote the report (a second would force).
    expect(report(run).failure?.kind).toBe('cancelled')
    await expectNothingLeft(run)
  })

  it('after Ctrl-C under `npm run demo`: npm fails, the report says cancelled', async () => {
    const demo = await startedVm('npm')
    process.kill(-(demo.child.pid as number), 'SIGINT')
    const run = await demo.done
    expect(run.code === 0 && run.signal === null).toBe(false)
    expect(report(run).failure?.kind).toBe('cancelled')
    await expectNothingLeft(run)
  })

  it('after SIGTERM to the script alone: exit 143', async () => {
    const demo = await startedVm()
    process.kill(demo.child.pid as number, 'SIGTERM')
    const run = await demo.done
    expect(run.code).toBe(143)
    expect(existsSync(join(run.out, 'report.json'))).toBe(true)
    expect(report(run).failure?.kind).toBe('cancelled')
    await expectNothingLeft(run)
  })
})
