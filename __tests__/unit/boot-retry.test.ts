/**
 * boot-retries: which boot failures are retried, the defaults per accelerator, the CLI option and
 * the action input, what the console monitor counts as userspace, and how a retried run reads.
 */
import { describe, expect, it } from '@jest/globals'
import { parseArgs } from '../../src/cli/args.js'
import { parseInputs, type InputName } from '../../src/action/inputs.js'
import {
  BOOT_RETRIES,
  DEFAULT_BOOT_RETRIES,
  bootRetriesFor,
  parseBootRetries
} from '../../src/pipeline/options.js'
import { isRetryableBootFailure, shouldRetryBoot } from '../../src/pipeline/boot.js'
import { bootRetryPolicy, renderPlan } from '../../src/pipeline/plan.js'
import { ConsoleMonitor, isUserspaceLine } from '../../src/vm/console.js'
import { newReport, type Report } from '../../src/report/model.js'
import { conclusionLine, renderSummary } from '../../src/report/render.js'
import { InputError, ValidationFailure } from '../../src/util/errors.js'
import { InputErrors } from '../../src/util/input-errors.js'

const silence = (): ValidationFailure =>
  new ValidationFailure('boot-timeout', 'no console output for 5s (silence limit)', 'hpet', {
    reason: 'silence'
  })
const deadline = (): ValidationFailure =>
  new ValidationFailure('boot-timeout', 'the guest did not reach the login prompt', '', {
    reason: 'deadline'
  })

describe('which boot failures are retried', () => {
  it('a silence before userspace only', () => {
    expect(isRetryableBootFailure(silence(), false)).toBe(true)
    // Silence after init started is a hang of the guest's own, not of the emulator.
    expect(isRetryableBootFailure(silence(), true)).toBe(false)
    expect(isRetryableBootFailure(deadline(), false)).toBe(false)
    for (const kind of ['kernel-panic', 'emergency-mode', 'qemu-exited', 'cancelled'] as const)
      expect(isRetryableBootFailure(new ValidationFailure(kind, kind), false)).toBe(false)
    // A boot-timeout without the silence reason, and anything that is no classified failure.
    expect(isRetryableBootFailure(new ValidationFailure('boot-timeout', 'x'), false)).toBe(false)
    expect(isRetryableBootFailure(new Error('no console output'), false)).toBe(false)
  })

  it('while retries are left and the run is not cancelled', () => {
    const o = {
      failure: silence(),
      userspaceSeen: false,
      retriesDone: 0,
      retries: 1,
      cancelled: false
    }
    expect(shouldRetryBoot(o)).toBe(true)
    expect(shouldRetryBoot({ ...o, retriesDone: 1 })).toBe(false)
    expect(shouldRetryBoot({ ...o, retries: 0 })).toBe(false)
    expect(shouldRetryBoot({ ...o, retries: 3, retriesDone: 2 })).toBe(true)
    expect(shouldRetryBoot({ ...o, cancelled: true })).toBe(false)
    expect(shouldRetryBoot({ ...o, userspaceSeen: true })).toBe(false)
    expect(shouldRetryBoot({ ...o, failure: deadline() })).toBe(false)
  })
})

describe('defaults per accelerator', () => {
  it('1 under TCG, 0 with KVM, unless given', () => {
    expect(DEFAULT_BOOT_RETRIES).toEqual({ tcg: 1, kvm: 0 })
    expect(bootRetriesFor(undefined, 'tcg')).toBe(1)
    expect(bootRetriesFor(undefined, 'kvm')).toBe(0)
    expect(bootRetriesFor(0, 'tcg')).toBe(0)
    expect(bootRetriesFor(2, 'kvm')).toBe(2)
  })

  it('the plan states the policy', () => {
    expect(bootRetryPolicy(undefined, 'tcg')).toMatch(/^1 \(default under TCG\) — .*silence/)
    expect(bootRetryPolicy(undefined, 'kvm', true)).toMatch(
      /^0 \(default under KVM, 1 if it falls back to TCG\)/
    )
    expect(bootRetryPolicy(0, 'tcg')).toMatch(/^0 \(never retried\)/)
    expect(bootRetryPolicy(2, 'kvm')).toMatch(/^2 — /)
    const plan = renderPlan({
      runner: '/r/bin/run-x-vm',
      system: 'x86_64-linux',
      stages: ['boot'],
      accel: 'tcg',
      bootRetries: 3,
      outDir: '/out',
      kvm: false
    })
    expect(plan).toMatch(/ {2}- boot retries: 3 — a boot-timeout by silence before userspace/)
  })
})

describe('parsing', () => {
  it('parseBootRetries takes a whole number from 0 to 3', () => {
    for (const n of BOOT_RETRIES) expect(parseBootRetries(String(n))).toBe(n)
    for (const bad of ['4', '-1', '1.5', '', 'one', '01x', '1e0']) {
      expect(() => parseBootRetries(bad)).toThrow(InputError)
      expect(() => parseBootRetries(bad)).toThrow(
        `--boot-retries: "${bad}" is not allowed; allowed values: 0, 1, 2, 3 (unset: 1 under TCG, 0 with KVM)`
      )
    }
  })

  it('--boot-retries', () => {
    const base = ['validate', '--runner', 'r', '--system', 'x86_64-linux', '--ssh-key', 'k']
    expect(parseArgs(base, '/w').bootRetries).toBeUndefined()
    expect(parseArgs([...base, '--boot-retries', '0'], '/w').bootRetries).toBe(0)
    expect(parseArgs([...base, '--boot-retries=2'], '/w').bootRetries).toBe(2)
    let err: unknown
    try {
      parseArgs([...base, '--boot-retries', '9'], '/w')
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(InputErrors)
    expect((err as Error).message).toMatch(
      /--boot-retries: "9" is not allowed; allowed values: 0, 1, 2, 3/
    )
  })

  it('the boot-retries input', () => {
    const env = { workspace: '/ws', host: 'x86_64-linux' as const }
    const values: Partial<Record<InputName, string>> = {
      'vm-runner': 'result/bin/run-nixos-vm-vm',
      'ssh-key': 'keys/id'
    }
    const read =
      (extra: Partial<Record<InputName, string>>) =>
      (name: InputName): string =>
        ({ ...values, ...extra })[name] ?? ''
    expect(parseInputs(read({}), env).bootRetries).toBeUndefined()
    expect(parseInputs(read({ 'boot-retries': ' 3 ' }), env).bootRetries).toBe(3)
    expect(() => parseInputs(read({ 'boot-retries': 'always' }), env)).toThrow(
      /input "boot-retries": "always" is not allowed; allowed values: 0, 1, 2, 3/
    )
  })
})

describe('what counts as userspace on the console', () => {
  it.each([
    '[    1.912345] Run /init as init process',
    'Run /sbin/init as init process',
    '<<< NixOS Stage 1 >>>',
    '<<< NixOS Stage 2 >>>',
    'Welcome to NixOS 24.11 (Vicuna)!',
    'Welcome to Debian GNU/Linux 12 (bookworm)!',
    '[    2.000000] systemd[1]: Detected virtualization kvm.',
    '[  OK  ] Started systemd-journald.service - Journal Service.',
    '[FAILED] Failed to start broken-demo.service - Broken demo.',
    '[ TIME ] Timed out waiting for device dev-vdb.device - /dev/vdb.'
  ])('%s', (line) => expect(isUserspaceLine(line)).toBe(true))

  it.each([
    '[    0.000000] Linux version 6.1.0-28-cloud-amd64',
    '[    0.412000] clocksource: Switched to clocksource hpet',
    'SeaBIOS (version 1.16.2-debian-1.16.2-1)',
    'Booting from ROM...',
    '[    1.0] Freeing unused kernel image (initmem) memory: 2000K',
    ''
  ])('not: %s', (line) => expect(isUserspaceLine(line)).toBe(false))

  it('the monitor notes the first such line, ANSI colours and split chunks included', () => {
    let now = 1000
    const m = new ConsoleMonitor(
      () => undefined,
      () => now
    )
    m.push(
      '[    0.000000] Linux version 6.1\r\n[    0.4] clocksource: Switched to clocksource hpet\n'
    )
    expect(m.userspaceAt).toBeUndefined()
    now = 2000
    m.push('\x1b[0m\r\nWelcome to \x1b[1mNix')
    expect(m.userspaceAt).toBeUndefined() // the line is still open
    now = 3000
    m.push('OS 24.11 (Vicuna)\x1b[0m!\r\n')
    expect(m.userspaceAt).toBe(3000)
    now = 4000
    m.push('[\x1b[0;32m  OK  \x1b[0m] Started foo.\n')
    expect(m.userspaceAt).toBe(3000)
  })
})

function retriedReport(passed: boolean): Report {
  const r = newReport({ system: 'x86_64-linux', startedAt: 0, configuration: 'my-host' })
  r.accelerator = 'tcg'
  r.conclusion = passed ? 'success' : 'failure'
  r.flaky = passed
  r.timings.bootMs = 11_000
  r.bootAttempts = [
    {
      attempt: 1,
      startedAtMs: 500,
      durationMs: 125_000,
      accelerator: 'tcg',
      userspaceSeen: false,
      failure: {
        kind: 'boot-timeout',
        message: 'no console output for 2m00s (silence limit)',
        excerpt: 'clocksource: Switched to clocksource hpet',
        reason: 'silence',
        silenceMs: 120_000,
        lastOutputAtMs: 3_100,
        lastLine: '[    0.4] clocksource: Switched to clocksource hpet'
      },
      consoleLog: 'console-attempt-1.log'
    },
    {
      attempt: 2,
      startedAtMs: 126_000,
      durationMs: 11_000,
      accelerator: 'tcg',
      userspaceSeen: true,
      failure: null,
      consoleLog: 'console.log'
    }
  ]
  if (!passed)
    r.failure = { stage: 'ssh', kind: 'ssh-unreachable', message: 'no answer', excerpt: '' }
  return r
}

describe('a retried run reads as such', () => {
  it('the one-line conclusion says flaky and why', () => {
    const line = conclusionLine(retriedReport(true)).replace(/\*\*/g, '')
    expect(line).toMatch(/^✅ VM validation passed .* booted in 11\.0s/)
    expect(line).toMatch(/flaky: boot retried after 2m00s of silence at 3\.1s, before userspace$/)
    expect(conclusionLine(retriedReport(false))).toMatch(
      /ssh-unreachable.* — boot retried after 2m00s of silence at 3\.1s, before userspace$/
    )
    const plain = newReport({ system: 'x86_64-linux', startedAt: 0 })
    plain.conclusion = 'success'
    expect(conclusionLine(plain)).not.toMatch(/retried|flaky/)
  })

  it('the summary says it in its first lines, with both attempts', () => {
    const lines = renderSummary(retriedReport(true)).split('\n')
    expect(lines[0]).toMatch(/^## ✅ .*\*\*flaky\*\*: boot retried after 2m00s of silence/)
    expect(lines[2]).toMatch(/^> ⚠️ \*\*Flaky leg\*\*: the boot was retried and then passed/)
    const attempts = lines.slice(3, 7).join('\n')
    expect(attempts).toMatch(
      /attempt 1 \(tcg\): boot-timeout — no console output for 2m00s from 3\.1s after its start, after “.*clocksource: Switched to clocksource hpet”, before userspace — console: `console-attempt-1\.log`/
    )
    expect(attempts).toMatch(/attempt 2 \(tcg\): booted — console: `console\.log`/)
    expect(renderSummary(retriedReport(false)).split('\n')[2]).toMatch(/^> ⚠️ The boot was retried/)
  })
})
