import { describe, expect, it, jest } from '@jest/globals'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CLI_SPELLING, parseArgs } from '../../src/cli/args.js'
import { ACTION_SPELLING, parseInputs, type InputName } from '../../src/action/inputs.js'
import { onStopSignals } from '../../src/pipeline/cancel.js'
import { preflight } from '../../src/pipeline/preflight.js'
import { parseRunSettings, RUN_DEFAULTS } from '../../src/pipeline/request.js'
import { InputErrorCollector } from '../../src/util/input-errors.js'

describe('the run request', () => {
  it('both front ends take the shared settings’ defaults from the one table', () => {
    const cli = parseArgs([
      'validate',
      '--runner',
      'r',
      '--ssh-key',
      'k',
      '--system',
      'x86_64-linux'
    ])
    const read = (values: Partial<Record<InputName, string>>) => (name: InputName) =>
      values[name] ?? ''
    const action = parseInputs(read({ 'vm-runner': 'r', 'ssh-key': 'k' }), {
      workspace: '/ws',
      host: 'x86_64-linux'
    })
    const table: Record<string, unknown> = {
      ...parseRunSettings({}, CLI_SPELLING, new InputErrorCollector())
    }
    expect(cli).toMatchObject(table)
    expect(action).toMatchObject(table)
    expect(table).toMatchObject({ bootTimeoutMs: 600_000, silenceTimeoutMs: 120_000, timeoutMs: 0 })
    expect(RUN_DEFAULTS.stages.split(',')).toEqual(table.stages)
  })

  it('names a bad setting the way its front end spells it', () => {
    for (const [spell, name] of [
      [CLI_SPELLING, '--stage-timeout'],
      [ACTION_SPELLING, 'input "stage-timeout"']
    ] as const) {
      const errors = new InputErrorCollector()
      parseRunSettings({ 'stage-timeout': 'soon' }, spell, errors)
      expect(errors.messages[0]).toMatch(new RegExp(`^${name}: "soon" is not a duration`))
    }
  })

  it('the preflight falls back to tests/vm/checks.yml under the root, and checks it', async () => {
    const root = mkdtempSync(join(tmpdir(), 'nvv-req-'))
    const settings = parseRunSettings({}, CLI_SPELLING, new InputErrorCollector())
    const input = { settings, system: 'x86_64-linux' as const, root, dryRun: true }
    let errors = new InputErrorCollector()
    expect((await preflight({ ...input, spell: CLI_SPELLING }, errors)).checksFile).toBeUndefined()
    mkdirSync(join(root, 'tests/vm'), { recursive: true })
    writeFileSync(join(root, 'tests/vm/checks.yml'), 'services:\n  - { unit: a.service, x: 1 }\n')
    errors = new InputErrorCollector()
    const r = await preflight({ ...input, spell: ACTION_SPELLING }, errors)
    expect(r.checksFile).toBe(join(root, 'tests/vm/checks.yml'))
    expect(errors.messages).toEqual([expect.stringMatching(/checks\.yml:2: services\[0\]/)])
  })
})

describe('stop signals', () => {
  it('the first aborts; a repeat within repeatMs is the same signal; later ones ask for force', () => {
    const controller = new AbortController()
    const first = jest.fn()
    const again = jest.fn()
    const now = jest.spyOn(Date, 'now').mockReturnValue(1000)
    const stop = onStopSignals({ signals: ['SIGUSR2'], controller, first, again, repeatMs: 2000 })
    try {
      process.emit('SIGUSR2', 'SIGUSR2')
      expect(first).toHaveBeenCalledWith('SIGUSR2')
      expect(controller.signal.aborted).toBe(true)
      now.mockReturnValue(2500)
      process.emit('SIGUSR2', 'SIGUSR2')
      expect(again).not.toHaveBeenCalled()
      now.mockReturnValue(3000)
      process.emit('SIGUSR2', 'SIGUSR2')
      expect(again).toHaveBeenCalledTimes(1)
      // The run ended: a signal now (a forwarded copy after a quick teardown) is taken and
      // ignored, so Node's default action cannot kill the process and lose its exit code.
      stop()
      expect(process.listenerCount('SIGUSR2')).toBe(1)
      now.mockReturnValue(9000)
      process.emit('SIGUSR2', 'SIGUSR2')
      expect(again).toHaveBeenCalledTimes(1)
      expect(first).toHaveBeenCalledTimes(1)
    } finally {
      process.removeAllListeners('SIGUSR2')
      now.mockRestore()
    }
  })

  it('a run that ended without a signal gives the signals back', () => {
    const stop = onStopSignals({
      signals: ['SIGUSR2'],
      controller: new AbortController(),
      first: jest.fn(),
      again: jest.fn()
    })
    expect(process.listenerCount('SIGUSR2')).toBe(1)
    stop()
    expect(process.listenerCount('SIGUSR2')).toBe(0)
  })
})
