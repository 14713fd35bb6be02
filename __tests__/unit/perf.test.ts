import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { newReport, type Report } from '../../src/report/model.js'
import { applyPerf } from '../../src/perf/apply.js'
import { comparePerf, judge } from '../../src/perf/compare.js'
import { historyKey, withRun, emptyHistory } from '../../src/perf/history.js'
import { metricsOf } from '../../src/perf/metrics.js'
import { perfChart, perfSection } from '../../src/perf/render.js'
import { directoryStore, readHistoryFile } from '../../src/perf/store.js'
import { parsePerfSettings } from '../../src/perf/settings.js'
import { renderSummary } from '../../src/report/render.js'
import { parseProbes, PROBE_COMMAND } from '../../src/checks/performance.js'
import { parseArgs } from '../../src/cli/args.js'
import { silentLogger, type Logger } from '../../src/util/log.js'
import { execFileSync } from 'node:child_process'

/** A passed run's report with the numbers a guest measured (userspace given, the rest near base). */
function report(o: { userspaceMs: number; bootMs?: number; jitter?: number }): Report {
  const j = o.jitter ?? 1
  const r = newReport({ system: 'x86_64-linux', startedAt: Date.now(), configuration: 'vm' })
  r.accelerator = 'tcg'
  r.emulated = false
  r.conclusion = 'success'
  r.timings = {
    totalMs: 60_000,
    bootMs: o.bootMs ?? 20_000 * j,
    sshReadyMs: 22_000 * j,
    buildMs: 1000
  }
  r.closureBytes = 900 * 1024 * 1024
  r.boot = {
    kernelMs: 3000 * j,
    userspaceMs: o.userspaceMs,
    totalMs: 3000 * j + o.userspaceMs,
    memoryUsedMiB: Math.round(80 * j),
    blame: [{ unit: 'ssh.service', ms: 900 * j }]
  }
  r.responsiveness = { sshRoundTripMs: 40 * j, cpuProbeMs: 300 * j, diskProbeMs: 200 * j }
  r.stages = [
    { name: 'boot', status: 'passed', durationMs: 20_000 * j, checks: [] },
    { name: 'ssh', status: 'passed', durationMs: 2000 * j, checks: [] },
    { name: 'packages', status: 'passed', durationMs: 3000 * j, checks: [] },
    { name: 'network', status: 'skipped', durationMs: 0, checks: [] }
  ]
  return r
}

const logger = (): Logger & { lines: string[] } => {
  const lines: string[] = []
  return {
    ...silentLogger,
    info: (m) => lines.push(`info ${m}`),
    warning: (m) => lines.push(`warning ${m}`),
    lines
  }
}

describe('metrics of a report', () => {
  it('takes what was measured, a check stage only when it ran, and the slowest units', () => {
    const m = metricsOf(report({ userspaceMs: 5000 }))
    expect(m).toMatchObject({
      boot: 20_000,
      userspace: 5000,
      kernel: 3000,
      memory: 80,
      closure: 900 * 1024 * 1024,
      sshRoundTrip: 40,
      cpuProbe: 300,
      diskProbe: 200,
      'stage:packages': 3000,
      'unit:ssh.service': 900
    })
    // Skipped stages, and boot and ssh (their times are boot and sshReady), are not metrics.
    expect(Object.keys(m).filter((k) => k.startsWith('stage:'))).toEqual(['stage:packages'])
    expect(m.initrd).toBeUndefined()
  })
})

describe('judging a metric against its base', () => {
  const base = { median: 10_000, spread: 300 }
  it('is a regression only beyond the threshold, the spread and the floor', () => {
    expect(judge(13_000, base, 20, 1000)).toBe('regression')
    expect(judge(11_500, base, 20, 1000)).toBe('unchanged') // 15 %: under the threshold
    expect(judge(13_000, { median: 10_000, spread: 1500 }, 20, 1000)).toBe('unchanged') // in the noise
    expect(judge(130, { median: 100, spread: 1 }, 20, 1000)).toBe('unchanged') // under the floor
    expect(judge(7000, base, 20, 1000)).toBe('improvement')
  })
})

describe('comparing a run with its history', () => {
  const opts = { baseline: 'main', thresholdPct: 20, regression: 'warn' as const }
  const history = [0.97, 1.0, 1.03].reduce(
    (h, j, i) =>
      withRun(h, {
        at: `2026-12-0${i + 1}T00:00:00Z`,
        commit: `abc${i}def0`,
        metrics: metricsOf(report({ userspaceMs: 5000 * j, jitter: j }))
      }),
    emptyHistory('k')
  )

  it('flags the slowed metric, with base median, spread and change', () => {
    const c = comparePerf(history, metricsOf(report({ userspaceMs: 17_000 })), 'k', opts)
    expect(c.baseRuns).toBe(3)
    expect(c.regressions).toEqual(['userspace'])
    const u = c.metrics.find((m) => m.id === 'userspace')
    expect(u).toMatchObject({ value: 17_000, verdict: 'regression', base: { median: 5000, n: 3 } })
    expect(u?.changePct).toBe(240)
  })

  it('finds nothing in a run within the noise', () => {
    const c = comparePerf(
      history,
      metricsOf(report({ userspaceMs: 5100, jitter: 1.02 })),
      'k',
      opts
    )
    expect(c.regressions).toEqual([])
    expect(c.metrics.every((m) => m.verdict === 'unchanged')).toBe(true)
  })

  it('judges nothing before the base has enough runs', () => {
    const short = { ...history, runs: history.runs.slice(0, 2) }
    const c = comparePerf(short, metricsOf(report({ userspaceMs: 50_000 })), 'k', opts)
    expect(c.regressions).toEqual([])
    expect(new Set(c.metrics.map((m) => m.verdict))).toEqual(new Set(['new']))
  })

  it('renders the table and a Mermaid xychart with this run last', () => {
    const c = comparePerf(
      history,
      metricsOf(report({ userspaceMs: 17_000, bootMs: 32_000 })),
      'k',
      opts
    )
    const md = perfSection(c)
    expect(md).toContain('| userspace | 5.0s (±')
    expect(md).toContain('| 17.0s | +240.0 % | 🔺 regression |')
    const chart = perfChart(c)
    expect(chart).toContain('xychart-beta')
    expect(chart).toContain('x-axis ["abc0def", "abc1def", "abc2def", "this run"]')
    expect(chart).toMatch(/line \[19\.4, 20, 20\.6, 32\]/)
    expect(chart).toMatch(/bar \[0, 0, 0, 32\]/)
  })
})

describe('applyPerf with a history directory', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nvv-perf-'))
  })
  afterAll(async () => rm(dir, { recursive: true, force: true }))

  it('records passed runs, warns on a regression, fails with regression: fail', async () => {
    const store = directoryStore(dir)
    const key = historyKey({
      subject: 'vm',
      system: 'x86_64-linux',
      accelerator: 'tcg',
      emulated: false
    })
    for (const j of [0.98, 1, 1.02]) {
      const r = report({ userspaceMs: 5000 * j, jitter: j })
      await applyPerf(r, { store, thresholdPct: 20, regression: 'warn' }, silentLogger)
      expect(r.perf?.recorded).toBe(true)
    }
    expect((await readHistoryFile(dir, key))?.runs).toHaveLength(3)

    const warned = report({ userspaceMs: 17_000 })
    const log = logger()
    await applyPerf(warned, { store, thresholdPct: 20, regression: 'warn' }, log)
    expect(warned.conclusion).toBe('success')
    expect(
      log.lines.some((l) =>
        /^warning performance regression: userspace: 17\.0s vs a base median of 5\.0s/.test(l)
      )
    ).toBe(true)
    expect(renderSummary(warned)).toContain('### Performance')

    const failed = report({ userspaceMs: 17_000 })
    await applyPerf(failed, { store, thresholdPct: 20, regression: 'fail' }, silentLogger)
    expect(failed.conclusion).toBe('failure')
    expect(failed.failure).toMatchObject({ kind: 'perf-regression', check: 'userspace' })
    expect(failed.failure?.message).toMatch(
      /slower than .*userspace: 17\.0s vs a base median of 5\.0s/
    )

    const broken = report({ userspaceMs: 5000 })
    broken.conclusion = 'failure'
    await applyPerf(broken, { store, thresholdPct: 20, regression: 'fail' }, silentLogger)
    expect(broken.perf).toBeUndefined()
    expect((await readHistoryFile(dir, key))?.runs).toHaveLength(5)
  })

  it('says why a history cannot be read, and the run goes on', async () => {
    const key = historyKey({
      subject: 'other',
      system: 'x86_64-linux',
      accelerator: 'tcg',
      emulated: false
    })
    await writeFile(join(dir, `${key}.json`), '{"runs": 3}')
    const r = report({ userspaceMs: 5000 })
    r.configuration = 'other'
    await applyPerf(
      r,
      { store: directoryStore(dir), thresholdPct: 20, regression: 'fail' },
      silentLogger
    )
    expect(r.conclusion).toBe('success')
    expect(r.perf?.error).toMatch(/other-x86_64-linux-tcg\.json: not a performance history/)
    expect(await readFile(join(dir, `${key}.json`), 'utf8')).toBe('{"runs": 3}')
  })

  it('keeps KVM and TCG, native and emulated apart', () => {
    const k = (accelerator: 'kvm' | 'tcg', emulated: boolean): string =>
      historyKey({ subject: 'nixos-vm', system: 'aarch64-linux', accelerator, emulated })
    expect(new Set([k('kvm', false), k('tcg', false), k('tcg', true)]).size).toBe(3)
  })
})

describe('perf settings', () => {
  it('names the allowed values of a bad setting', () => {
    expect(() => parsePerfSettings({ 'perf-regression': 'loud' }, (n) => `--${n}`)).toThrow(
      '--perf-regression: "loud" is not allowed; allowed values: warn, fail'
    )
    expect(() => parsePerfSettings({ 'perf-threshold': 'much' }, (n) => `--${n}`)).toThrow(
      /--perf-threshold: "much" is not a percentage/
    )
    expect(parsePerfSettings({ 'perf-threshold': '35 %' }, (n) => n).thresholdPct).toBe(35)
  })

  it('the CLI takes --perf-history and reports every bad perf flag at once', () => {
    const o = parseArgs(
      [
        'validate',
        '--runner',
        '/bin/sh',
        '--ssh-key',
        '/k',
        '--system',
        'x86_64-linux',
        '--perf-history',
        'hist'
      ],
      '/w'
    )
    expect(o.perfHistory).toBe('/w/hist')
    expect(o.perf).toEqual({ baseline: 'auto', thresholdPct: 20, regression: 'warn' })
    expect(() =>
      parseArgs(
        [
          'validate',
          '--runner',
          '/bin/sh',
          '--ssh-key',
          '/k',
          '--system',
          'x86_64-linux',
          '--perf-threshold',
          '0',
          '--perf-regression',
          'x'
        ],
        '/w'
      )
    ).toThrow(/--perf-threshold[\s\S]*--perf-regression/)
  })
})

describe('the responsiveness probe', () => {
  it('runs in a POSIX shell and gives medians', () => {
    const out = execFileSync('/bin/sh', ['-c', PROBE_COMMAND], { encoding: 'utf8' })
    const p = parseProbes(out)
    expect(out.trim().split('\n')).toHaveLength(3)
    expect(p.cpuProbeMs).toBeGreaterThanOrEqual(0)
    expect(p.diskProbeMs).toBeGreaterThanOrEqual(0)
    expect(parseProbes('no date here')).toEqual({})
  })
})
