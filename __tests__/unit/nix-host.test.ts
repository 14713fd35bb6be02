import { describe, expect, it } from '@jest/globals'
import {
  binfmtRegistration,
  ensureEmulation,
  entryMatches,
  parseBinfmtEntry,
  planEmulation,
  type BinfmtFacts
} from '../../src/nix/binfmt.js'
import type { Command, ExecResult, Executor } from '../../src/nix/exec.js'
import { KVM_RULE_PATH, KVM_UDEV_RULE, ensureKvmAccess, planKvmAccess } from '../../src/nix/kvm.js'
import { silentLogger } from '../../src/util/log.js'
import { stepArgv, stepInput } from '../support/steps.js'

/** /proc/sys/fs/binfmt_misc/qemu-aarch64 on Debian 12 with qemu-user-static (read on this machine). */
const DEBIAN_ENTRY = `enabled
interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
flags: PF
offset 0
magic 7f454c460201010000000000000000000200b700
mask ffffffffffffff00fffffffffffffffffeffffff
`

function recorder(): Executor & { ran: Command[] } {
  const ran: Command[] = []
  return {
    ran,
    async run(cmd): Promise<ExecResult> {
      ran.push(cmd)
      return { code: 0, signal: null, stdout: '', stderr: '', durationMs: 1 }
    }
  }
}

describe('binfmt entries', () => {
  it('parses what the kernel prints', () => {
    const e = parseBinfmtEntry('qemu-aarch64', DEBIAN_ENTRY)
    expect(e).toEqual({
      name: 'qemu-aarch64',
      enabled: true,
      interpreter: '/usr/libexec/qemu-binfmt/aarch64-binfmt-P',
      flags: 'PF',
      magic: '7f454c460201010000000000000000000200b700',
      mask: 'ffffffffffffff00fffffffffffffffffeffffff'
    })
    expect(entryMatches(e, 'aarch64-linux')).toBe(true)
    expect(entryMatches(e, 'x86_64-linux')).toBe(false)
    expect(parseBinfmtEntry('x', DEBIAN_ENTRY.replace('enabled', 'disabled')).enabled).toBe(false)
  })

  it('registers the standard aarch64 magic and mask with flag F', () => {
    expect(binfmtRegistration('aarch64-linux', '/usr/bin/qemu-aarch64-static')).toBe(
      ':nixos-vm-validate-aarch64:M::' +
        '\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:' +
        '\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:' +
        '/usr/bin/qemu-aarch64-static:F'
    )
  })
})

describe('planEmulation', () => {
  const none: BinfmtFacts = { mounted: true, entries: [], interpreters: [] }

  it('native: nothing to do, no settings (ARM runner building aarch64, x86 runner building x86_64)', () => {
    for (const s of ['aarch64-linux', 'x86_64-linux'] as const) {
      const p = planEmulation(s, s, none, 1001)
      expect(p).toMatchObject({ state: 'native', commands: [], settings: [] })
    }
  })

  it('reuses an enabled entry with F and passes its interpreter to the sandbox', () => {
    const p = planEmulation(
      'aarch64-linux',
      'x86_64-linux',
      {
        mounted: true,
        entries: [parseBinfmtEntry('qemu-aarch64', DEBIAN_ENTRY)],
        interpreters: []
      },
      1001
    )
    expect(p.state).toBe('ready')
    expect(p.commands).toEqual([])
    expect(p.settings).toEqual([
      ['extra-platforms', 'aarch64-linux i686-linux'],
      ['extra-sandbox-paths', '/usr/libexec/qemu-binfmt/aarch64-binfmt-P']
    ])
  })

  it('on a bare runner: mount binfmt_misc, install qemu-user-static, register with F (through sudo)', () => {
    const p = planEmulation(
      'aarch64-linux',
      'x86_64-linux',
      { mounted: false, entries: [], interpreters: [] },
      1001
    )
    expect(p.state).toBe('register')
    expect(p.commands.map(stepArgv)).toEqual([
      ['sudo', '-n', 'mount', '-t', 'binfmt_misc', 'binfmt_misc', '/proc/sys/fs/binfmt_misc'],
      ['sudo', '-n', 'apt-get', 'update', '-q'],
      [
        'sudo',
        '-n',
        'apt-get',
        'install',
        '-y',
        '-q',
        '--no-install-recommends',
        'qemu-user-static'
      ],
      ['sudo', '-n', 'tee', '/proc/sys/fs/binfmt_misc/register']
    ])
    expect(stepInput(p.commands[3])).toBe(
      binfmtRegistration('aarch64-linux', '/usr/bin/qemu-aarch64-static')
    )
    expect(p.settings).toEqual([
      ['extra-platforms', 'aarch64-linux i686-linux'],
      ['extra-sandbox-paths', '/usr/bin/qemu-aarch64-static']
    ])
  })

  it('an entry without F (not usable in the sandbox) is shadowed by ours; a stale one of ours is removed first', () => {
    const noF = parseBinfmtEntry('qemu-aarch64', DEBIAN_ENTRY.replace('flags: PF', 'flags: P'))
    const stale = parseBinfmtEntry(
      'nixos-vm-validate-aarch64',
      DEBIAN_ENTRY.replace('enabled', 'disabled')
    )
    const p = planEmulation(
      'aarch64-linux',
      'x86_64-linux',
      { mounted: true, entries: [noF, stale], interpreters: ['/usr/bin/qemu-aarch64-static'] },
      0
    )
    expect(p.reason).toContain('lack an enabled F flag')
    expect(p.commands.map((c) => [stepArgv(c), stepInput(c)])).toEqual([
      [['tee', '/proc/sys/fs/binfmt_misc/nixos-vm-validate-aarch64'], '-1'],
      [
        ['tee', '/proc/sys/fs/binfmt_misc/register'],
        binfmtRegistration('aarch64-linux', '/usr/bin/qemu-aarch64-static')
      ]
    ])
  })

  it('ensureEmulation registers and checks the flag', async () => {
    const plan = planEmulation(
      'aarch64-linux',
      'x86_64-linux',
      { mounted: true, entries: [], interpreters: ['/usr/bin/qemu-aarch64-static'] },
      0
    )
    const exec = recorder()
    const read = async (): Promise<string> =>
      DEBIAN_ENTRY.replace(
        '/usr/libexec/qemu-binfmt/aarch64-binfmt-P',
        '/usr/bin/qemu-aarch64-static'
      ).replace('PF', 'F')
    const done = await ensureEmulation(plan, { exec, log: silentLogger, readEntry: read })
    expect(done.state).toBe('ready')
    expect(exec.ran).toHaveLength(1)
    await expect(
      ensureEmulation(plan, { exec, log: silentLogger, readEntry: async () => undefined })
    ).rejects.toThrow(/not enabled with flag F/)
  })
})

describe('KVM access', () => {
  const base = { act: false, udev: true, uid: 1001 }

  it('touches nothing when /dev/kvm is absent or already read/writable', () => {
    expect(planKvmAccess({ ...base, kvm: 'absent' })).toMatchObject({
      state: 'absent',
      commands: []
    })
    expect(planKvmAccess({ ...base, kvm: 'rw' })).toMatchObject({ state: 'ok', commands: [] })
  })

  it('writes the udev rule and reloads it when access is denied (hosted x86_64 runner)', () => {
    const p = planKvmAccess({ ...base, kvm: 'no-access' })
    expect(p.state).toBe('fix')
    expect(p.commands.map(stepArgv)).toEqual([
      ['write', KVM_RULE_PATH, '0644', 'via sudo'],
      ['sudo', '-n', 'udevadm', 'control', '--reload-rules'],
      ['sudo', '-n', 'udevadm', 'trigger', '--name-match=kvm']
    ])
    expect(KVM_RULE_PATH).toBe('/etc/udev/rules.d/99-nixos-vm-validate-kvm.rules')
    expect(stepInput(p.commands[0])).toBe(
      'KERNEL=="kvm", GROUP="kvm", MODE="0666", OPTIONS+="static_node=kvm"\n'
    )
    expect(stepInput(p.commands[0])).toBe(KVM_UDEV_RULE + '\n')
  })

  it('skips udev under act (no udev in its containers) and without udev', () => {
    expect(planKvmAccess({ ...base, act: true, kvm: 'no-access' })).toMatchObject({
      state: 'skip',
      commands: []
    })
    expect(planKvmAccess({ ...base, udev: false, kvm: 'no-access' }).state).toBe('skip')
  })

  it('ensureKvmAccess re-checks access after the rule', async () => {
    const exec = recorder()
    const r = await ensureKvmAccess(
      { ...base, kvm: 'no-access' },
      { exec, log: silentLogger, device: '/nonexistent/kvm', settleMs: 50 }
    )
    expect(exec.ran).toHaveLength(3)
    expect(r).toMatchObject({ state: 'fix', accessible: false })
    const ok = await ensureKvmAccess(
      { ...base, kvm: 'rw' },
      { exec: recorder(), log: silentLogger }
    )
    expect(ok).toMatchObject({ state: 'ok', accessible: true })
  })
})
