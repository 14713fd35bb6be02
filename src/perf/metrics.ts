import type { Report } from '../report/model.js'
import type { MetricUnit, Metrics } from './model.js'

/** How a kind of metric is shown and judged. */
export interface MetricDef {
  label: string
  unit: MetricUnit
  /** A change smaller than this is never a regression, whatever its percentage. */
  floor: number
}

const MS = (label: string, floor = 1000): MetricDef => ({ label, unit: 'ms', floor })

/** The fixed metrics, in the order the table shows them. */
export const METRICS: Record<string, MetricDef> = {
  build: MS('build time', 10_000),
  closure: { label: 'closure size', unit: 'bytes', floor: 16 * 1024 * 1024 },
  boot: MS('boot (login prompt)'),
  kernel: MS('kernel'),
  initrd: MS('initrd'),
  userspace: MS('userspace'),
  sshReady: MS('SSH ready'),
  memory: { label: 'memory used after boot', unit: 'MiB', floor: 16 },
  sshRoundTrip: MS('SSH round trip (median)', 20),
  cpuProbe: MS('CPU probe', 25),
  diskProbe: MS('disk probe', 25)
}

/** Units of blame recorded per run (the slowest ones). */
export const SLOWEST_UNITS = 5

/** A metric id's definition: fixed, a stage's duration, or a unit's start time. */
export function metricDef(id: string): MetricDef | undefined {
  if (id in METRICS) return METRICS[id]
  if (id.startsWith('stage:')) return MS(`stage ${id.slice(6)}`)
  if (id.startsWith('unit:')) return MS(`unit ${id.slice(5)}`)
  return undefined
}

/**
 * Stages whose duration is already a metric: boot is the login prompt's time, and ssh is SSH ready
 * less the boot — a wait for the guest whose split between the two varies from run to run.
 */
const TIMED_ELSEWHERE = new Set(['boot', 'ssh'])

const put = (m: Metrics, id: string, v: number | undefined): void => {
  if (v !== undefined && Number.isFinite(v)) m[id] = v
}

/** What a report measured, as metrics (a stage counts only when it ran). */
export function metricsOf(r: Report): Metrics {
  const m: Metrics = {}
  put(m, 'build', r.timings.buildMs)
  put(m, 'closure', r.closureBytes)
  put(m, 'boot', r.timings.bootMs)
  put(m, 'kernel', r.boot?.kernelMs)
  put(m, 'initrd', r.boot?.initrdMs)
  put(m, 'userspace', r.boot?.userspaceMs)
  put(m, 'sshReady', r.timings.sshReadyMs)
  put(m, 'memory', r.boot?.memoryUsedMiB)
  put(m, 'sshRoundTrip', r.responsiveness?.sshRoundTripMs)
  put(m, 'cpuProbe', r.responsiveness?.cpuProbeMs)
  put(m, 'diskProbe', r.responsiveness?.diskProbeMs)
  for (const s of r.stages)
    if (s.status !== 'skipped' && !TIMED_ELSEWHERE.has(s.name))
      put(m, `stage:${s.name}`, s.durationMs)
  for (const u of (r.boot?.blame ?? []).slice(0, SLOWEST_UNITS)) put(m, `unit:${u.unit}`, u.ms)
  return m
}
