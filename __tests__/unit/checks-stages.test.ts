/**
 * The stages against a scripted SSH session: what each one runs, how it waits, what it reports.
 * The real guest is in __tests__/integration/checks.test.ts.
 */
import { describe, expect, it } from '@jest/globals'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { defaultChecks } from '../../src/checks/defaults.js'
import { e2eStage } from '../../src/checks/e2e.js'
import { EVIDENCE_COMMAND, performanceStage } from '../../src/checks/performance.js'
import { runChecks, type CheckSpec, type RunContext } from '../../src/checks/run.js'
import { parseChecks } from '../../src/checks/schema.js'
import { servicesStage } from '../../src/checks/services.js'
import { systemStage } from '../../src/checks/system.js'
import { CRITICAL_CHAIN_HEADER } from '../../src/checks/unit-times.js'
import { usersStage } from '../../src/checks/users.js'
import { batchOutcome, packagesStage, parseBatch } from '../../src/checks/packages.js'
import type { Report } from '../../src/report/model.js'
import type { ExecResult, SshSession } from '../../src/ssh/client.js'
import { Guest } from '../../src/ssh/guest.js'
import { ValidationFailure } from '../../src/util/errors.js'
import { Deadline, sleep } from '../../src/util/time.js'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')

type Reply = Partial<Pick<ExecResult, 'code' | 'stdout' | 'stderr'>> & { delayMs?: number }

/** An SshSession double: replies by command, records calls and concurrency. */
class FakeSsh {
  closed = false
  calls: string[] = []
  puts: { local: string; remote: string; mode: number }[] = []
  inFlight = 0
  maxInFlight = 0
  constructor(private readonly reply: (command: string, n: number) => Reply) {}

  async exec(command: string, timeoutMs: number): Promise<ExecResult> {
    this.calls.push(command)
    const r = this.reply(command, this.calls.filter((c) => c === command).length)
    this.inFlight++
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight)
    const started = Date.now()
    try {
      const delay = r.delayMs ?? 1
      if (delay > timeoutMs) {
        await sleep(timeoutMs)
        return {
          command,
          code: null,
          signal: 'timeout',
          stdout: '',
          stderr: '',
          durationMs: timeoutMs,
          timedOut: true
        }
      }
      await sleep(delay)
      return {
        command,
        code: r.code ?? 0,
        signal: undefined,
        stdout: r.stdout ?? '',
        stderr: r.stderr ?? '',
        durationMs: Date.now() - started,
        timedOut: false
      }
    } finally {
      this.inFlight--
    }
  }

  async putFile(local: string, remote: string, mode = 0o755): Promise<void> {
    this.puts.push({ local, remote, mode })
  }
}

function ctx(
  ssh: FakeSsh,
  o: Partial<RunContext> = {}
): RunContext & { report: Report; outDir: string } {
  const signal = o.signal ?? new AbortController().signal
  return {
    guest: new Guest(ssh as unknown as SshSession, signal, 'root'),
    signal,
    deadline: new Deadline(60_000),
    report: { timings: { totalMs: 0, sshReadyMs: 21_000 }, stages: [] } as unknown as Report,
    outDir: mkdtempSync(join(tmpdir(), 'nvv-checks-out-')),
    ...o
  }
}

const spec = (name: string, ms: number, status: 'passed' | 'failed' = 'passed'): CheckSpec => ({
  name,
  timeoutMs: 10_000,
  run: async () => {
    await sleep(ms)
    return { status, output: `${name} done` }
  }
})

describe('runChecks', () => {
  it('runs at most 4 at once over the one connection and keeps declaration order', async () => {
    const ssh = new FakeSsh(() => ({ delayMs: 30 }))
    const specs: CheckSpec[] = Array.from({ length: 10 }, (_, i) => ({
      name: `c${i}`,
      timeoutMs: 5000,
      run: async (env) => {
        const r = await env.guest.run(`echo ${i}`, { timeoutMs: 1000 })
        return { status: 'passed', output: r.command }
      }
    }))
    const results = await runChecks(ctx(ssh), specs)
    expect(results.map((r) => r.name)).toEqual(specs.map((s) => s.name))
    // Concurrency is proven by what was in flight, not by a clock (a loaded machine is slow).
    expect(ssh.maxInFlight).toBe(4)
  })

  it('turns a thrown error into a failed check and annotates from the spec', async () => {
    const [r] = await runChecks(ctx(new FakeSsh(() => ({}))), [
      {
        name: 'boom',
        timeoutMs: 100,
        file: 'checks.yml',
        line: 7,
        run: async () => Promise.reject(new Error('no sftp'))
      }
    ])
    expect(r).toMatchObject({
      name: 'boom',
      status: 'failed',
      output: 'the check could not run: no sftp',
      file: 'checks.yml',
      line: 7
    })
  })

  it('bounds each check by its own timeout and by the stage budget', async () => {
    const ssh = new FakeSsh(() => ({ delayMs: 5000 }))
    const results = await runChecks(ctx(ssh), [
      {
        name: 'slow',
        timeoutMs: 50,
        run: async (env) => ({ status: 'failed', output: `remaining ${env.deadline.remaining()}` })
      }
    ])
    expect(Number(results[0].output.split(' ')[1])).toBeLessThanOrEqual(50)
    const err = await runChecks(
      ctx(ssh, { deadline: new Deadline(40) }),
      [spec('a', 100, 'failed'), spec('b', 1)],
      1
    ).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ValidationFailure)
    const f = err as ValidationFailure
    expect(f.kind).toBe('stage-timeout')
    expect(f.details.check).toBe('a')
    expect(
      (f.details.results as { name: string; output: string }[]).map((r) => [r.name, r.output])
    ).toEqual([
      ['a', 'a done'],
      ['b', "not run: the stage's time budget ran out before this check started"]
    ])
  })

  it('throws with the finished results when the run is cancelled', async () => {
    const ac = new AbortController()
    setTimeout(() => ac.abort(), 20)
    const err = (await runChecks(
      ctx(new FakeSsh(() => ({})), { signal: ac.signal }),
      [spec('a', 50), spec('b', 50)],
      1
    ).catch((e: unknown) => e)) as ValidationFailure
    expect(err.kind).toBe('tool-error')
    expect((err.details.results as { status: string }[]).map((r) => r.status)).toEqual([
      'passed',
      'skipped'
    ])
  })
})

describe('system stage', () => {
  it('degraded: fails naming every failed unit with its last journal lines', async () => {
    const ssh = new FakeSsh((c) => {
      if (c.includes('is-system-running --wait')) return { code: 1, stdout: 'degraded\n' }
      if (c.includes('list-units --failed'))
        return {
          stdout:
            'broken-demo.service loaded failed failed Broken demo\nother.service loaded failed failed Other\n'
        }
      if (c.includes('-u broken-demo.service'))
        return {
          stdout: '[    9.1] nixos-vm sh[301]: broken-demo: cannot open /etc/broken-demo.conf\n'
        }
      if (c.includes('-u other.service')) return { stdout: '[   10.0] other: exit 3\n' }
      return { code: 1 }
    })
    const results = await systemStage(
      ctx(ssh, { deadline: new Deadline(600_000) }),
      defaultChecks()
    )
    expect(results.map((r) => [r.name, r.status, r.unit])).toEqual([
      ['system state', 'failed', 'broken-demo.service'],
      ['failed unit broken-demo.service', 'failed', 'broken-demo.service'],
      ['failed unit other.service', 'failed', 'other.service']
    ])
    const out = results[0].output
    expect(out).toMatch(/^system state: degraded/)
    expect(out).toContain('failed units (2): broken-demo.service, other.service')
    expect(out).toContain('broken-demo: cannot open /etc/broken-demo.conf')
    expect(out).toContain('other: exit 3')
    // The default 5m, bounded on the guest too; with a stage budget below it, the budget.
    expect(ssh.calls[0]).toMatch(/timeout 300 systemctl is-system-running --wait/)
  })

  it('running passes with one check', async () => {
    const results = await systemStage(
      ctx(new FakeSsh(() => ({ stdout: 'running\n' }))),
      defaultChecks()
    )
    expect(results).toHaveLength(1)
    expect(results[0]).toMatchObject({ name: 'system state', status: 'passed' })
  })

  it('still starting at the deadline: fails with the pending jobs', async () => {
    const checks = parseChecks('system: { timeout: 2s }\n', { label: 'c.yml', root: ROOT })
    const ssh = new FakeSsh((c) => {
      if (c.includes('--wait')) return { code: 124, stdout: 'starting\n' }
      if (c.includes('list-jobs'))
        return { stdout: 'JOB UNIT TYPE STATE\n12 slow.service start running\n' }
      return { stdout: '' }
    })
    const [r] = await systemStage(ctx(ssh), checks)
    expect(r.status).toBe('failed')
    expect(r.output).toMatch(/^system state: still "starting" after 2\.0s/)
    expect(r.output).toContain('12 slow.service start running')
    expect(r).toMatchObject({ file: 'c.yml', line: 1 })
  })
})

describe('services stage', () => {
  it('asks all units at once, polls the one still activating, then docker as each user', async () => {
    const block = (active: string): string =>
      `LoadState=loaded\nActiveState=${active}\nSubState=running\nResult=success\n`
    const ssh = new FakeSsh((c, n) => {
      if (c.includes('systemctl show') && c.includes('sshd.service docker.service'))
        return { stdout: `${block('active')}\n${block('activating')}SystemState=starting\n` }
      if (c.includes('systemctl show') && c.includes('docker.service'))
        return { stdout: `${block(n < 2 ? 'activating' : 'active')}SystemState=running\n` }
      if (c.includes('--unix-socket'))
        return {
          stdout: '{"Version":"20.10.24","ApiVersion":"1.41"}\n\nsocket=/var/run/docker.sock\n'
        }
      return { code: 1 }
    })
    const results = await servicesStage(ctx(ssh), defaultChecks())
    expect(results.map((r) => [r.name, r.status])).toEqual([
      ['sshd.service', 'passed'],
      ['docker.service', 'passed'],
      ['docker daemon answers', 'passed'],
      ['docker as baleen (no sudo)', 'passed']
    ])
    const shows = ssh.calls.filter((c) => c.includes('systemctl show'))
    // One command for both units, then docker.service alone until it is active.
    expect(shows).toHaveLength(3)
    expect(shows.filter((c) => c.includes('sshd.service'))).toHaveLength(1)
    // baleen reached the daemon: that proves it answers, no second question.
    expect(ssh.calls.filter((c) => c.includes('--unix-socket'))).toHaveLength(1)
    expect(results[2].output).toBe(
      'server 20.10.24, API 1.41 (unix:///var/run/docker.sock) (as baleen)'
    )
  })

  it('asks the daemon as the SSH user when a listed user cannot reach it', async () => {
    const ssh = new FakeSsh((c) => {
      if (c.includes('--unix-socket') && c.includes('runuser'))
        return {
          code: 1,
          stderr: 'permission denied: baleen cannot open /var/run/docker.sock (root:docker 660)'
        }
      if (c.includes('--unix-socket')) return { stdout: 'server 20.10.24, API 1.41 (docker CLI)\n' }
      return { code: 1 }
    })
    const checks = parseChecks('docker: { users: [baleen] }\n', { label: 'c.yml', root: ROOT })
    const results = await servicesStage(ctx(ssh), checks)
    expect(results.map((r) => [r.name, r.status])).toEqual([
      ['docker daemon answers', 'passed'],
      ['docker as baleen (no sudo)', 'failed']
    ])
    expect(results[0].output).toBe('server 20.10.24, API 1.41 (docker CLI)')
    expect(results[1].output).toMatch(
      /^docker daemon as baleen: exit 1\n[\s\S]*is baleen in the docker group\?/
    )
    expect(ssh.calls.filter((c) => c.includes('--unix-socket'))).toHaveLength(2)
  })

  it('a failed unit fails with its state and journal, naming the unit', async () => {
    const ssh = new FakeSsh((c) => {
      if (c.includes('systemctl show'))
        return {
          stdout:
            'LoadState=loaded\nActiveState=failed\nSubState=failed\nResult=exit-code\nSystemState=degraded\n'
        }
      if (c.startsWith('journalctl'))
        return { stdout: 'dockerd: failed to start daemon: error initializing graphdriver\n' }
      if (c.includes('--unix-socket'))
        return {
          code: 1,
          stderr: 'permission denied: baleen cannot open /var/run/docker.sock (root:docker 660)'
        }
      return { code: 1 }
    })
    const results = await servicesStage(ctx(ssh), defaultChecks())
    const docker = results.find((r) => r.name === 'docker.service')
    expect(docker).toMatchObject({ status: 'failed', unit: 'docker.service' })
    expect(docker?.output).toMatch(
      /^docker\.service: failed \(failed\), load loaded, result exit-code\n/
    )
    expect(docker?.output).toContain('error initializing graphdriver')
    expect(results.find((r) => r.name === 'docker as baleen (no sudo)')?.output).toMatch(
      /baleen cannot reach the Docker socket without sudo/
    )
  })
})

describe('users and packages stages', () => {
  it('defaults explain themselves when the guest has no baleen', async () => {
    const ssh = new FakeSsh(() => ({ code: 2, stderr: 'no such user: baleen' }))
    const [r] = await usersStage(ctx(ssh), defaultChecks())
    expect(r.status).toBe('failed')
    expect(r.output).toMatch(
      /the built-in default checks assume the user baleen; set checks to a file/
    )
  })

  it('a missing package fails with the command, exit status and stderr', async () => {
    const checks = parseChecks(
      'packages:\n  - { name: neovim, run: "nvim --version", expect: "^NVIM v", user: baleen }\n',
      { label: 'c.yml', root: ROOT }
    )
    const ssh = new FakeSsh(() => ({ code: 127, stderr: 'sh: 2: nvim: not found\n' }))
    const [r] = await packagesStage(ctx(ssh), checks)
    expect(r).toMatchObject({ name: 'neovim', status: 'failed', file: 'c.yml', line: 2 })
    expect(r.output).toBe(
      '$ nvim --version   (as baleen)\nexit 127 (command not found)\nsh: 2: nvim: not found'
    )
  })
})

describe('packages stage: one batch per user', () => {
  it("runs a user's commands in one login shell and judges each from its part", async () => {
    const checks = parseChecks(
      [
        'packages:',
        '  - { name: git, run: "git --version", expect: "^git version", user: baleen }',
        '  - { name: neovim, run: "nvim --version", user: baleen, timeout: 30s }',
        '  - { name: make, run: "make --version", user: baleen }',
        '  - { name: uname, run: "uname -s" }',
        ''
      ].join('\n'),
      { label: 'c.yml', root: ROOT }
    )
    const ssh = new FakeSsh((c) => {
      const mark = /echo "(@@nvv-[0-9a-f]{12}@@) 0 /.exec(c)?.[1]
      // baleen's batch ends after nvim (as a shell killed mid-way would): make has no part.
      if (mark !== undefined)
        return {
          stdout: `git version 2.39.5\n\n${mark} 0 0 1000000000 1250000000\nsh: 1: nvim: not found\n\n${mark} 1 127 1300000000 1400000000\n`
        }
      return { stdout: 'Linux\n' }
    })
    const results = await packagesStage(ctx(ssh), checks)
    expect(results.map((r) => [r.name, r.status, r.durationMs])).toEqual([
      ['git', 'passed', 250],
      ['neovim', 'failed', 100],
      ['make', 'failed', expect.any(Number)],
      ['uname', 'passed', expect.any(Number)]
    ])
    // One command for baleen's three, one for the SSH user's own.
    expect(ssh.calls).toHaveLength(2)
    const batch = ssh.calls.find((c) => c.includes('runuser -u baleen')) ?? ''
    expect(batch).toContain('${nvv_to:+$nvv_to 30} sh -c')
    expect(batch).toMatch(/nvim --version'\\'' <\/dev\/null 2>&1; nvv_rc=\$\?/)
    expect(results[0].output).toBe('$ git --version   (as baleen)\ngit version 2.39.5')
    expect(results[1].output).toBe(
      '$ nvim --version   (as baleen)\nexit 127 (command not found)\nsh: 1: nvim: not found'
    )
    expect(results[2].output).toMatch(
      /^\$ make --version {3}\(as baleen\)\nthe commands' shell ended before this one \(exit 0\)/
    )
    expect(results[3].output).toBe('$ uname -s\nLinux')
  })

  it('a command past its timeout is told apart from one that failed', () => {
    const spec = { name: 'slow', run: 'sleep 99', timeoutMs: 2000 }
    const batch: ExecResult = {
      command: '',
      code: 0,
      stdout: '',
      stderr: '',
      durationMs: 2100,
      timedOut: false,
      signal: undefined
    }
    expect(batchOutcome(spec, { code: 124, output: '', durationMs: 2050 }, batch)).toEqual({
      status: 'failed',
      output: '$ sleep 99\ntimed out after 2.0s\n',
      durationMs: 2050
    })
    // Without date's %N (busybox) the marker has no times: the check keeps the awaited time.
    expect(parseBatch('x\n\n@@m@@ 0 0 %N %N\n', '@@m@@', 1)).toEqual([{ code: 0, output: 'x' }])
  })
})

/** One unit's block of `systemctl show`, as the performance stage's dump has it. */
const unit = (id: string, after: string, activating: number, activated: number): string =>
  `Id=${id}\nAfter=${after}\nInactiveExitTimestampMonotonic=${activating}\nActiveEnterTimestampMonotonic=${activated}\n`

describe('performance stage', () => {
  it('retries while the boot is not finished, records report.boot, judges budgets', async () => {
    const checks = parseChecks(
      'performance:\n  bootTime: 10s\n  kernel: 30s\n  memoryUsedMiB: 1500\n  timeout: 20s\n',
      { label: 'c.yml', root: ROOT }
    )
    const finished = 'Startup finished in 3.094s (kernel) + 32.116s (userspace) = 35.211s\n'
    const notFinished =
      'Bootup is not yet finished (org.freedesktop.systemd1.Manager.FinishTimestampMonotonic=0).\nPlease try again later.\n'
    const dump = [
      'graphical.target',
      'UserspaceTimestampMonotonic=1000000',
      'FinishTimestampMonotonic=33000000',
      '',
      unit('graphical.target', 'multi-user.target', 32_708_000, 32_708_000),
      unit('multi-user.target', 'docker.service ssh.service', 32_702_000, 32_702_000),
      unit('docker.service', '', 17_000_000, 31_912_000),
      unit('ssh.service', '', 5_000_000, 7_052_000),
      '@@nvv-meminfo@@',
      'MemTotal: 995352 kB\nMemAvailable: 744888 kB\n'
    ].join('\n')
    const ssh = new FakeSsh((c, n) => {
      // Asked before the end of the boot: the phases are not there yet, so it polls
      // systemd-analyze time alone, then asks for everything again.
      if (c === EVIDENCE_COMMAND)
        return {
          stdout:
            n < 2 ? `${notFinished}@@nvv-units@@ 1\n${dump}` : `${finished}@@nvv-units@@ 0\n${dump}`
        }
      if (c === 'systemd-analyze time 2>&1')
        return n < 2 ? { code: 1, stdout: notFinished } : { stdout: finished }
      return { code: 1 }
    })
    const c = ctx(ssh)
    const results = await performanceStage(c, checks)
    expect(ssh.calls).toEqual([
      EVIDENCE_COMMAND,
      'systemd-analyze time 2>&1',
      'systemd-analyze time 2>&1',
      EVIDENCE_COMMAND
    ])
    expect(c.report.boot).toEqual({
      kernelMs: 3094,
      userspaceMs: 32_116,
      totalMs: 35_211,
      blame: [
        { unit: 'docker.service', ms: 14_912 },
        { unit: 'ssh.service', ms: 2052 }
      ],
      criticalChain: `${CRITICAL_CHAIN_HEADER}\ngraphical.target @31.708s\n└─multi-user.target @31.702s\n  └─docker.service @16s +14.912s`,
      memoryUsedMiB: 245
    })
    const failed = results.filter((r) => r.status === 'failed')
    expect(failed).toEqual([
      {
        name: 'boot time ≤ 10.0s',
        status: 'failed',
        durationMs: 0,
        output: '35.2s exceeds the budget of 10.0s (by 25.2s)',
        file: 'c.yml',
        line: 2
      }
    ])
    expect(results.find((r) => r.name.startsWith('memory used'))).toMatchObject({
      status: 'passed',
      line: 4
    })
  })
})

describe('performance stage after the boot', () => {
  it('asks one command when the boot has ended; a missing systemd-analyze fails with its exit', async () => {
    const checks = parseChecks('performance: { bootTime: 1m }\n', { label: 'c.yml', root: ROOT })
    const ssh = new FakeSsh(() => ({
      stdout:
        'sh: 1: systemd-analyze: not found\n@@nvv-units@@ 127\ngraphical.target\n@@nvv-meminfo@@\nMemTotal: 995352 kB\nMemAvailable: 744888 kB\n'
    }))
    const c = ctx(ssh)
    const results = await performanceStage(c, checks)
    expect(ssh.calls).toEqual([EVIDENCE_COMMAND])
    expect(results.find((r) => r.name === 'systemd-analyze time')).toMatchObject({
      status: 'failed',
      output: expect.stringMatching(/^systemd-analyze time: exit 127 \(command not found\)\n/)
    })
    expect(c.report.boot?.memoryUsedMiB).toBe(245)
  })
})

describe('e2e stage', () => {
  it('copies the script to a fresh temp dir, runs it as the user, keeps the log, cleans up', async () => {
    const checks = parseChecks(
      'e2e:\n  - { script: tests/fixtures/checks/e2e-fail.sh, user: baleen, timeout: 1m }\n',
      { label: 'c.yml', root: ROOT, checkScripts: true }
    )
    const ssh = new FakeSsh((c) => {
      if (c.includes('mktemp -d')) return { stdout: '/tmp/nvv-e2e.Ab12\n' }
      if (c.includes('e2e-fail.sh'))
        return {
          code: 127,
          stdout:
            '==> e2e-fail: step 1 ok (as baleen)\n/tmp/nvv-e2e.Ab12/1/e2e-fail.sh: 7: no-such-tool: not found\n'
        }
      return {}
    })
    const c = ctx(ssh)
    const [r] = await e2eStage(c, checks)
    expect(ssh.calls[0]).toMatch(/mkdir "\$d\/1" && chmod 755 "\$d" "\$d\/1"/)
    expect(ssh.puts).toEqual([
      {
        local: join(ROOT, 'tests/fixtures/checks/e2e-fail.sh'),
        remote: '/tmp/nvv-e2e.Ab12/1/e2e-fail.sh',
        mode: 0o755
      }
    ])
    // Run and clean-up are one command; the script's exit status is its exit status.
    expect(ssh.calls).toHaveLength(2)
    expect(ssh.calls[1]).toMatch(
      /^\(if command -v runuser [\s\S]*runuser -u baleen -- sh -lc [\s\S]*exec timeout -k 5 \d+ \/tmp\/nvv-e2e\.Ab12\/1\/e2e-fail\.sh 2>&1[\s\S]*\); rc=\$\?; rm -rf \/tmp\/nvv-e2e\.Ab12\/1; rmdir \/tmp\/nvv-e2e\.Ab12 2>\/dev\/null; exit \$rc$/
    )
    expect(r).toMatchObject({
      name: 'tests/fixtures/checks/e2e-fail.sh (as baleen)',
      status: 'failed',
      file: 'tests/fixtures/checks/e2e-fail.sh',
      line: 7
    })
    expect(r.output).toMatch(
      /^tests\/fixtures\/checks\/e2e-fail\.sh as baleen: exit 127 \(command not found\)\n==> e2e-fail: step 1 ok/
    )
    expect(
      readFileSync(join(c.outDir, 'e2e-tests_fixtures_checks_e2e-fail.sh.log'), 'utf8')
    ).toContain('no-such-tool: not found')
  })
})
