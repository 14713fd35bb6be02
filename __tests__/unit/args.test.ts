import { describe, expect, it, jest } from '@jest/globals'
import { parseArgs } from '../../src/cli/args.js'
import { parseStages } from '../../src/pipeline/request.js'
import { main } from '../../src/cli/main.js'
import { parseDuration, formatDuration } from '../../src/util/duration.js'
import { InputErrors } from '../../src/util/input-errors.js'

describe('parseDuration', () => {
  it.each([
    ['90', 90_000],
    ['90s', 90_000],
    ['10m', 600_000],
    ['1m30s', 90_000],
    ['500ms', 500],
    ['1h', 3_600_000]
  ])('%s', (text, ms) => expect(parseDuration(text, '--x')).toBe(ms))

  it('refuses zero unless it means something, more than a Node timer can wait, and huge numbers', () => {
    expect(() => parseDuration('0', '--boot-timeout')).toThrow(
      /--boot-timeout: "0" is zero; give a positive duration/
    )
    expect(() => parseDuration('0s', '--boot-timeout')).toThrow(/is zero/)
    expect(parseDuration('0', '--timeout', 'none')).toBe(0)
    expect(() => parseDuration('600h', '--timeout', 'none')).toThrow(
      /--timeout: "600h" is longer than the longest wait Node can time \(596h\)/
    )
    expect(parseDuration('596h', '--timeout')).toBe(596 * 3_600_000)
    expect(() => parseDuration('9'.repeat(400), '--timeout')).toThrow(/is not a duration/)
    expect(() => parseDuration(`${'1'.repeat(400)}s`, '--timeout')).toThrow(/is not a duration/)
  })

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

  it('reports every bad option at once: three bad options → one error listing all three', () => {
    let caught: unknown
    try {
      parseArgs(
        [
          'validate',
          '--runner',
          'r',
          '--ssh-key',
          'k',
          '--system',
          'riscv64-linux',
          '--accel',
          'hvf',
          '--boot-timeout',
          'soon'
        ],
        '/repo'
      )
    } catch (err) {
      caught = err
    }
    expect(caught).toBeInstanceOf(InputErrors)
    expect((caught as InputErrors).messages).toEqual([
      '--system: "riscv64-linux" is not supported; allowed values: x86_64-linux, aarch64-linux',
      expect.stringMatching(/^--boot-timeout: "soon" is not a duration; use /),
      '--accel: "hvf" is not allowed; allowed values: auto, kvm, tcg'
    ])
    expect((caught as Error).message).toMatch(/^3 input errors:\n {2}- --system/)
  })

  it('missing and unknown options are listed together too', () => {
    expect(() => parseArgs(['validate', '--bogus', 'x', '--stages', 'nope'], '/repo')).toThrow(
      /^5 input errors:\n {2}- unknown option --bogus; allowed: --runner[^\n]*\n {2}- unexpected argument "x"\n {2}- validate needs --runner PATH or --flake REF\n {2}- --system is required; allowed values: aarch64-linux, x86_64-linux\n {2}- --stages: unknown stage "nope"; allowed values: boot, ssh,/
    )
  })

  it('checks --cpu, --ssh-user and durations as input (exit 2), not later as an internal error', () => {
    expect(() =>
      parseArgs(
        [
          'validate',
          '--runner',
          'r',
          '--ssh-key',
          'k',
          '--system',
          'x86_64-linux',
          '--cpu',
          'max -device evil',
          '--ssh-user',
          'root; reboot',
          '--timeout',
          '600h',
          '--boot-timeout',
          '0'
        ],
        '/repo'
      )
    ).toThrow(
      new RegExp(
        [
          '^4 input errors:',
          '  - --ssh-user: "root; reboot" is not a user name \\(letters, digits, _ \\. -\\)',
          '  - --boot-timeout: "0" is zero; give a positive duration \\(e\\.g\\. 90s, 10m\\)',
          '  - --timeout: "600h" is longer than the longest wait Node can time \\(596h\\)',
          '  - --cpu: "max -device evil" is not a QEMU CPU model without spaces'
        ].join('\n')
      )
    )
    const ok = parseArgs(
      [
        'validate',
        '--runner',
        'r',
        '--ssh-key',
        'k',
        '--system',
        'aarch64-linux',
        '--cpu',
        'max,pauth=off',
        '--timeout',
        '0'
      ],
      '/repo'
    )
    expect(ok).toMatchObject({ cpu: 'max,pauth=off', timeoutMs: 0 })
  })

  it('refuses an empty or directory --runner, a public --ssh-key and a malformed checks file before anything runs', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs')
    const { tmpdir } = await import('node:os')
    const { join } = await import('node:path')
    const { ed25519Pair } = await import('../../src/nix/sshkey.js')
    const dir = mkdtempSync(join(tmpdir(), 'nvv-args-'))
    const pub = join(dir, 'id.pub')
    writeFileSync(pub, ed25519Pair('t').public + '\n')
    const checks = join(dir, 'checks.yml')
    writeFileSync(checks, 'services:\n  - { unit: sshd.service, timout: 5s }\n')
    const errs: string[] = []
    const stderr = jest.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
      errs.push(String(chunk))
      return true
    })
    try {
      for (const runner of [dir, '']) {
        errs.length = 0
        const code = await main([
          'validate',
          '--runner',
          runner,
          '--ssh-key',
          pub,
          '--system',
          'x86_64-linux',
          '--checks',
          checks,
          '--dry-run'
        ])
        expect(code).toBe(2)
        const text = errs.join('')
        expect(text).toContain(': not an executable file (expected result/bin/run-<host>-vm)')
        expect(text).toContain(
          `--ssh-key ${pub}: this is a public key; give the private key that logs into the VM`
        )
        expect(text).toMatch(
          /checks\.yml:2: services\[0\]: unknown key "timout" \(did you mean "timeout"\?\)/
        )
      }
    } finally {
      stderr.mockRestore()
    }
  })

  it('the CLI lists bad options and missing files in one error and exits 2', async () => {
    const errs: string[] = []
    const stderr = jest.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
      errs.push(String(chunk))
      return true
    })
    try {
      const code = await main([
        'validate',
        '--runner',
        '/nonexistent/run-vm-vm',
        '--ssh-key',
        '/nonexistent/id_ed25519',
        '--system',
        'sparc-linux',
        '--accel',
        'hvf'
      ])
      expect(code).toBe(2)
    } finally {
      stderr.mockRestore()
    }
    expect(errs.join('')).toBe(
      [
        'error: 4 input errors:',
        '  - --system: "sparc-linux" is not supported; allowed values: x86_64-linux, aarch64-linux',
        '  - --accel: "hvf" is not allowed; allowed values: auto, kvm, tcg',
        '  - --runner /nonexistent/run-vm-vm: not an executable file (expected result/bin/run-<host>-vm)',
        '  - --ssh-key /nonexistent/id_ed25519: cannot read the file',
        'run "vm-automation help" for usage',
        ''
      ].join('\n')
    )
  })
})
