import { describe, expect, it } from '@jest/globals'
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse } from 'yaml'
import {
  INPUT_DEFAULTS,
  INPUT_NAMES,
  parseInputs,
  readInputs,
  type InputName
} from '../../src/action/inputs.js'
import { inputFailure, OUTPUT_NAMES } from '../../src/action/main.js'
import { outDirFor, runIdentity } from '../../src/action/identity.js'
import { assertCanBuild } from '../../src/action/nix.js'
import { readRunContext } from '../../src/github/context.js'
import { InputError } from '../../src/util/errors.js'
import { InputErrors } from '../../src/util/input-errors.js'
import { ROOT } from '../support/action-runner.js'
import { checkSshKey, ed25519Pair, openSshKey } from '../../src/nix/sshkey.js'
import { captureStdout } from '../support/stdout.js'
import { RUN_DEFAULTS } from '../../src/pipeline/request.js'
import { STAGES } from '../../src/checks/stages.js'

const action = parse(readFileSync(join(ROOT, 'action.yml'), 'utf8')) as {
  inputs: Record<string, { default?: string; description: string }>
  outputs: Record<string, unknown>
}

const env = { workspace: '/ws', host: 'x86_64-linux' as const }
const reader =
  (values: Partial<Record<InputName, string>>) =>
  (name: InputName): string =>
    values[name] ?? ''
const base = { 'vm-runner': 'result/bin/run-nixos-vm-vm', 'ssh-key': 'keys/id' }

function inputError(values: Partial<Record<InputName, string>>): string {
  try {
    parseInputs(reader(values), env)
  } catch (err) {
    expect(err).toBeInstanceOf(InputError)
    return (err as Error).message
  }
  throw new Error('expected an input error')
}

describe('input and output names', () => {
  it('the one const list matches action.yml, in order', () => {
    expect([...INPUT_NAMES]).toEqual(Object.keys(action.inputs))
    expect([...OUTPUT_NAMES]).toEqual(Object.keys(action.outputs))
  })

  it('action.yml’s defaults of the run settings are the one table’s', () => {
    for (const name of ['ssh-user', 'boot-timeout', 'timeout', 'accel'] as const)
      expect([name, String(action.inputs[name].default)]).toEqual([name, RUN_DEFAULTS[name]])
    // Stages come from the registry: action.yml leaves the input unset, so a new stage runs
    // without an edit there; its description names them all.
    expect(action.inputs.stages.default).toBeUndefined()
    expect(RUN_DEFAULTS.stages).toBe(STAGES.join(','))
    for (const stage of STAGES) expect(action.inputs.stages.description).toContain(stage)
  })

  it('the defaults applied in code are action.yml’s', () => {
    for (const name of INPUT_NAMES) {
      const yamlDefault = action.inputs[name].default
      if (name === 'github-token') continue // an expression the runner evaluates
      if (name === 'stages') continue // the registry's list (above)
      expect([name, INPUT_DEFAULTS[name]]).toEqual([
        name,
        yamlDefault === undefined ? undefined : String(yamlDefault)
      ])
    }
  })
})

describe('parseInputs', () => {
  it('reads every input into one typed object, defaults applied', () => {
    const i = parseInputs(reader(base), env)
    expect(i).toMatchObject({
      flake: '.',
      system: 'x86_64-linux',
      vmRunner: '/ws/result/bin/run-nixos-vm-vm',
      sshKey: { kind: 'file', path: '/ws/keys/id' },
      sshUser: 'root',
      bootTimeoutMs: 600_000,
      timeoutMs: 0,
      accel: 'auto',
      prComment: false,
      dryRun: false,
      nix: {
        installerVersion: '2.35.2',
        extraSubstituters: [],
        extraTrustedPublicKeys: [],
        cache: true
      }
    })
    expect(i.stages).toEqual([...STAGES])
  })

  it('takes the Nix inputs through as parsed lists', () => {
    const i = parseInputs(
      reader({
        configuration: 'nixos-vm-aarch64',
        system: 'aarch64-linux',
        'extra-substituters': 'https://a.example.org  https://b.example.org',
        'extra-trusted-public-keys': 'a.example.org-1:AbCd+/== b-1:xyz=',
        'cachix-cache': 'my-cache',
        'cachix-auth-token': 'tok',
        cache: 'false',
        'nix-installer-version': '2.24.9'
      }),
      env
    )
    expect(i.vmRunner).toBeUndefined()
    expect(i.nix).toEqual({
      installerVersion: '2.24.9',
      extraSubstituters: ['https://a.example.org', 'https://b.example.org'],
      extraTrustedPublicKeys: ['a.example.org-1:AbCd+/==', 'b-1:xyz='],
      cachixCache: 'my-cache',
      cachixAuthToken: 'tok',
      cache: false
    })
  })

  it('tells key text from a key path', () => {
    const text = '-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n'
    expect(parseInputs(reader({ ...base, 'ssh-key': text }), env).sshKey).toEqual({
      kind: 'text',
      text
    })
  })

  it.each<[Partial<Record<InputName, string>>, RegExp]>([
    [
      { system: 'sparc-linux' },
      /input "system": "sparc-linux" is not supported; allowed values: x86_64-linux, aarch64-linux/
    ],
    [{ accel: 'hvf' }, /input "accel": "hvf" is not allowed; allowed values: auto, kvm, tcg/],
    [
      { stages: 'boot,smoke' },
      /input "stages": unknown stage "smoke"; allowed values: boot, ssh, system/
    ],
    [{ 'boot-timeout': 'soon' }, /input "boot-timeout": "soon" is not a duration/],
    [{ timeout: '-1' }, /input "timeout"/],
    [
      { 'retention-days': '91' },
      /input "retention-days": "91" is not allowed; allowed values: a whole number of days from 1 to 90/
    ],
    [{ 'retention-days': '0' }, /from 1 to 90/],
    [
      { 'pr-comment': 'yes' },
      /input "pr-comment": "yes" is not a boolean; allowed values: true, false/
    ],
    [{ 'dry-run': '1' }, /input "dry-run".*allowed values: true, false/],
    [{ cache: 'on' }, /input "cache".*allowed values: true, false/],
    [{ 'artifact-name': 'a/b:c' }, /input "artifact-name": "a\/b:c" contains ":", "\/"/],
    [{ 'ssh-user': 'root; rm' }, /input "ssh-user"/],
    [{ 'cachix-cache': 'My Cache' }, /input "cachix-cache"/],
    [{ 'extra-substituters': 'not a url' }, /input "extra-substituters": "not" is not a URL/],
    [{ 'extra-trusted-public-keys': 'nocolon' }, /input "extra-trusted-public-keys"/],
    [{ 'nix-installer-version': 'v2' }, /input "nix-installer-version"/],
    [{ configuration: 'has space' }, /input "configuration"/]
  ])('%j → %s', (values, message) => {
    expect(inputError({ ...base, ...values })).toMatch(message)
  })

  it('needs a configuration or a vm-runner, and a key with a runner unless only booting', () => {
    expect(inputError({})).toMatch(/input "configuration" is required unless "vm-runner" is given/)
    expect(inputError({ 'vm-runner': 'r' })).toMatch(/input "ssh-key" is required with "vm-runner"/)
    expect(parseInputs(reader({ 'vm-runner': 'r', stages: 'boot' }), env).sshKey).toBeUndefined()
  })

  it('defaults system to the runner’s own, and says so when the runner has none', () => {
    expect(parseInputs(reader(base), { workspace: '/ws', host: 'aarch64-linux' }).system).toBe(
      'aarch64-linux'
    )
    expect(() => parseInputs(reader(base), { workspace: '/ws', host: undefined })).toThrow(
      /allowed values|set it to one of: x86_64-linux, aarch64-linux/
    )
  })
})

describe('every input error at once', () => {
  it('three bad inputs → one error listing all three, each with its allowed values', () => {
    let caught: unknown
    try {
      parseInputs(
        reader({ ...base, system: 'sparc-linux', accel: 'hvf', 'pr-comment': 'yes' }),
        env
      )
    } catch (err) {
      caught = err
    }
    expect(caught).toBeInstanceOf(InputErrors)
    const e = caught as InputErrors
    expect(e.messages).toEqual([
      'input "system": "sparc-linux" is not supported; allowed values: x86_64-linux, aarch64-linux',
      'input "accel": "hvf" is not allowed; allowed values: auto, kvm, tcg',
      'input "pr-comment": "yes" is not a boolean; allowed values: true, false'
    ])
    expect(e.message).toBe(
      [
        '3 input errors:',
        '  - input "system": "sparc-linux" is not supported; allowed values: x86_64-linux, aarch64-linux',
        '  - input "accel": "hvf" is not allowed; allowed values: auto, kvm, tcg',
        '  - input "pr-comment": "yes" is not a boolean; allowed values: true, false'
      ].join('\n')
    )
    expect(inputFailure(e)).toMatch(/^3 input errors:\n[\s\S]*\nNothing was started/)
    expect(inputFailure(new InputErrors(['input "x": bad']))).toBe('Input error: input "x": bad')
  })

  it('every kind at once: required, format, each bad item of a list', () => {
    const e = inputError({
      stages: 'boot,smoke',
      'boot-timeout': 'soon',
      'retention-days': '91',
      'extra-substituters': 'https://ok.example.org nope also-bad',
      cache: 'on'
    })
    expect(e.split('\n')).toEqual([
      '7 input errors:',
      expect.stringMatching(/^ {2}- input "configuration" is required unless "vm-runner"/),
      expect.stringMatching(/^ {2}- input "stages": unknown stage "smoke"; allowed values: boot,/),
      expect.stringMatching(/^ {2}- input "boot-timeout": "soon" is not a duration; use /),
      expect.stringMatching(/^ {2}- input "retention-days": "91" is not allowed; allowed values:/),
      expect.stringMatching(
        /^ {2}- input "extra-substituters": "nope" is not a URL; allowed values:/
      ),
      expect.stringMatching(/^ {2}- input "extra-substituters": "also-bad" is not a URL/),
      '  - input "cache": "on" is not a boolean; allowed values: true, false'
    ])
  })

  it('readInputs adds the files and the flake to the same list, before anything starts', async () => {
    const ws = mkdtempSync(join(tmpdir(), 'nvv-ws-'))
    const read = reader({
      configuration: 'my-host',
      checks: 'missing.yml',
      'ssh-key': 'no-such-key',
      accel: 'hvf'
    })
    let caught: unknown
    try {
      await readInputs(read, { GITHUB_WORKSPACE: ws })
    } catch (err) {
      caught = err
    }
    expect(caught).toBeInstanceOf(InputErrors)
    expect((caught as InputErrors).messages).toEqual([
      'input "accel": "hvf" is not allowed; allowed values: auto, kvm, tcg',
      `input "checks": ${ws}/missing.yml: no such file`,
      expect.stringMatching(/^input "ssh-key": cannot read .*no-such-key/),
      `input "flake": flake ".": ${ws}/flake.nix does not exist`
    ])
  })

  it('readInputs refuses a public ssh-key, a directory vm-runner and a malformed checks file (dry runs too)', async () => {
    const ws = mkdtempSync(join(tmpdir(), 'nvv-ws-'))
    writeFileSync(join(ws, 'id.pub'), ed25519Pair('t').public + '\n')
    writeFileSync(join(ws, 'checks.yml'), 'e2e:\n  - { script: ../../etc/passwd }\n')
    let caught: unknown
    try {
      await readInputs(
        reader({ 'vm-runner': '.', 'ssh-key': 'id.pub', checks: 'checks.yml', 'dry-run': 'true' }),
        { GITHUB_WORKSPACE: ws }
      )
    } catch (err) {
      caught = err
    }
    expect(caught).toBeInstanceOf(InputErrors)
    expect((caught as InputErrors).messages).toEqual([
      `input "vm-runner": ${ws} is not an executable file (expected result/bin/run-<host>-vm)`,
      'checks.yml:2: e2e[0].script: ../../etc/passwd: outside the repository (paths are relative to the repository root ' +
        ws +
        ' and stay inside it)',
      `input "ssh-key" (${ws}/id.pub): this is a public key; give the private key that logs into the VM`
    ])
  })

  it('readInputs says that legs (a roll-up input) is ignored when validating, and goes on', async () => {
    const ws = mkdtempSync(join(tmpdir(), 'nvv-ws-'))
    writeFileSync(join(ws, 'id'), ed25519Pair('t').private)
    writeFileSync(join(ws, 'run-vm'), '#!/bin/sh\n', { mode: 0o755 })
    const { written: lines, restore } = captureStdout()
    try {
      const values = { 'vm-runner': 'run-vm', 'ssh-key': 'id', 'dry-run': 'true' }
      await readInputs(reader(values), { GITHUB_WORKSPACE: ws })
      expect(lines.join('')).not.toContain('legs')
      const inputs = await readInputs(reader({ ...values, legs: 'x86_64-linux' }), {
        GITHUB_WORKSPACE: ws
      })
      expect(inputs.vmRunner).toBe(join(ws, 'run-vm'))
    } finally {
      restore()
    }
    expect(lines.join('')).toContain(
      '::warning::input "legs" is only read with mode: roll-up; this step validates one leg and ignores it'
    )
  })

  it('a github-token that is an unevaluated expression (local runners pass the default as text) is none', () => {
    expect(
      parseInputs(reader({ ...base, 'github-token': '${{ github.token }}' }), env).githubToken
    ).toBeUndefined()
    expect(parseInputs(reader({ ...base, 'github-token': 'ghs_x' }), env).githubToken).toBe('ghs_x')
  })
})

describe('openSshKey', () => {
  it('writes key text to a 0600 file under the temp root, and leaves a path alone', async () => {
    const root = mkdtempSync(join(tmpdir(), 'nvv-key-test-'))
    const key = await openSshKey(
      { source: { kind: 'text', text: 'KEY\r\nBODY' }, publicLine: 'ssh-ed25519 AAAA' },
      root
    )
    expect(key.path.startsWith(root)).toBe(true)
    expect(key.publicLine).toBe('ssh-ed25519 AAAA')
    expect(statSync(key.path).mode & 0o777).toBe(0o600)
    expect(readFileSync(key.path, 'utf8')).toBe('KEY\nBODY\n')
    await key.dispose()
    expect(existsSync(key.path)).toBe(false)
    const file = await openSshKey({ source: { kind: 'file', path: '/k' }, publicLine: 'p' }, root)
    expect(file.path).toBe('/k')
    await file.dispose()
  })

  it('reads and parses a key once, the public line included', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nvv-key-test-'))
    const pair = ed25519Pair('t')
    writeFileSync(join(dir, 'id'), pair.private)
    const wording = { unreadable: (p: string) => `unreadable ${p}`, what: () => 'the key' }
    const checked = await checkSshKey({ kind: 'file', path: join(dir, 'id') }, wording)
    expect(checked.publicLine).toBe(pair.public)
    await expect(checkSshKey({ kind: 'file', path: join(dir, 'nope') }, wording)).rejects.toThrow(
      `unreadable ${join(dir, 'nope')}`
    )
  })
})

describe('run identity', () => {
  const ctxEnv = { GITHUB_RUN_ATTEMPT: '3', GITHUB_REPOSITORY: 'o/r' }
  it('names artifact, check run, external id and marker per configuration, system, attempt', () => {
    const i = parseInputs(reader({ configuration: 'nixos-vm-x86_64', system: 'x86_64-linux' }), env)
    expect(runIdentity(i, readRunContext(ctxEnv), 'x86_64-linux')).toEqual({
      subject: 'nixos-vm-x86_64',
      system: 'x86_64-linux',
      emulated: false,
      artifactName: 'vm-validation-nixos-vm-x86_64-x86_64-linux-3',
      checkName: 'VM validation (nixos-vm-x86_64, x86_64-linux)',
      externalId: 'nixos-vm-x86_64/x86_64-linux',
      marker: '<!-- nixos-vm-validate:nixos-vm-x86_64:x86_64-linux -->'
    })
  })

  it('an emulated leg (guest arch ≠ host) gets names of its own', () => {
    const i = parseInputs(
      reader({ configuration: 'nixos-vm-aarch64', system: 'aarch64-linux' }),
      env
    )
    const id = runIdentity(i, readRunContext(ctxEnv), 'x86_64-linux')
    expect(id.artifactName).toBe('vm-validation-nixos-vm-aarch64-aarch64-linux-emulated-3')
    expect(id.marker).toBe('<!-- nixos-vm-validate:nixos-vm-aarch64:aarch64-linux:emulated -->')
    expect(id.externalId).toBe('nixos-vm-aarch64/aarch64-linux/emulated')
  })

  it('a runner without configuration is named after its host', () => {
    const i = parseInputs(reader(base), env)
    expect(runIdentity(i, readRunContext({}), 'x86_64-linux').artifactName).toBe(
      'vm-validation-nixos-vm-x86_64-linux-1'
    )
  })
})

describe('readRunContext', () => {
  it('takes the PR head SHA, not GITHUB_SHA (the merge commit)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nvv-ctx-'))
    const event = join(dir, 'event.json')
    writeFileSync(event, JSON.stringify({ pull_request: { number: 5, head: { sha: 'head' } } }))
    const c = readRunContext({
      GITHUB_EVENT_PATH: event,
      GITHUB_SHA: 'merge',
      GITHUB_REPOSITORY: 'o/r',
      GITHUB_WORKFLOW_REF: 'o/r/.github/workflows/vm.yml@refs/heads/x'
    })
    expect(c).toMatchObject({
      headSha: 'head',
      prNumber: 5,
      owner: 'o',
      repo: 'r',
      workflowFile: '.github/workflows/vm.yml',
      act: false
    })
    expect(readRunContext({ GITHUB_SHA: 'merge', ACT: 'true' })).toMatchObject({
      headSha: 'merge',
      prNumber: undefined,
      act: true
    })
  })
})

describe('assertCanBuild (the Nix layer’s flake check, before anything starts)', () => {
  it('a configuration build names a missing flake.nix as an input error; a prebuilt runner needs none', () => {
    const ws = mkdtempSync(join(tmpdir(), 'nvv-ws-'))
    const i = parseInputs(reader({ configuration: 'nixos-vm-x86_64' }), {
      workspace: ws,
      host: 'x86_64-linux'
    })
    expect(() => assertCanBuild(i, ws)).toThrow(InputError)
    expect(() => assertCanBuild(i, ws)).toThrow(/flake\.nix does not exist/)
    writeFileSync(join(ws, 'flake.nix'), '{ }')
    expect(() => assertCanBuild(i, ws)).not.toThrow()
    expect(() => assertCanBuild(parseInputs(reader(base), env), ws)).not.toThrow()
  })
})

describe('outDirFor', () => {
  const base = '/runner/temp/nixos-vm-validate/out'
  const dirOf = (artifactName: string): string =>
    outDirFor(
      {
        subject: 'my-host',
        system: 'x86_64-linux',
        emulated: false,
        artifactName,
        checkName: 'c',
        externalId: 'e',
        marker: 'm'
      },
      '/runner/temp'
    )

  it('keeps every artifact name inside the output root, whatever it says', () => {
    expect(dirOf('vm-validation-my-host-x86_64-linux-1')).toBe(
      `${base}/vm-validation-my-host-x86_64-linux-1`
    )
    // `..` would be RUNNER_TEMP/nixos-vm-validate, the work directory with the run's private key.
    expect(dirOf('..')).toBe(`${base}/_.`)
    expect(dirOf('.')).toBe(`${base}/_`)
    expect(dirOf('.hidden')).toBe(`${base}/_hidden`)
    expect(dirOf('../../etc')).toBe(`${base}/_._.._etc`)
    expect(dirOf('my leg (arm)')).toBe(`${base}/my_leg__arm_`)
    for (const name of ['..', '.', '../x', 'a/../../b', '', '~', '\u2028']) {
      const d = dirOf(name)
      expect(d.startsWith(`${base}/`) && !d.slice(base.length + 1).includes('/')).toBe(true)
      expect(d.slice(base.length + 1)).not.toMatch(/^\.\.?$/)
    }
  })
})
