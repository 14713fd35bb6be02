import type { HomeConsistency } from '../home/model.js'
import type { Report, StageResult, Status } from '../report/model.js'
import { perfCell } from '../perf/render.js'
import { diffLegs } from './consistency.js'
import type { HomeSource, MissingLeg, RollUp, RollUpLeg } from './model.js'

/** The prefix of every leg's artifact (src/github/artifact.ts, defaultArtifactName). */
export const LEG_ARTIFACT_PREFIX = 'vm-validation-'

/** One artifact of the run, downloaded and read. */
export interface CollectedArtifact {
  name: string
  id?: number
  url?: string
  /** Its report.json; undefined when it had none or it could not be read. */
  report?: Report
  /** Its home-consistency.json, when it held one. */
  home?: HomeConsistency
  /** Why it could not be downloaded or read. */
  error?: string
}

/** A leg the `legs` input lists. */
export interface ExpectedLeg {
  entry: string
  configuration?: string
  system: string
  /** `…/emulated` or `…/native`: only a leg that does (not) emulate its guest meets it. */
  emulated?: boolean
}

const SYSTEM_RE = /^[a-z0-9_]+-(linux|darwin)$/
const CONFIGURATION_RE = /^[A-Za-z0-9_][A-Za-z0-9_.'+-]*$/
const HOW: Record<string, boolean> = { emulated: true, native: false }

/** One entry: `[configuration/]system[/emulated|/native]`; undefined when it is not that. */
function parseLeg(entry: string): ExpectedLeg | undefined {
  const parts = entry.split('/')
  const how = parts.length > 1 ? HOW[parts[parts.length - 1]] : undefined
  if (how !== undefined) parts.pop()
  if (parts.length > 2) return undefined
  const [configuration, system] = parts.length === 2 ? parts : [undefined, parts[0]]
  if (!SYSTEM_RE.test(system)) return undefined
  if (configuration !== undefined && !CONFIGURATION_RE.test(configuration)) return undefined
  return {
    entry,
    system,
    ...(configuration !== undefined ? { configuration } : {}),
    ...(how !== undefined ? { emulated: how } : {})
  }
}

/**
 * The `legs` input: `system` or `configuration/system` entries (optionally ending `/emulated` or
 * `/native`), separated by newlines or commas. Throws an Error naming each bad entry.
 */
export function parseLegs(text: string): ExpectedLeg[] {
  const entries = text
    .split(/[\n,]/)
    .map((e) => e.trim())
    .filter((e) => e !== '' && !e.startsWith('#'))
  const bad = entries.filter((e) => parseLeg(e) === undefined)
  if (bad.length > 0)
    throw new Error(
      `${bad.map((e) => JSON.stringify(e)).join(', ')} ${bad.length > 1 ? 'are' : 'is'} not a leg; allowed values: "system" or "configuration/system" entries, optionally ending "/emulated" or "/native" (e.g. x86_64-linux, my-host/aarch64-linux/emulated), separated by newlines or commas`
    )
  return entries.map((e) => parseLeg(e) as ExpectedLeg)
}

const ARCH = '(?:aarch64|x86_64|arm64|amd64|i686|riscv64)'
const ARCH_TOKEN = new RegExp(`[-_.]?${ARCH}(?:-(?:linux|darwin))?(?=$|[-_.])`, 'g')

/**
 * The configuration without its architecture: `nixos-vm-aarch64` and `nixos-vm-x86_64` are both
 * `nixos-vm`, `host-aarch64-linux` is `host`. A name that is all architecture stays as it is.
 */
export function legGroup(configuration: string): string {
  const stripped = configuration.replace(ARCH_TOKEN, '').replace(/^[-_.]+/, '')
  return stripped !== '' ? stripped : configuration
}

/** `vm-validation-<subject>-<system>[-emulated]-<attempt>` read back; undefined if not that shape. */
export function parseLegArtifactName(
  name: string
): { subject: string; system: string; emulated: boolean; attempt: number } | undefined {
  const m = /^vm-validation-(.+)-([a-z0-9_]+-(?:linux|darwin))(-emulated)?-(\d+)$/.exec(name)
  if (m === null) return undefined
  return { subject: m[1], system: m[2], emulated: m[3] !== undefined, attempt: Number(m[4]) }
}

/** The failure in one line. */
function failureLine(r: Report): string | undefined {
  const f = r.failure
  if (r.conclusion === 'success') return undefined
  if (f === null) return 'failed'
  return `${f.stage}: ${f.kind}${f.check !== undefined ? ` (${f.check})` : ''} — ${f.message.split('\n')[0]}`
}

/** The package a packages-stage check stands for: the declared package's name when derived. */
export function packageName(c: StageResult['checks'][number]): string {
  const declared = c.declared !== undefined ? /^package (\S+)/.exec(c.declared.value) : null
  return declared !== null ? declared[1] : c.name
}

function legOfReport(a: CollectedArtifact, r: Report): RollUpLeg {
  const named = parseLegArtifactName(a.name)
  const configuration = r.configuration ?? named?.subject ?? a.name
  const stages: Record<string, Status> = {}
  const checks: Record<string, Status> = {}
  const packages: Record<string, Status> = {}
  for (const s of r.stages) {
    stages[s.name] = s.status
    for (const c of s.checks) {
      if (s.name === 'packages') packages[packageName(c)] = c.status
      else checks[`${s.name}/${c.name}`] = c.status
    }
  }
  return {
    ...artifactFields(a),
    configuration,
    group: legGroup(configuration),
    system: r.system,
    emulated: r.emulated,
    accelerator: r.accelerator,
    conclusion: r.conclusion,
    ...(failureLine(r) !== undefined ? { failure: failureLine(r) } : {}),
    ...(r.timings.bootMs !== undefined ? { bootMs: r.timings.bootMs } : {}),
    ...(r.perf !== undefined ? { perf: perfCell(r.perf) } : {}),
    stages,
    checks,
    packages
  }
}

function artifactFields(
  a: CollectedArtifact
): Pick<RollUpLeg, 'artifactName' | 'artifactId' | 'artifactUrl'> {
  return {
    artifactName: a.name,
    ...(a.id !== undefined ? { artifactId: a.id } : {}),
    ...(a.url !== undefined ? { artifactUrl: a.url } : {})
  }
}

/** A leg's artifact without a readable report.json: a failed leg named after its artifact. */
function legWithoutReport(a: CollectedArtifact): RollUpLeg {
  const named = parseLegArtifactName(a.name)
  const configuration = named?.subject ?? a.name.slice(LEG_ARTIFACT_PREFIX.length)
  return {
    ...artifactFields(a),
    configuration,
    group: legGroup(configuration),
    system: named?.system ?? 'unknown',
    emulated: named?.emulated ?? false,
    accelerator: 'none',
    conclusion: 'failure',
    failure: `no report: ${a.error ?? 'the artifact holds no report.json'}`,
    stages: {},
    checks: {},
    packages: {}
  }
}

/** The same leg uploaded by several attempts of the run: the latest attempt only. */
function latestAttempts(artifacts: CollectedArtifact[]): CollectedArtifact[] {
  const best = new Map<string, { a: CollectedArtifact; attempt: number }>()
  for (const a of artifacts) {
    const n = parseLegArtifactName(a.name)
    const key = n !== undefined ? `${n.subject}\0${n.system}\0${n.emulated}` : a.name
    const attempt = n?.attempt ?? 0
    const seen = best.get(key)
    if (seen === undefined || attempt > seen.attempt) best.set(key, { a, attempt })
  }
  return [...best.values()].map((b) => b.a)
}

function matches(e: ExpectedLeg, l: RollUpLeg): boolean {
  if (e.system !== l.system) return false
  if (e.emulated !== undefined && e.emulated !== l.emulated) return false
  return e.configuration === undefined || e.configuration === l.configuration
}

/**
 * The run's artifacts (leg artifacts, named `vm-validation-…`, and any with a
 * home-consistency.json) as one roll-up. Each expected leg without an artifact is missing.
 */
export function collectRollUp(
  artifacts: CollectedArtifact[],
  expected: ExpectedLeg[] = []
): RollUp {
  const legArtifacts = latestAttempts(
    artifacts.filter((a) => a.name.startsWith(LEG_ARTIFACT_PREFIX))
  )
  const legs = legArtifacts
    .map((a) => (a.report !== undefined ? legOfReport(a, a.report) : legWithoutReport(a)))
    .sort((x, y) =>
      x.group !== y.group
        ? x.group.localeCompare(y.group)
        : `${x.system}${x.configuration}`.localeCompare(`${y.system}${y.configuration}`)
    )
  const missing: MissingLeg[] = expected
    .filter((e) => !legs.some((l) => matches(e, l)))
    .map((e) => ({ ...e }))
  const home: HomeSource[] = artifacts.flatMap((a) =>
    a.home !== undefined
      ? [
          {
            artifactName: a.name,
            ...(a.url !== undefined ? { artifactUrl: a.url } : {}),
            consistency: a.home
          }
        ]
      : []
  )
  const failed = missing.length > 0 || legs.some((l) => l.conclusion !== 'success')
  return {
    legs,
    missing,
    differences: diffLegs(legs),
    home,
    conclusion: failed || legs.length === 0 ? 'failure' : 'success'
  }
}
