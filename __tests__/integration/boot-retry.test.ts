/**
 * boot-retries on a real boot: a runner that hangs on its first start (a few kernel lines, then
 * silence, as a transient emulator hang does) and boots the real x86_64 test guest on its second.
 * With the default under TCG the run retries once, passes and says it was flaky; with
 * --boot-retries 0 the same runner fails as boot-timeout.
 */
import { afterEach, describe, expect, it } from '@jest/globals'
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  artifact,
  buildGuest,
  hasArtifact,
  qemuLeft,
  runCli,
  scratch,
  type CliRun
} from './helpers.js'

const runs: CliRun[] = []
afterEach(() => {
  for (const run of runs.splice(0)) expect(qemuLeft(run.marker)).toEqual([])
})

/**
 * bin/run-flaky-vm in a temp dir of its own: the first start (no marker file yet) prints
 * kernel-like lines and then nothing; every later start execs the real guest's runner.
 */
function flakyRunner(realRunner: string): { runner: string; dir: string } {
  const dir = scratch('flaky-runner')
  mkdirSync(join(dir, 'bin'))
  const runner = join(dir, 'bin', 'run-flaky-vm')
  const marker = join(dir, 'first-start-done')
  writeFileSync(
    runner,
    [
      '#!/bin/sh',
      `if [ ! -e '${marker}' ]; then`,
      `  : > '${marker}'`,
      "  printf '[    0.000000] Linux version 6.1.0-28-cloud-amd64 (first start: hangs)\\n'",
      "  printf '[    0.210000] ACPI: Core revision 20220331\\n'",
      "  printf '[    0.412000] clocksource: Switched to clocksource hpet\\n'",
      '  exec sleep 600',
      'fi',
      `exec '${realRunner}' "$@"`,
      ''
    ].join('\n')
  )
  chmodSync(runner, 0o755)
  return { runner, dir }
}

async function validate(args: string[]): Promise<CliRun> {
  const run = await runCli(['validate', ...args])
  runs.push(run)
  return run
}

describe('boot-retries (x86_64 guest, TCG)', () => {
  const guest = (): ReturnType<typeof buildGuest> => buildGuest('x86_64', 'ok')
  // The first start has no QMP socket: the engine waits 15 s for it, so any silence limit up to
  // that costs nothing more; 10 s leaves the real boot room for a slow stretch on a busy machine.
  const common = (runner: string): string[] => [
    '--runner',
    runner,
    '--system',
    guest().system,
    '--ssh-key',
    guest().sshKey,
    '--stages',
    'boot,ssh',
    '--accel',
    'tcg',
    '--silence-timeout',
    '10s'
  ]

  it('retries a silence before userspace once, passes, and says the leg was flaky', async () => {
    const { runner, dir } = flakyRunner(guest().runner)
    const run = await validate(common(runner))
    expect(run.stderr).toMatch(/boot attempt 1 went silent before userspace/)
    expect(run.code).toBe(0)
    expect(existsSync(join(dir, 'first-start-done'))).toBe(true)
    const r = run.report()
    expect(r.conclusion).toBe('success')
    expect(r.flaky).toBe(true)
    expect(r.stages.map((s) => [s.name, s.status])).toEqual([
      ['boot', 'passed'],
      ['ssh', 'passed']
    ])
    expect(r.bootAttempts).toHaveLength(2)
    const [first, second] = r.bootAttempts ?? []
    expect(first).toMatchObject({
      attempt: 1,
      accelerator: 'tcg',
      userspaceSeen: false,
      consoleLog: 'console-attempt-1.log',
      failure: {
        kind: 'boot-timeout',
        reason: 'silence',
        silenceMs: 10_000,
        lastLine: '[    0.412000] clocksource: Switched to clocksource hpet'
      }
    })
    expect(first.failure?.excerpt).toMatch(/clocksource: Switched to clocksource hpet/)
    expect(second).toMatchObject({
      attempt: 2,
      userspaceSeen: true,
      failure: null,
      consoleLog: 'console.log'
    })
    expect(second.startedAtMs).toBeGreaterThan(first.startedAtMs)
    // Each attempt's console is its own artifact.
    expect(r.artifacts).toEqual(expect.arrayContaining(['console-attempt-1.log', 'console.log']))
    expect(readFileSync(artifact(run, 'console-attempt-1.log'), 'utf8')).toMatch(
      /clocksource: Switched to clocksource hpet\n$/
    )
    const console = readFileSync(artifact(run, 'console.log'), 'utf8')
    expect(console).not.toMatch(/first start: hangs/)
    expect(console).toMatch(/login:|Started .*ssh\.service/)
    // Said where it is read first: the summary's first lines and the CLI's one-line conclusion.
    const summary = readFileSync(artifact(run, 'summary.md'), 'utf8').split('\n')
    expect(summary[0]).toMatch(
      /VM validation passed.*\*\*flaky\*\*: boot retried after 10\.0s of silence/
    )
    expect(summary.slice(0, 4).join('\n')).toMatch(/Flaky leg/)
    expect(run.stdout).toMatch(
      /✅ VM validation passed .* — ⚠️ flaky: boot retried after 10\.0s of silence at [\d.]+m?s, before userspace/
    )
  })

  it('with --boot-retries 0 the same runner fails as boot-timeout', async () => {
    const { runner } = flakyRunner(guest().runner)
    const run = await validate([...common(runner), '--boot-retries', '0'])
    expect(run.code).toBe(1)
    const r = run.report()
    expect(r.failure).toMatchObject({ stage: 'boot', kind: 'boot-timeout' })
    expect(r.failure?.message).toMatch(/silence limit/)
    expect(r.bootAttempts).toBeUndefined()
    expect(r.flaky).toBeUndefined()
    expect(hasArtifact(run, 'console-attempt-1.log')).toBe(false)
    expect(readFileSync(artifact(run, 'console.log'), 'utf8')).toMatch(/first start: hangs/)
    expect(run.stdout).not.toMatch(/flaky|retried/)
  })
})
