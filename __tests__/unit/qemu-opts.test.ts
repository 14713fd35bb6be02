import { describe, expect, it } from '@jest/globals'
import { buildQemuOpts, buildRunnerEnv, tcgCpuOverride } from '../../src/vm/qemu-opts.js'
import { aarch64ProbeImage, probeArgs, x86ProbeImage } from '../../src/vm/accel.js'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  acceleratorFromCmdline,
  findRunner,
  isOurRunner,
  qemuBinaryFromRunner,
  runnerHostName
} from '../../src/vm/runner.js'

describe('buildQemuOpts', () => {
  const base = { qmpSocket: '/run/x/qmp.sock' }

  it('captures the serial console on stdout, opens QMP, forbids reboots and forces the accelerator', () => {
    const w = buildQemuOpts({ ...base, system: 'x86_64-linux', accel: 'tcg' })
    expect(w).toEqual([
      '-chardev',
      'stdio,id=nvv-console,signal=off',
      '-serial',
      'chardev:nvv-console',
      '-qmp',
      'unix:/run/x/qmp.sock,server=on,wait=off',
      '-display',
      'none',
      '-no-reboot',
      '-machine',
      'accel=tcg'
    ])
  })

  it('overrides -cpu max on aarch64 under TCG only', () => {
    expect(buildQemuOpts({ ...base, system: 'aarch64-linux', accel: 'tcg' }).slice(-2)).toEqual([
      '-cpu',
      'max,pauth=off'
    ])
    expect(buildQemuOpts({ ...base, system: 'aarch64-linux', accel: 'kvm' })).not.toContain('-cpu')
    expect(
      buildQemuOpts({ ...base, system: 'aarch64-linux', accel: 'tcg', cpu: 'max' }).slice(-2)
    ).toEqual(['-cpu', 'max'])
    expect(tcgCpuOverride('x86_64-linux')).toBeUndefined()
  })

  it('keeps the user’s own QEMU_OPTS first, so ours win', () => {
    const w = buildQemuOpts({
      ...base,
      system: 'x86_64-linux',
      accel: 'kvm',
      userOpts: ' -m 4096  -smp 4 '
    })
    expect(w.slice(0, 4)).toEqual(['-m', '4096', '-smp', '4'])
    expect(w.slice(-2)).toEqual(['-machine', 'accel=kvm'])
  })

  it('refuses words with whitespace (the runner word-splits QEMU_OPTS)', () => {
    expect(() =>
      buildQemuOpts({ qmpSocket: '/tmp/a b/qmp.sock', system: 'x86_64-linux', accel: 'tcg' })
    ).toThrow(/contains whitespace/)
  })
})

describe('buildRunnerEnv', () => {
  it('follows the runner contract and forwards SSH on loopback only', () => {
    const env = buildRunnerEnv({
      diskImage: '/w/disk.qcow2',
      tmpDir: '/w/tmp',
      hostSshPort: 40000,
      guestSshPort: 22,
      qemuOpts: ['-no-reboot', '-machine', 'accel=tcg'],
      userNetOpts: 'hostfwd=tcp::8080-:80'
    })
    expect(env).toEqual({
      NIX_DISK_IMAGE: '/w/disk.qcow2',
      TMPDIR: '/w/tmp',
      USE_TMPDIR: '1',
      QEMU_NET_OPTS: 'hostfwd=tcp::8080-:80,hostfwd=tcp:127.0.0.1:40000-:22',
      QEMU_OPTS: '-no-reboot -machine accel=tcg'
    })
  })
})

describe('KVM probe', () => {
  it('x86 image carries a valid multiboot header', () => {
    const img = x86ProbeImage()
    const magic = img.readUInt32LE(0)
    const flags = img.readUInt32LE(4)
    expect(magic).toBe(0x1badb002)
    expect((magic + flags + img.readUInt32LE(8)) >>> 0).toBe(0)
  })

  it('aarch64 image is a Linux Image with the ARM\\x64 magic', () => {
    const img = aarch64ProbeImage()
    expect(img.subarray(56, 60).toString('latin1')).toBe('ARM\x64')
  })

  it('probes with the runner CPU model and no devices', () => {
    expect(probeArgs('aarch64-linux', '/w/p.img', 'max')).toEqual(
      expect.arrayContaining([
        '-machine',
        'virt,gic-version=max,accel=kvm',
        '-cpu',
        'max',
        '-nodefaults',
        '-kernel',
        '/w/p.img'
      ])
    )
  })

  it('uses the QEMU the runner execs', () => {
    const script =
      '#!/bin/sh\nexec /nix/store/abc-qemu-8.2/bin/qemu-system-aarch64 -machine virt \\\n  $QEMU_OPTS'
    expect(qemuBinaryFromRunner(script, 'aarch64-linux')).toBe(
      '/nix/store/abc-qemu-8.2/bin/qemu-system-aarch64'
    )
    expect(qemuBinaryFromRunner('#!/bin/sh\nexec foo', 'x86_64-linux')).toBe('qemu-system-x86_64')
  })
})

describe('the runner contract (vm/runner)', () => {
  it('names the host from run-<hostname>-vm', () => {
    expect(runnerHostName('/x/result/bin/run-nixos-vm-vm')).toBe('nixos-vm')
    expect(runnerHostName('/x/start.sh')).toBe('start.sh')
  })

  it('finds bin/run-*-vm in a store path, the first by name', async () => {
    const store = await mkdtemp(join(tmpdir(), 'nvv-runner-'))
    try {
      expect(await findRunner(store)).toBeUndefined()
      await mkdir(join(store, 'bin'))
      await writeFile(join(store, 'bin', 'run-b-vm'), '')
      await writeFile(join(store, 'bin', 'run-a-vm'), '')
      await writeFile(join(store, 'bin', 'other'), '')
      expect(await findRunner(store)).toBe(join(store, 'bin', 'run-a-vm'))
    } finally {
      await rm(store, { recursive: true, force: true })
    }
  })

  it('reads the accelerator back from a QEMU command line: the last accel= wins', () => {
    expect(acceleratorFromCmdline('qemu-system-x86_64 -machine accel=kvm:tcg')).toBe('kvm')
    expect(acceleratorFromCmdline('qemu -machine accel=kvm -machine accel=tcg')).toBe('tcg')
    expect(acceleratorFromCmdline('qemu -m 1024')).toBeUndefined()
  })

  it('recognises our runner or QEMU, and nothing else', () => {
    expect(isOurRunner('/nix/store/q/bin/qemu-system-aarch64 -m 1', undefined)).toBe(true)
    expect(isOurRunner('/bin/sh /nix/store/v/bin/run-host-vm', undefined)).toBe(true)
    expect(isOurRunner('/bin/sh /tmp/start.sh', '/tmp/start.sh')).toBe(true)
    expect(isOurRunner('/usr/bin/python3 server.py', '/tmp/start.sh')).toBe(false)
  })
})
