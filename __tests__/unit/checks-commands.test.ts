import { describe, expect, it } from '@jest/globals'
import { execFileSync } from 'node:child_process'
import { defaultChecks } from '../../src/checks/defaults.js'
import { trimOutput } from '../../src/checks/run.js'
import { STAGE_UNITS } from '../../src/checks/registry.js'
import { STAGES } from '../../src/checks/stages.js'
import {
  WaitTimeout,
  asUserCommand as asUser,
  describeExit,
  journalCommand
} from '../../src/ssh/guest.js'
import { Deadline } from '../../src/util/time.js'
import { FakeSsh, guestOf } from '../fixtures/guest.js'

/** Runs a guest command line with the host's /bin/sh: proves the quoting, not just its text. */
function sh(command: string): string {
  return execFileSync('/bin/sh', ['-c', command], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH, HOME: '/tmp' }
  })
}

describe('asUser', () => {
  it('runs as the SSH user in a login shell from its home', () => {
    expect(asUser('git --version', undefined, 'root')).toBe(
      `sh -lc 'cd "$HOME" 2>/dev/null || cd /\ngit --version'`
    )
    expect(asUser('id -un', 'root', 'root')).toBe(asUser('id -un', undefined, 'root'))
  })

  it('uses runuser as root, falling back to su, with the user and command quoted', () => {
    const c = asUser('echo hi', 'baleen', 'root')
    expect(c).toMatch(
      /^if command -v runuser >\/dev\/null 2>&1; then exec runuser -u baleen -- sh -lc '/
    )
    expect(c).toMatch(/else exec su -s \/bin\/sh baleen -c '/)
  })

  it('uses sudo -n when the SSH user is not root', () => {
    expect(asUser('id', 'baleen', 'deploy')).toBe(
      `sudo -n -H -u baleen -- sh -lc 'cd "$HOME" 2>/dev/null || cd /\nid'`
    )
  })

  it('survives quotes, $ and newlines in the command (executed)', () => {
    const cmd = `printf '%s|' "it's" '$HOME' "$(echo a b)"; echo\necho second`
    expect(sh(asUser(cmd, undefined, 'root'))).toBe(`it's|$HOME|a b|\nsecond\n`)
  })

  const root = process.getuid?.() === 0
  ;(root ? it : it.skip)('really switches user with runuser (host is root)', () => {
    let out: string
    try {
      out = sh(asUser(`id -un; echo "$HOME"; pwd; echo "it's"`, 'nobody', 'root'))
    } catch {
      return // no runuser/su usable on this host
    }
    const [who, , cwd, quoted] = out.trim().split('\n')
    expect(who).toBe('nobody')
    expect(cwd).toBe('/') // nobody's home does not exist: falls back to /
    expect(quoted).toBe("it's")
  })
})

describe('describeExit', () => {
  const base = {
    command: 'x',
    stdout: '',
    stderr: '',
    durationMs: 5,
    signal: undefined,
    timedOut: false
  }
  it('names how the command ended', () => {
    expect(describeExit({ ...base, code: 127 })).toBe('exit 127 (command not found)')
    expect(describeExit({ ...base, code: 1 })).toBe('exit 1')
    expect(describeExit({ ...base, code: null, timedOut: true, signal: 'timeout' }, 30_000)).toBe(
      'timed out after 30.0s'
    )
    expect(describeExit({ ...base, code: null, signal: 'KILL' })).toBe('killed by SIGKILL')
  })
})

describe('trimOutput', () => {
  it('keeps the end of a failure and the start of a success, marking the cut', () => {
    const text = Array.from({ length: 1000 }, (_, i) => `line ${i}`).join('\n')
    const tail = trimOutput(text, 100)
    expect(tail).toMatch(/^… \(\d+ characters cut\)\n/)
    expect(tail.endsWith('line 999')).toBe(true)
    expect(tail.length).toBeLessThanOrEqual(130)
    const head = trimOutput(text, 100, 'head')
    expect(head.startsWith('line 0\n')).toBe(true)
    expect(head).toMatch(/\n… \(\d+ characters cut\)$/)
    expect(trimOutput('short\n\n')).toBe('short')
  })
})

describe('defaultChecks', () => {
  const d = defaultChecks()
  it('names nobody in particular: boot, sshd, the hostname, generous budgets', () => {
    expect(d.source).toBeUndefined()
    expect(d.system).toBeDefined()
    expect(d.services).toEqual([{ unit: 'sshd.service', timeoutMs: 60_000 }])
    expect(d.docker).toBeUndefined()
    expect(d.users).toEqual([])
    expect(d.homeManager).toEqual([])
    expect(d.packages).toEqual([])
    expect(d.commands).toEqual([
      { name: 'hostname', run: 'hostname', expect: '\\S', timeoutMs: 60_000 }
    ])
    expect(d.network).toBeUndefined()
    expect(d.performance?.bootTimeMs).toBe(10 * 60_000)
    expect(d.e2e).toEqual([])
    // No user, package or address of this repository's VM (users/baleen) in the defaults.
    expect(JSON.stringify(d)).not.toMatch(/baleen|vim|gcc|cache\.nixos\.org/)
  })

  it('has every expectation compile and every stage a section', () => {
    for (const p of [...d.packages, ...d.commands])
      expect(() => new RegExp(p.expect ?? '', 'm')).not.toThrow()
    // boot and ssh, then the registry's check stages in its order (these in this order, at least).
    expect(STAGES).toEqual(['boot', 'ssh', ...STAGE_UNITS.map((u) => u.name)])
    const known = [
      'system',
      'services',
      'users',
      'home-manager',
      'packages',
      'network',
      'performance',
      'e2e'
    ]
    expect(STAGES.filter((s) => known.includes(s))).toEqual(known)
    for (const u of STAGE_UNITS) expect(Object.keys(u.sections).length).toBeGreaterThan(0)
  })
})

describe('Guest verbs', () => {
  it('run sends the command as is; asUser wraps it in the login shell of the user', async () => {
    const ssh = new FakeSsh(() => ({ stdout: 'ok\n' }))
    const g = guestOf(ssh)
    expect((await g.run('id', { timeoutMs: 1000 })).stdout).toBe('ok\n')
    await g.asUser('baleen').run('id', { timeoutMs: 1000 })
    expect(ssh.calls).toEqual(['id', asUser('id', 'baleen', 'root')])
  })

  it('succeed returns stdout, or throws with how the command ended and its output', async () => {
    const g = guestOf(
      new FakeSsh((c) => (c === 'true' ? { stdout: 'yes' } : { code: 2, stderr: 'no such file' }))
    )
    await expect(g.succeed('true', { timeoutMs: 1000 })).resolves.toBe('yes')
    await expect(g.succeed('ls /x', { timeoutMs: 1000 })).rejects.toThrow(
      'ls /x: exit 2\nno such file'
    )
  })

  it('a cancelled run answers without asking the guest', async () => {
    const ac = new AbortController()
    ac.abort()
    const ssh = new FakeSsh()
    const r = await guestOf(ssh, { signal: ac.signal }).run('id', { timeoutMs: 1000 })
    expect(r).toMatchObject({ code: null, signal: 'cancelled' })
    expect(ssh.calls).toEqual([])
  })

  it('waitUntil polls until done, else throws with the last attempt', async () => {
    const g = guestOf()
    let n = 0
    await expect(
      g.waitUntil(async () => ({ done: ++n === 3, value: n }), new Deadline(5000), 1)
    ).resolves.toBe(3)
    const err = await g
      .waitUntil(
        async () => ({ done: false, value: 'x', output: 'still activating' }),
        new Deadline(30),
        5
      )
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(WaitTimeout)
    expect((err as WaitTimeout<string>).last).toBe('x')
    expect((err as Error).message).toContain('still activating')
  })

  it('journal reads a unit, a user unit, or the whole boot', () => {
    expect(journalCommand({ unit: 'a.service', user: 'bob', lines: 20 })).toBe(
      'journalctl -b --user-unit a.service _UID=$(id -u bob) -n 20 --no-pager -o short-monotonic 2>&1'
    )
    expect(journalCommand({ tail: 20000 })).toBe(
      'journalctl -b --no-pager -o short-monotonic 2>&1 | tail -n 20000'
    )
    expect(journalCommand({ unit: 'a b', tail: 500, monotonic: false })).toBe(
      `journalctl -b --no-pager -u 'a b' 2>&1 | tail -n 500`
    )
  })

  it('systemctlShow asks system units at once and reads their blocks', async () => {
    const ssh = new FakeSsh(() => ({
      stdout: 'ActiveState=active\n\nActiveState=failed\nSystemState=degraded\n'
    }))
    const { states } = await guestOf(ssh).systemctlShow(
      ['a.service', 'b.service'],
      ['ActiveState'],
      {
        timeoutMs: 1000
      }
    )
    expect(ssh.calls[0]).toMatch(/^systemctl show -p ActiveState a\.service b\.service; /)
    expect(states.get('b.service')).toEqual({ ActiveState: 'failed', SystemState: 'degraded' })
  })
})
