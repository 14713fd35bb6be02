import { describe, expect, it } from '@jest/globals'
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { displayPath, loadChecks } from '../../src/checks/config.js'
import { STAGE_UNITS } from '../../src/checks/registry.js'
import { DEFAULT_TIMEOUTS, SECTIONS, parseChecks } from '../../src/checks/schema.js'
import { InputError } from '../../src/util/errors.js'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const FIXTURES = join(ROOT, 'tests/fixtures/checks')

function parse(text: string, checkScripts = false): ReturnType<typeof parseChecks> {
  return parseChecks(text, { label: 'checks.yml', root: FIXTURES, checkScripts })
}

function errorOf(text: string, checkScripts = false): InputError {
  try {
    parse(text, checkScripts)
  } catch (err) {
    expect(err).toBeInstanceOf(InputError)
    return err as InputError
  }
  throw new Error('expected an InputError')
}

describe('the repository checks file (tests/vm/checks.yml)', () => {
  it('loads with every section, line numbers and durations', async () => {
    const c = await loadChecks(join(ROOT, 'tests/vm/checks.yml'), ['e2e'], ROOT)
    expect(c.label).toBe('tests/vm/checks.yml')
    expect(c.system).toMatchObject({ timeoutMs: 10 * 60_000, file: 'tests/vm/checks.yml' })
    expect(c.services.map((s) => s.unit)).toContain('docker.service')
    expect(c.docker?.users.map((u) => u.name)).toEqual(['baleen'])
    expect(c.users[0]).toMatchObject({
      name: 'baleen',
      groups: ['wheel', 'docker'],
      shell: 'bash',
      home: '/home/baleen'
    })
    expect(c.homeManager[0].files.map((f) => f.path)).toContain('.config/git/config')
    const git = c.packages.find((p) => p.name === 'git')
    expect(git).toMatchObject({
      run: 'git --version',
      expect: '^git version',
      user: 'baleen',
      timeoutMs: 30_000
    })
    expect(git?.line).toBeGreaterThan(1)
    expect(c.commands.length).toBeGreaterThan(0)
    expect(c.network?.urls[0].url).toBe('https://cache.nixos.org/nix-cache-info')
    expect(c.performance).toMatchObject({
      bootTimeMs: 8 * 60_000,
      kernelMs: 90_000,
      memoryUsedMiB: 1500
    })
    expect(c.e2e[0]).toMatchObject({
      script: 'tests/e2e/dev-env.sh',
      path: join(ROOT, 'tests/e2e/dev-env.sh'),
      user: 'baleen'
    })
  })

  it('keeps the section names the structure test knows', () => {
    // Every stage's sections in registry order, then the file's own (derived); these, at least.
    expect([...SECTIONS]).toEqual([
      ...STAGE_UNITS.flatMap((u) => Object.keys(u.sections)),
      'derived'
    ])
    const known = [
      'system',
      'services',
      'docker',
      'users',
      'homeManager',
      'packages',
      'commands',
      'network',
      'performance',
      'e2e',
      'derived'
    ]
    expect(SECTIONS.filter((s) => known.includes(s))).toEqual(known)
  })
})

describe('parseChecks', () => {
  it('records the line of each check', () => {
    const c = parse(
      [
        'services:',
        '  - sshd.service',
        '  - { unit: foo.service, user: baleen, timeout: 10s }',
        'packages:',
        '  - name: git',
        '    run: git --version'
      ].join('\n')
    )
    expect(c.services).toEqual([
      { unit: 'sshd.service', file: 'checks.yml', line: 2, timeoutMs: DEFAULT_TIMEOUTS.service },
      { unit: 'foo.service', user: 'baleen', file: 'checks.yml', line: 3, timeoutMs: 10_000 }
    ])
    expect(c.packages[0]).toMatchObject({
      name: 'git',
      line: 5,
      timeoutMs: DEFAULT_TIMEOUTS.command
    })
  })

  it('runs system and performance with defaults when the file leaves them out, nothing else', () => {
    const c = parse('packages: []\n')
    expect(c.system?.timeoutMs).toBe(DEFAULT_TIMEOUTS.system)
    expect(c.performance).toEqual({ timeoutMs: DEFAULT_TIMEOUTS.performance, lines: {} })
    expect(c.services).toEqual([])
    expect(c.network).toBeUndefined()
    expect(c.docker).toBeUndefined()
    expect(parse('').services).toEqual([])
    expect(parse('# only a comment\n').e2e).toEqual([])
  })

  it('reads durations as units or bare seconds, and budgets with their lines', () => {
    const c = parse(
      'performance:\n  bootTime: 3m\n  kernel: 30\n  initrd: 1m30s\n  memoryUsedMiB: 1500\n'
    )
    expect(c.performance).toMatchObject({
      bootTimeMs: 180_000,
      kernelMs: 30_000,
      initrdMs: 90_000,
      memoryUsedMiB: 1500
    })
    expect(c.performance?.lines).toEqual({ bootTime: 2, kernel: 3, initrd: 4, memoryUsedMiB: 5 })
  })

  it('rejects an unknown top-level key with file, line, a suggestion and the allowed keys', () => {
    const e = errorOf('system: { timeout: 5m }\nservces:\n  - sshd.service\n')
    expect(e.kind).toBe('input')
    expect(e.message).toBe(
      `checks.yml:2: (top level): unknown key "servces" (did you mean "services"?) (allowed keys: ${SECTIONS.join(', ')})`
    )
  })

  it('rejects an unknown nested key on its own line', () => {
    const e = errorOf('packages:\n  - name: git\n    run: git --version\n    exepct: "^git"\n')
    expect(e.message).toBe(
      'checks.yml:4: packages[0]: unknown key "exepct" (did you mean "expect"?) (allowed keys: name, run, expect, user, timeout)'
    )
  })

  it('names a missing required key and where the entry starts', () => {
    expect(errorOf('commands:\n  - { name: hostname }\n').message).toBe(
      'checks.yml:2: commands[0]: missing required key "run" (allowed keys: name, run, expect, user, timeout)'
    )
    expect(errorOf('users:\n  - { groups: [docker] }\n').message).toMatch(
      /^checks\.yml:2: users\[0\]: missing required key "name" \(allowed keys: name, groups, shell, home, timeout\)$/
    )
  })

  it('rejects bad values with the line of the value', () => {
    expect(errorOf('system:\n  timeout: 5 minutes\n').message).toMatch(
      /^checks\.yml:2: system\.timeout: "5 minutes" is not a positive duration; use seconds or units ms, s, m, h/
    )
    expect(errorOf('packages:\n  - { name: x, run: x, expect: "([" }\n').message).toMatch(
      /^checks\.yml:2: packages\[0\]\.expect: not a valid regular expression/
    )
    expect(errorOf('network:\n  urls: [ftp://example.org/]\n').message).toMatch(
      /^checks\.yml:2: network\.urls\[0\]: "ftp:\/\/example\.org\/" is not an http:\/\/ or https:\/\/ URL$/
    )
    expect(errorOf('services:\n  - "docker service; reboot"\n').message).toMatch(
      /^checks\.yml:2: services\[0\]: .* is not a systemd unit name$/
    )
    expect(errorOf('users:\n  - { name: "bad user" }\n').message).toMatch(
      /^checks\.yml:2: users\[0\]\.name: "bad user" is not a user name$/
    )
    expect(errorOf('homeManager:\n  - { user: baleen, files: [../etc/passwd] }\n').message).toMatch(
      /^checks\.yml:2: homeManager\[0\]\.files\[0\]: .* relative to the home directory$/
    )
    expect(errorOf('performance:\n  memoryUsedMiB: lots\n').message).toMatch(
      /^checks\.yml:2: performance\.memoryUsedMiB: expected a positive number, got "lots"$/
    )
  })

  it('reads derived.exclude: check names and option paths, with their lines', () => {
    const c = parse('derived:\n  exclude:\n    - users.users.alice\n    - TCP port 22 listening\n')
    expect(c.derived?.exclude).toEqual([
      { name: 'users.users.alice', file: 'checks.yml', line: 3 },
      { name: 'TCP port 22 listening', file: 'checks.yml', line: 4 }
    ])
    expect(() => parse('derived:\n  include: [x]\n')).toThrow(
      'checks.yml:2: derived: unknown key "include" (did you mean "exclude"?) (allowed keys: exclude)'
    )
  })

  it('rejects a section of the wrong shape, naming the allowed keys', () => {
    expect(errorOf('docker: [baleen]\n').message).toBe(
      'checks.yml:1: docker: expected a mapping with keys users, timeout, got a list (allowed keys: users, timeout)'
    )
    expect(errorOf('services: docker.service\n').message).toMatch(
      /^checks\.yml:1: services: expected a list of units/
    )
    expect(errorOf('- a\n- b\n').message).toMatch(
      /^checks\.yml:1: \(top level\): expected a mapping/
    )
  })

  it('reads network.substitute: a package name, or one of package/path with run and expect', () => {
    const hash = '0'.repeat(32)
    const c = parse(
      [
        'network:',
        '  substitute:',
        '    - hello',
        '    - { package: python3Packages.requests, run: bin/python --version, timeout: 5m }',
        `    - { path: /nix/store/${hash}-hello-2.12.1, run: bin/hello, expect: "^Hello" }`
      ].join('\n')
    )
    expect(c.network?.substitute).toEqual([
      { package: 'hello', file: 'checks.yml', line: 3, timeoutMs: DEFAULT_TIMEOUTS.substitute },
      {
        package: 'python3Packages.requests',
        run: 'bin/python --version',
        file: 'checks.yml',
        line: 4,
        timeoutMs: 300_000
      },
      {
        path: `/nix/store/${hash}-hello-2.12.1`,
        run: 'bin/hello',
        expect: '^Hello',
        file: 'checks.yml',
        line: 5,
        timeoutMs: DEFAULT_TIMEOUTS.substitute
      }
    ])
    expect(parse('network:\n  urls: [https://example.org/]\n').network?.substitute).toBeUndefined()
  })

  it('rejects a substitute entry without exactly one of package and path, and bad values', () => {
    const hash = '0'.repeat(32)
    expect(errorOf('network:\n  substitute:\n    - { run: bin/hello }\n').message).toMatch(
      /^checks\.yml:3: network\.substitute\[0\]: give exactly one of "package" .* or "path"/
    )
    expect(
      errorOf(`network:\n  substitute:\n    - { package: hello, path: /nix/store/${hash}-x }\n`)
        .message
    ).toMatch(/exactly one of/)
    const e = errorOf(
      [
        'network:',
        '  substitute:',
        '    - "hello; reboot"',
        '    - { path: /tmp/hello }',
        '    - { package: hello, run: ../../bin/sh }',
        '    - { package: hello, run: /bin/sh }',
        '    - { package: hello, expect: "([" }',
        '    - { package: hello, version: 2 }'
      ].join('\n')
    ).message.split('\n')
    expect(e).toEqual([
      expect.stringMatching(
        /^checks\.yml:3: network\.substitute\[0\]: .* is not a package attribute/
      ),
      expect.stringMatching(
        /^checks\.yml:4: network\.substitute\[1\]\.path: .* is not a store path/
      ),
      expect.stringMatching(
        /^checks\.yml:5: network\.substitute\[2\]\.run: .* relative, without '\.\.'/
      ),
      expect.stringMatching(/^checks\.yml:6: network\.substitute\[3\]\.run: /),
      expect.stringMatching(
        /^checks\.yml:7: network\.substitute\[4\]\.expect: not a valid regular expression/
      ),
      expect.stringMatching(
        /^checks\.yml:8: network\.substitute\[5\]: unknown key "version" .*allowed keys: package, path, run, expect, timeout/
      )
    ])
  })

  it('keeps e2e scripts inside the repository: no .., no absolute path, no symlink out, files only', () => {
    const root = mkdtempSync(join(tmpdir(), 'nvv-e2e-root-'))
    mkdirSync(join(root, 'tests'))
    writeFileSync(join(root, 'tests/ok.sh'), '#!/bin/sh\n', { mode: 0o755 })
    symlinkSync('/etc/passwd', join(root, 'tests/out.sh'))
    symlinkSync('ok.sh', join(root, 'tests/in.sh'))
    const text = [
      'e2e:',
      '  - { script: ../../etc/passwd }',
      '  - { script: /etc/passwd }',
      '  - { script: tests/out.sh }',
      '  - { script: tests }',
      '  - { script: tests/in.sh }',
      '  - { script: tests/ok.sh }'
    ].join('\n')
    let message = ''
    try {
      parseChecks(text, { label: 'checks.yml', root, checkScripts: true })
    } catch (err) {
      message = (err as Error).message
    }
    expect(message.split('\n')).toEqual([
      `checks.yml:2: e2e[0].script: ../../etc/passwd: outside the repository (paths are relative to the repository root ${root} and stay inside it)`,
      `checks.yml:3: e2e[1].script: /etc/passwd: outside the repository (paths are relative to the repository root ${root} and stay inside it)`,
      `checks.yml:4: e2e[2].script: tests/out.sh: leads outside the repository (to /etc/passwd; paths are relative to the repository root ${root} and stay inside it)`,
      'checks.yml:5: e2e[3].script: tests: not a regular file'
    ])
    // Without the e2e stage the files are not looked at, but a path out is refused all the same.
    expect(() =>
      parseChecks('e2e:\n  - { script: ../x.sh }\n', { label: 'checks.yml', root })
    ).toThrow(/outside the repository/)
  })

  it('reports every error at once', () => {
    const e = errorOf('system: { timeout: x }\npackages:\n  - { name: a }\nbogus: 1\n')
    const lines = e.message.split('\n')
    expect(lines).toHaveLength(3)
    expect(lines.map((l) => l.split(':')[1])).toEqual(['1', '3', '4'])
  })

  it('reports YAML syntax errors with line and column', () => {
    expect(errorOf('services:\n  - sshd.service\n   - bad: [\n').message).toMatch(
      /^checks\.yml:2:5: YAML syntax: Implicit keys need to be on a single line/
    )
    expect(errorOf('system: {}\nsystem: {}\n').message).toMatch(
      /^checks\.yml:2:1: YAML syntax: Map keys must be unique/
    )
  })

  it('checks that e2e scripts exist only when the e2e stage will run', () => {
    const text = 'e2e:\n  - { script: tests/e2e/missing.sh, user: baleen }\n'
    expect(parse(text, false).e2e[0]).toMatchObject({
      script: 'tests/e2e/missing.sh',
      path: join(FIXTURES, 'tests/e2e/missing.sh'),
      line: 2
    })
    expect(errorOf(text, true).message).toMatch(
      /^checks\.yml:2: e2e\[0\]\.script: tests\/e2e\/missing\.sh: no such file \(paths are relative to the repository root /
    )
    expect(parse('e2e:\n  - { script: e2e-fail.sh, timeout: 1m }\n', true).e2e[0]).toMatchObject({
      path: join(FIXTURES, 'e2e-fail.sh'),
      timeoutMs: 60_000
    })
  })
})

describe('loadChecks', () => {
  it('gives the built-in defaults without a file', async () => {
    const c = await loadChecks(undefined, ['system'])
    expect(c.source).toBeUndefined()
    expect(c.services.length).toBeGreaterThan(0)
  })

  it('names the file it cannot read', async () => {
    await expect(loadChecks('/nonexistent/checks.yml', ['system'])).rejects.toThrow(
      /^\/nonexistent\/checks\.yml: cannot read the checks file/
    )
  })

  it('names the file relative to the repository root in errors', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nvv-checks-'))
    writeFileSync(join(dir, 'checks.yml'), 'users:\n  - { name: baleen, shel: bash }\n')
    await expect(loadChecks(join(dir, 'checks.yml'), ['users'], dir)).rejects.toThrow(
      'checks.yml:2: users[0]: unknown key "shel" (did you mean "shell"?) (allowed keys: name, groups, shell, home, timeout)'
    )
  })

  it('displayPath is repo-relative inside the repo, absolute outside', () => {
    expect(displayPath('/repo/tests/vm/checks.yml', '/repo')).toBe('tests/vm/checks.yml')
    expect(displayPath('/elsewhere/checks.yml', '/repo')).toBe('/elsewhere/checks.yml')
  })
})
