/**
 * Boot analysis from one dump of systemd's unit timestamps, computed on the host.
 *
 * `systemd-analyze blame` and `critical-chain` each walk every unit over D-Bus, one round trip per
 * unit; under software emulation the two took 2.6 s on an idle aarch64 guest and 7.5 s while other
 * checks ran. One `systemctl show` of the same properties costs about as much as blame alone, and
 * both views follow from it: the same numbers and the same rules as systemd-analyze
 * (src/analyze/analyze-blame.c, analyze-critical-chain.c), checked against its own output on the
 * test guests.
 */

/** Timestamps of one unit, in µs of CLOCK_MONOTONIC (0: never happened). */
export interface UnitTimes {
  id: string
  after: string[]
  activating: number
  activated: number
  deactivating: number
  deactivated: number
}

/** When userspace (PID 1) started and when the boot finished, µs of CLOCK_MONOTONIC. */
export interface BootMarks {
  userspace: number
  finish: number
}

/** systemd's unit timestamps and the fields they fill (the names systemd-analyze uses). */
const TIME_FIELDS = {
  InactiveExitTimestampMonotonic: 'activating',
  ActiveEnterTimestampMonotonic: 'activated',
  ActiveExitTimestampMonotonic: 'deactivating',
  InactiveEnterTimestampMonotonic: 'deactivated'
} as const

/** The unit properties the dump asks for, in `systemctl show -p` form. */
export const UNIT_TIME_PROPERTIES = ['Id', 'After', ...Object.keys(TIME_FIELDS)]

/**
 * The guest command: default target, boot marks, then the timestamps of every unit whose file
 * loaded (a quoted pattern, so the guest's shell does not expand it against files). Units that
 * are only referenced (not-found) or masked never start, so they are in no blame and no chain;
 * leaving them out made the dump 13% cheaper on the test guest (155 of 171 units).
 */
export const UNIT_TIMES_COMMAND = [
  'systemctl get-default',
  'systemctl show -p UserspaceTimestampMonotonic -p FinishTimestampMonotonic',
  `systemctl show --all --state=loaded --no-pager ${UNIT_TIME_PROPERTIES.map((p) => `-p ${p}`).join(' ')} '*'`
].join('; ')

export interface UnitDump {
  defaultTarget?: string
  boot?: BootMarks
  units: Map<string, UnitTimes>
}

/** The output of UNIT_TIMES_COMMAND. */
export function parseUnitDump(text: string): UnitDump {
  const units = new Map<string, UnitTimes>()
  let defaultTarget: string | undefined
  const marks: Partial<BootMarks> = {}
  let current: Partial<UnitTimes> & { id?: string } = {}
  const flush = (): void => {
    if (current.id !== undefined) {
      units.set(current.id, {
        id: current.id,
        after: current.after ?? [],
        activating: current.activating ?? 0,
        activated: current.activated ?? 0,
        deactivating: current.deactivating ?? 0,
        deactivated: current.deactivated ?? 0
      })
    }
    current = {}
  }
  const num = (v: string): number => {
    const n = Number(v)
    return Number.isFinite(n) && n >= 0 ? n : 0
  }
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '') {
      flush()
      continue
    }
    const eq = line.indexOf('=')
    if (eq < 0) {
      // The one line without "=": systemctl get-default.
      if (defaultTarget === undefined && /^[\w:.@\\-]+\.target$/.test(line)) defaultTarget = line
      continue
    }
    const key = line.slice(0, eq)
    const value = line.slice(eq + 1)
    if (key === 'UserspaceTimestampMonotonic') marks.userspace = num(value)
    else if (key === 'FinishTimestampMonotonic') marks.finish = num(value)
    else if (key === 'Id') {
      flush()
      current.id = value
    } else if (key === 'After') current.after = value.split(/\s+/).filter((u) => u !== '')
    else if (Object.hasOwn(TIME_FIELDS, key))
      current[TIME_FIELDS[key as keyof typeof TIME_FIELDS]] = num(value)
  }
  flush()
  const dump: UnitDump = { units }
  if (defaultTarget !== undefined) dump.defaultTarget = defaultTarget
  if (marks.userspace !== undefined && marks.finish !== undefined && marks.finish > 0)
    dump.boot = { userspace: marks.userspace, finish: marks.finish }
  return dump
}

/** How long a unit took to start, as blame counts it (µs; 0: not counted). */
export function startTime(t: UnitTimes): number {
  if (t.activating === 0) return 0
  if (t.activated >= t.activating) return t.activated - t.activating
  if (t.deactivated >= t.activating) return t.deactivated - t.activating
  return 0
}

/** `systemd-analyze blame`: the `limit` units that took longest to start, in ms. */
export function blameFromDump(dump: UnitDump, limit = 10): { unit: string; ms: number }[] {
  return [...dump.units.values()]
    .map((t) => ({ unit: t.id, us: startTime(t) }))
    .filter((b) => b.us > 0)
    .sort((a, b) => b.us - a.us || a.unit.localeCompare(b.unit))
    .slice(0, limit)
    .map((b) => ({ unit: b.unit, ms: Math.floor(b.us / 1000) }))
}

/** A timespan as systemd prints it at millisecond accuracy: "825ms", "1.360s", "1min 2.345s". */
export function formatSpan(us: number): string {
  let ms = Math.floor(us / 1000)
  if (ms <= 0) return '0'
  const parts: string[] = []
  const units: [string, number][] = [
    ['h', 3_600_000],
    ['min', 60_000]
  ]
  for (const [name, size] of units) {
    if (ms >= size) {
      parts.push(`${Math.floor(ms / size)}${name}`)
      ms %= size
    }
  }
  if (ms >= 1000) {
    const frac = ms % 1000
    parts.push(`${Math.floor(ms / 1000)}${frac > 0 ? `.${String(frac).padStart(3, '0')}` : ''}s`)
  } else if (ms > 0) parts.push(`${ms}ms`)
  return parts.join(' ')
}

export const CRITICAL_CHAIN_HEADER =
  'The time when unit became active or started is printed after the "@" character.\n' +
  'The time the unit took to start is printed after the "+" character.\n'

/**
 * `systemd-analyze critical-chain` of `root` (the default target): from the root, follow the
 * After= dependency that became active last (within the boot), down to the first unit.
 */
export function criticalChainFromDump(dump: UnitDump, root = dump.defaultTarget): string {
  const boot = dump.boot
  if (root === undefined || boot === undefined) return ''
  const lines: string[] = []
  const label = (name: string, withStart: boolean): string => {
    const t = dump.units.get(name)
    if (t === undefined) return name
    // "@" is when the unit started (or became active, when starting took no time), "+" how long.
    const took = t.activated - t.activating
    if (withStart && t.activating > 0 && took > 0 && t.activated > 0)
      return `${name} @${formatSpan(t.activating - boot.userspace)} +${formatSpan(took)}`
    if (t.activated > boot.userspace) return `${name} @${formatSpan(t.activated - boot.userspace)}`
    return name
  }
  const rootTimes = dump.units.get(root)
  if (rootTimes !== undefined && rootTimes.activated - rootTimes.activating > 0)
    lines.push(`${root} +${formatSpan(rootTimes.activated - rootTimes.activating)}`)
  else lines.push(label(root, false))

  const inRange = (t: UnitTimes | undefined): t is UnitTimes =>
    t !== undefined && t.activated > 0 && t.activated <= boot.finish
  const seen = new Set<string>()
  const walk = (name: string, level: number, branches: number): void => {
    const deps = (dump.units.get(name)?.after ?? [])
      .map((d) => ({ d, t: dump.units.get(d) }))
      .filter((x): x is { d: string; t: UnitTimes } => inRange(x.t))
    if (deps.length === 0) return
    const latest = Math.max(...deps.map((x) => x.t.activated))
    // systemd's fuzz is 0 by default: only the dependencies that became active last.
    const next = deps.filter((x) => x.t.activated === latest)
    next.forEach(({ d }, i) => {
      const last = i === next.length - 1
      let prefix = ''
      for (let l = level; l > 0; l--) prefix += branches & (1 << (l - 1)) ? '│ ' : '  '
      lines.push(`${prefix}${last ? '└─' : '├─'}${label(d, true)}`)
      if (seen.has(d)) {
        lines.push(`${prefix}${last ? '  ' : '│ '}└─...`)
        return
      }
      seen.add(d)
      walk(d, level + 1, (branches << 1) | (last ? 0 : 1))
    })
  }
  seen.add(root)
  walk(root, 0, 0)
  return CRITICAL_CHAIN_HEADER + '\n' + lines.join('\n')
}
