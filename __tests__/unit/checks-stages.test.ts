/**
 * runChecks, the scheduler every stage uses, against a scripted SSH session. Each stage's own
 * tests are in stage-<name>.test.ts; the real guest is in __tests__/integration/checks.test.ts.
 */
import { describe, expect, it } from '@jest/globals'
import { runChecks, type CheckSpec } from '../../src/checks/run.js'
import { ValidationFailure } from '../../src/util/errors.js'
import { Deadline, sleep } from '../../src/util/time.js'
import { FakeSsh, stageCtx as ctx } from '../fixtures/guest.js'

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
