import { describe, expect, it } from '@jest/globals'
import { parseArgs, parseStages } from '../../src/cli/args.js'
import { parseDuration, formatDuration } from '../../src/util/duration.js'

describe('parseDuration', () => {
  it.each([
    ['90', 90_000],
    ['90s', 90_000],
    ['10m', 600_000],
    ['1m30s', 90_000],
    ['500ms', 500],
    ['1h', 3_600_000]
  ])('%s', (text, ms) => expect(parseDuration(text, '--x')).toBe(ms))

  it('names the option and the accepted forms', () => {
    expect(() => parseDuration('ten minutes', '--boot-timeout')).toThrow(
      /--boot-timeout: "ten minutes" is not a duration; use .*10m/
    )
  })

  it('formats', () => {
    expect(formatDuration(1500)).toBe('1.5s')
    expect(formatDuration(125_000)).toBe('2m05s')
    expect(formatDuration(119_600)).toBe('2m00s')
    expect(formatDuration(59_960)).toBe('1m00s')
    expect(formatDuration(59_940)).toBe('59.9s')
  })
})

describe('parseStages', () => {
  it('adds boot and ssh that other stages need, in pipeline order', () => {
    expect(parseStages('services,boot')).toEqual(['boot', 'ssh', 'services'])
    expect(parseStages('boot')).toEqual(['boot'])
    expect(parseStages('homeManager')).toEqual(['boot', 'ssh', 'home-manager'])
  })
  it('names the allowed values', () => {
    expect(() => parseStages('boot,bogus')).toThrow(
      /unknown stage "bogus"; allowed values: boot, ssh, system/
    )
  })
})

describe('parseArgs', () => {
  it('reads the contract flags', () => {
    const o = parseArgs(
      [
        'validate',
        '--runner',
        'result/bin/run-vm',
        '--system',
        'aarch64-linux',
        '--ssh-key',
        'k',
        '--boot-timeout',
        '20m',
        '--accel',
        'tcg'
      ],
      '/repo'
    )
    expect(o).toMatchObject({
      runner: '/repo/result/bin/run-vm',
      system: 'aarch64-linux',
      sshKey: '/repo/k',
      sshUser: 'root',
      bootTimeoutMs: 1_200_000,
      accel: 'tcg',
      outDir: '/repo/vm-validation'
    })
  })
  it.each([
    [['validate', '--system', 'x86_64-linux'], /needs --runner PATH or --flake REF/],
    [
      ['validate', '--runner', 'r', '--system', 'riscv64-linux', '--ssh-key', 'k'],
      /allowed values: x86_64-linux, aarch64-linux/
    ],
    [['validate', '--runner', 'r', '--system', 'x86_64-linux'], /needs --ssh-key/],
    [
      ['validate', '--runner', 'r', '--system', 'x86_64-linux', '--ssh-key', 'k', '--accel', 'hvf'],
      /allowed values: auto, kvm, tcg/
    ],
    [['validate', '--bogus'], /unknown option --bogus; allowed: --runner/],
    [['frobnicate'], /unknown command "frobnicate"/]
  ])('rejects %j', (argv, message) => {
    expect(() => parseArgs(argv as string[], '/repo')).toThrow(message)
  })
})
