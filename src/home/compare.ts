import type { HomeConsistency, HomeDifference, HomeEvaluation } from './model.js'

/**
 * What differs between the homes (docs/home-consistency.md), in this order: the homes whose
 * evaluation (or build) failed, files managed on some homes only, packages on some homes only,
 * packages a home lists but its platform cannot have. Only homes that evaluated are compared:
 * a failed home is one `error`, not a missing file on every line.
 */
export function compareHomes(homes: HomeEvaluation[]): HomeDifference[] {
  const ok = homes.filter((h) => h.error === undefined)
  const okNames = ok.map((h) => h.name)
  const errors = homes.flatMap((h): HomeDifference[] => {
    const out: HomeDifference[] = []
    if (h.error !== undefined)
      out.push({
        kind: 'error',
        item: h.name,
        present: okNames,
        absent: [h.name],
        detail: `${h.error.message}${where(h.error)}`
      })
    if (h.built !== undefined && !h.built.ok)
      out.push({
        kind: 'error',
        item: h.name,
        present: homes.filter((o) => o.built?.ok === true).map((o) => o.name),
        absent: [h.name],
        detail: `activationPackage did not build${h.built.message !== undefined ? `: ${h.built.message}` : ''}`
      })
    return out
  })
  return [
    ...errors,
    ...unevenly('file', ok, (h) => h.files),
    ...unevenly('package', ok, (h) => h.packages.map((p) => p.name)),
    ...unavailable(ok)
  ]
}

function where(e: NonNullable<HomeEvaluation['error']>): string {
  if (e.file === undefined) return ''
  return ` (${e.file}${e.line !== undefined ? `:${e.line}` : ''})`
}

/** Items some homes have and others lack, sorted by item. */
function unevenly(
  kind: 'file' | 'package',
  homes: HomeEvaluation[],
  items: (h: HomeEvaluation) => string[]
): HomeDifference[] {
  const sets = new Map(homes.map((h) => [h.name, new Set(items(h))]))
  const all = [...new Set(homes.flatMap(items))].sort()
  return all.flatMap((item): HomeDifference[] => {
    const present = homes.filter((h) => sets.get(h.name)?.has(item) === true).map((h) => h.name)
    if (present.length === homes.length) return []
    const absent = homes.filter((h) => !present.includes(h.name)).map((h) => h.name)
    return [{ kind, item, present, absent }]
  })
}

/** Packages listed but unavailable on some homes' platforms: present = where it is available. */
function unavailable(homes: HomeEvaluation[]): HomeDifference[] {
  const names = [...new Set(homes.flatMap((h) => h.packages.map((p) => p.name)))].sort()
  return names.flatMap((name): HomeDifference[] => {
    const listing = homes.filter((h) => h.packages.some((p) => p.name === name))
    const unavailableOn = listing.filter((h) =>
      h.packages.some((p) => p.name === name && !p.available)
    )
    if (unavailableOn.length === 0) return []
    const reasons = unavailableOn.map((h) => {
      const reason = h.packages.find((p) => p.name === name && !p.available)?.reason
      return `${h.name}: ${reason ?? 'unavailable'}`
    })
    return [
      {
        kind: 'unavailable',
        item: name,
        present: listing.filter((h) => !unavailableOn.includes(h)).map((h) => h.name),
        absent: unavailableOn.map((h) => h.name),
        detail: reasons.join('; ')
      }
    ]
  })
}

/** The whole record `home-consistency.json` holds. */
export function homeConsistency(flake: string, homes: HomeEvaluation[]): HomeConsistency {
  return { schemaVersion: 1, flake, homes, differences: compareHomes(homes) }
}

/** Exit 0 only when every home evaluated (and built, when tried) and nothing differs. */
export function consistent(c: HomeConsistency): boolean {
  return c.differences.length === 0 && c.homes.every((h) => h.error === undefined)
}
