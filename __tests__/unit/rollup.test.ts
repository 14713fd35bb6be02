import { describe, expect, it } from '@jest/globals'
import type { HomeConsistency } from '../../src/home/model.js'
import {
  newReport,
  type CheckResult,
  type Report,
  type StageResult
} from '../../src/report/model.js'
import {
  collectRollUp,
  legGroup,
  parseLegArtifactName,
  parseLegs,
  type CollectedArtifact
} from '../../src/rollup/collect.js'
import { comparePerf } from '../../src/perf/compare.js'
import type { PerfHistory } from '../../src/perf/model.js'
import { renderRollUp, rollUpTitle } from '../../src/rollup/render.js'
import { HOSTILE, expectNeutral } from './markdown-oracle.js'

const check = (
  name: string,
  status: CheckResult['status'],
  extra: Partial<CheckResult> = {}
): CheckResult => ({
  name,
  status,
  durationMs: 5,
  output: status === 'failed' ? 'not found' : '/run/current-system/sw/bin/x',
  ...extra
})

const stage = (
  name: string,
  checks: CheckResult[] = [],
  status?: StageResult['status']
): StageResult => ({
  name,
  status: status ?? (checks.some((c) => c.status === 'failed') ? 'failed' : 'passed'),
  durationMs: 100,
  checks
})

const declaredPkg = (pkg: string, status: CheckResult['status']): CheckResult =>
  check(`${pkg} on the PATH`, status, {
    declared: { option: 'environment.systemPackages', value: `package ${pkg} (program ${pkg})` }
  })

/** A leg's report.json as validate() writes it: boot, ssh, services, packages, network. */
function legReport(o: {
  configuration: string
  system: 'x86_64-linux' | 'aarch64-linux'
  emulated: boolean
  bootMs: number
  jqStatus?: CheckResult['status']
  extraPackage?: string
}): Report {
  const r = newReport({
    system: o.system,
    startedAt: 0,
    configuration: o.configuration,
    accelerator: o.emulated ? 'tcg' : 'kvm'
  })
  r.emulated = o.emulated
  r.timings = { totalMs: o.bootMs + 30_000, bootMs: o.bootMs }
  const packages = [
    declaredPkg('git', 'passed'),
    declaredPkg('jq', o.jqStatus ?? 'passed'),
    ...(o.extraPackage !== undefined ? [declaredPkg(o.extraPackage, 'passed')] : [])
  ]
  r.stages = [
    stage('boot'),
    stage('ssh'),
    stage('services', [check('sshd.service active', 'passed')]),
    stage('packages', packages),
    stage('network', [], 'skipped')
  ]
  const failed = packages.find((c) => c.status === 'failed')
  r.conclusion = failed === undefined ? 'success' : 'failure'
  r.failure =
    failed === undefined
      ? null
      : {
          stage: 'packages',
          kind: 'check-failed',
          message: 'jq: not found',
          excerpt: '',
          check: failed.name
        }
  return r
}

const artifact = (name: string, report?: Report, id = 1): CollectedArtifact => ({
  name,
  id,
  url: `https://github.com/o/r/actions/runs/7/artifacts/${id}`,
  report
})

function threeLegs(): CollectedArtifact[] {
  return [
    artifact(
      'vm-validation-demo-x86_64-x86_64-linux-1',
      legReport({
        configuration: 'demo-x86_64',
        system: 'x86_64-linux',
        emulated: false,
        bootMs: 12_000,
        extraPackage: 'cpuid'
      }),
      11
    ),
    artifact(
      'vm-validation-demo-aarch64-aarch64-linux-emulated-1',
      legReport({
        configuration: 'demo-aarch64',
        system: 'aarch64-linux',
        emulated: true,
        bootMs: 96_000
      }),
      12
    ),
    artifact(
      'vm-validation-demo-aarch64-linux-aarch64-linux-1',
      legReport({
        configuration: 'demo-aarch64-linux',
        system: 'aarch64-linux',
        emulated: false,
        bootMs: 15_000,
        jqStatus: 'failed'
      }),
      13
    )
  ]
}

describe('the leg group and the legs input', () => {
  it('strips the architecture from the configuration', () => {
    expect(legGroup('nixos-vm-aarch64')).toBe('nixos-vm')
    expect(legGroup('nixos-vm-x86_64')).toBe('nixos-vm')
    expect(legGroup('host-aarch64-linux')).toBe('host')
    expect(legGroup('x86_64-web')).toBe('web')
    expect(legGroup('x86_64')).toBe('x86_64')
    expect(legGroup('plain')).toBe('plain')
  })

  it('reads a leg artifact name back', () => {
    expect(parseLegArtifactName('vm-validation-demo-aarch64-aarch64-linux-emulated-2')).toEqual({
      subject: 'demo-aarch64',
      system: 'aarch64-linux',
      emulated: true,
      attempt: 2
    })
    expect(parseLegArtifactName('home-consistency-aarch64-darwin')).toBeUndefined()
  })

  it('parses system and configuration/system entries, by newline or comma', () => {
    expect(parseLegs('x86_64-linux, demo/aarch64-linux\n\n aarch64-darwin')).toEqual([
      { entry: 'x86_64-linux', system: 'x86_64-linux' },
      { entry: 'demo/aarch64-linux', configuration: 'demo', system: 'aarch64-linux' },
      { entry: 'aarch64-darwin', system: 'aarch64-darwin' }
    ])
    expect(() => parseLegs('x86_64, a/b/c')).toThrow(
      /"x86_64", "a\/b\/c" are not a leg; allowed values: "system" or "configuration\/system"/
    )
  })
})

describe('collectRollUp', () => {
  it('three legs: a table of every stage and the differences that name the package', () => {
    const r = collectRollUp(threeLegs())
    expect(r.conclusion).toBe('failure')
    expect(r.legs.map((l) => [l.group, l.system, l.emulated, l.conclusion])).toEqual([
      ['demo', 'aarch64-linux', true, 'success'],
      ['demo', 'aarch64-linux', false, 'failure'],
      ['demo', 'x86_64-linux', false, 'success']
    ])
    const jq = r.differences.find((d) => d.kind === 'package' && d.item === 'jq')
    expect(jq?.failed).toEqual(['demo-aarch64-linux (aarch64-linux)'])
    expect(jq?.detail).toBe(
      'package jq is found on demo-aarch64 (aarch64-linux, emulated), demo-x86_64 (x86_64-linux) and fails on demo-aarch64-linux (aarch64-linux)'
    )
    const cpuid = r.differences.find((d) => d.item === 'cpuid')
    expect(cpuid?.detail).toMatch(
      /is not checked \(not declared\) on demo-aarch64 .*, demo-aarch64-linux/
    )
    const boot = r.differences.find((d) => d.kind === 'boot-time')
    expect(boot?.detail).toBe(
      'demo-aarch64 (aarch64-linux, emulated) [emulated] booted in 1m36s, 8.0× the 12.0s of demo-x86_64 (x86_64-linux) [native] (emulated vs native)'
    )
    expect(r.differences.filter((d) => d.kind === 'check')).toEqual([])

    const md = renderRollUp(r, { runUrl: 'https://github.com/o/r/actions/runs/7' })
    expect(md).toContain('❌ **2 of 3 legs passed**')
    expect(md).toContain(
      '| Leg | Verdict | Boot | boot | ssh | services | packages | network | Artifact |'
    )
    expect(md).toContain(
      '| demo-aarch64-linux (aarch64-linux) | ❌ packages: check-failed (jq on the PATH) — jq: not found | 15.0s (KVM) | ✅ | ✅ | ✅ | ❌ | ⏭️ | [vm-validation-demo-aarch64-linux-aarch64-linux-1](https://github.com/o/r/actions/runs/7/artifacts/13) |'
    )
    expect(md).toContain('| demo-x86_64 (x86_64-linux) | ✅ passed | 12.0s (KVM) |')
    expect(md).toContain('### Differences between legs')
    expect(md).toContain('📦 **demo**: package jq is found on')
    expect(md).not.toContain('Missing legs')
  })

  it('each leg’s performance comparison in one column, only when some leg compared', () => {
    const legs = threeLegs()
    const history = (boots: number[], userspace: number): PerfHistory => ({
      schemaVersion: 1,
      key: 'k',
      runs: boots.map((boot, i) => ({
        at: `2026-12-0${i + 1}T00:00:00Z`,
        metrics: { boot, userspace }
      }))
    })
    const opts = { baseline: 'main', thresholdPct: 20, regression: 'warn' as const }
    // x86_64: userspace 60 % slower than a steady base; aarch64 emulated: within noise;
    // the native aarch64 leg has two base runs only.
    legs[0].report = {
      ...(legs[0].report as Report),
      perf: comparePerf(
        history([12_000, 12_100, 11_900], 5_000),
        { boot: 12_000, userspace: 8_000 },
        'k',
        opts
      )
    }
    legs[1].report = {
      ...(legs[1].report as Report),
      perf: comparePerf(
        history([96_000, 97_000, 95_000, 96_500], 40_000),
        { boot: 96_200, userspace: 40_500 },
        'k',
        opts
      )
    }
    legs[2].report = {
      ...(legs[2].report as Report),
      perf: comparePerf(history([15_000, 15_100], 6_000), { boot: 15_000 }, 'k', opts)
    }
    const md = renderRollUp(collectRollUp(legs, []))
    expect(md).toContain('| Leg | Verdict | Boot | Performance | boot | ssh |')
    expect(md).toContain(
      '| demo-x86_64 (x86_64-linux) | ✅ passed | 12.0s (KVM) | 🔺 userspace +60.0 % |'
    )
    expect(md).toContain('| 1m36s (TCG) | ✅ within noise of 4 runs |')
    expect(md).toContain('| 15.0s (KVM) | no base yet (2 of 3) |')
    // Without any comparison the column is not there at all.
    expect(renderRollUp(collectRollUp(threeLegs(), []))).not.toContain('Performance')
  })

  it('a leg listed in legs without an artifact is missing, and fails the roll-up', () => {
    const passing = threeLegs().slice(0, 2)
    const r = collectRollUp(passing, parseLegs('x86_64-linux\naarch64-linux\nother/x86_64-linux'))
    expect(r.legs.every((l) => l.conclusion === 'success')).toBe(true)
    expect(r.missing).toEqual([
      { entry: 'other/x86_64-linux', configuration: 'other', system: 'x86_64-linux' }
    ])
    expect(r.conclusion).toBe('failure')
    expect(rollUpTitle(r)).toBe('2 of 3 legs passed, 1 missing')
    expect(renderRollUp(r)).toContain(
      '**Missing legs:** `other/x86_64-linux` — no artifact was uploaded (the job was cancelled, timed out, never started, or its runner was lost)'
    )
  })

  it('/emulated and /native tell two legs of one configuration and system apart', () => {
    const [, emulated] = threeLegs()
    expect(parseLegs('demo-aarch64/aarch64-linux/emulated')).toEqual([
      {
        entry: 'demo-aarch64/aarch64-linux/emulated',
        configuration: 'demo-aarch64',
        system: 'aarch64-linux',
        emulated: true
      }
    ])
    const r = collectRollUp(
      [emulated],
      parseLegs('demo-aarch64/aarch64-linux/emulated, aarch64-linux/native')
    )
    expect(r.missing.map((m) => m.entry)).toEqual(['aarch64-linux/native'])
  })

  it('without the legs input only what was found counts: all passed is a success', () => {
    const r = collectRollUp(threeLegs().slice(0, 2))
    expect(r.conclusion).toBe('success')
    expect(rollUpTitle(r)).toBe('All 2 legs passed')
    expect(r.missing).toEqual([])
  })

  it('a leg artifact without report.json is a failed leg named after its artifact; the latest attempt wins', () => {
    const [x86] = threeLegs()
    const r = collectRollUp([
      {
        ...artifact('vm-validation-demo-x86_64-x86_64-linux-2', undefined, 21),
        error: 'the artifact holds no report.json'
      },
      x86
    ])
    expect(r.legs).toHaveLength(1)
    expect(r.legs[0]).toMatchObject({
      configuration: 'demo-x86_64',
      system: 'x86_64-linux',
      conclusion: 'failure',
      failure: 'no report: the artifact holds no report.json'
    })
    expect(renderRollUp(r)).toContain('| — |')
  })

  it('no leg at all is a failure, not a silent success', () => {
    const r = collectRollUp([])
    expect(r.conclusion).toBe('failure')
    expect(rollUpTitle(r)).toBe('No VM validation legs found')
  })

  it('Home Manager: Linux/Darwin differences and evaluation errors with file:line; guest text escaped', () => {
    const home: HomeConsistency = {
      schemaVersion: 1,
      flake: '.',
      homes: [
        {
          name: 'alice@x86_64-linux',
          system: 'x86_64-linux',
          files: ['.bashrc', '.config/foot/foot.ini'],
          packages: []
        },
        {
          name: 'alice@aarch64-darwin',
          system: 'aarch64-darwin',
          files: ['.bashrc'],
          packages: [],
          error: {
            message: `attribute 'foot' missing ${HOSTILE}`,
            file: 'users/alice/home.nix',
            line: 42
          }
        }
      ],
      differences: [
        {
          kind: 'file',
          item: '.config/foot/foot.ini',
          present: ['alice@x86_64-linux'],
          absent: ['alice@aarch64-darwin']
        },
        {
          kind: 'unavailable',
          item: 'foot',
          present: ['alice@x86_64-linux'],
          absent: ['alice@aarch64-darwin'],
          detail: 'meta.platforms: linux only'
        }
      ]
    }
    const r = collectRollUp([
      ...threeLegs().slice(0, 1),
      { name: 'home-consistency-aarch64-darwin', id: 30, home }
    ])
    expect(r.home).toHaveLength(1)
    const md = renderRollUp(r)
    expect(md).toContain(
      '### Home Manager: alice@x86_64-linux (x86_64-linux), alice@aarch64-darwin (aarch64-darwin)'
    )
    expect(md).toContain('does not evaluate at `users/alice/home.nix:42`')
    expect(md).toContain(
      '- file `.config/foot/foot.ini`: missing on alice@aarch64-darwin; present on alice@x86_64-linux'
    )
    expect(md).toContain(
      '- package `foot`: unavailable on alice@aarch64-darwin; present on alice@x86_64-linux — meta.platforms: linux only'
    )
    expectNeutral(md)
  })
})
