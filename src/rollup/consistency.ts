import type { Status } from '../report/model.js'
import { formatDuration } from '../util/duration.js'
import { legLabel, type LegDifference, type RollUpLeg } from './model.js'

/** Legs by group (the configuration without its architecture), groups of two or more only. */
function groups(legs: RollUpLeg[]): Map<string, RollUpLeg[]> {
  const out = new Map<string, RollUpLeg[]>()
  for (const l of legs) out.set(l.group, [...(out.get(l.group) ?? []), l])
  for (const [g, ls] of out) if (ls.length < 2) out.delete(g)
  return out
}

/** Checks (outside the packages stage) that pass on one leg of the group and fail on another. */
function checkDifferences(group: string, legs: RollUpLeg[]): LegDifference[] {
  const names = [...new Set(legs.flatMap((l) => Object.keys(l.checks)))]
  return names.flatMap((item): LegDifference[] => {
    const passed = legs.filter((l) => l.checks[item] === 'passed').map(legLabel)
    const failed = legs.filter((l) => l.checks[item] === 'failed').map(legLabel)
    if (passed.length === 0 || failed.length === 0) return []
    return [
      {
        kind: 'check',
        group,
        item,
        passed,
        failed,
        detail: `check ${item} passes on ${passed.join(', ')} and fails on ${failed.join(', ')}`
      }
    ]
  })
}

/** Whether a leg's packages stage ran (a package absent from it then means not declared there). */
function packagesRan(l: RollUpLeg): boolean {
  const s: Status | undefined = l.stages.packages
  return s === 'passed' || s === 'failed'
}

/** Packages found on one leg of the group and failed on, or absent from, another. */
function packageDifferences(group: string, legs: RollUpLeg[]): LegDifference[] {
  const ran = legs.filter(packagesRan)
  const names = [...new Set(ran.flatMap((l) => Object.keys(l.packages)))]
  return names.flatMap((item): LegDifference[] => {
    const passed = ran.filter((l) => l.packages[item] === 'passed').map(legLabel)
    const failedOn = ran.filter((l) => l.packages[item] === 'failed').map(legLabel)
    const absentOn = ran.filter((l) => l.packages[item] === undefined).map(legLabel)
    if (passed.length === 0 || failedOn.length + absentOn.length === 0) return []
    const lacks = [
      ...(failedOn.length > 0 ? [`fails on ${failedOn.join(', ')}`] : []),
      ...(absentOn.length > 0 ? [`is not checked (not declared) on ${absentOn.join(', ')}`] : [])
    ]
    return [
      {
        kind: 'package',
        group,
        item,
        passed,
        failed: [...failedOn, ...absentOn],
        detail: `package ${item} is found on ${passed.join(', ')} and ${lacks.join(' and ')}`
      }
    ]
  })
}

/** How a leg runs its guest, when legs differ in it. */
function how(l: RollUpLeg): string {
  return l.emulated ? 'emulated' : 'native'
}

/** The slowest boot of the group against the fastest (native vs emulated when that differs). */
function bootDifference(group: string, legs: RollUpLeg[]): LegDifference[] {
  const timed = legs
    .filter((l): l is RollUpLeg & { bootMs: number } => l.bootMs !== undefined && l.bootMs > 0)
    .sort((a, b) => a.bootMs - b.bootMs)
  if (timed.length < 2) return []
  const fast = timed[0]
  const slow = timed[timed.length - 1]
  const ratio = slow.bootMs / fast.bootMs
  const mixed = fast.emulated !== slow.emulated
  const label = (l: RollUpLeg): string => `${legLabel(l)}${mixed ? ` [${how(l)}]` : ''}`
  return [
    {
      kind: 'boot-time',
      group,
      item: 'boot',
      passed: [legLabel(fast)],
      failed: [legLabel(slow)],
      detail: `${label(slow)} booted in ${formatDuration(slow.bootMs)}, ${ratio.toFixed(1)}× the ${formatDuration(fast.bootMs)} of ${label(fast)}${mixed ? ` (${how(slow)} vs ${how(fast)})` : ''}`
    }
  ]
}

/**
 * What the legs of each group (one configuration on several architectures) disagree on: checks
 * that pass on one and fail on another, packages found on one and failed or absent on another,
 * and how much slower the slowest boot was.
 */
export function diffLegs(legs: RollUpLeg[]): LegDifference[] {
  return [...groups(legs)].flatMap(([group, ls]) => [
    ...checkDifferences(group, ls),
    ...packageDifferences(group, ls),
    ...bootDifference(group, ls)
  ])
}
