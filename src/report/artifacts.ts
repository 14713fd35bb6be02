import { mkdir, readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Report } from './model.js'
import { renderJunit, renderSummary } from './render.js'

/** Files a run writes into its output directory; stale ones from an earlier run are removed first. */
export const ARTIFACT_PATTERN =
  /^(report\.json|console\.log|console-attempt-\d+\.log|junit\.xml|summary\.md|journal.*\.txt|screenshot-.*\.png|qemu-stderr\.log|e2e-.*\.log)$/

/** Creates the output directory and removes the artifacts an earlier run left there. */
export async function prepareOutDir(outDir: string): Promise<void> {
  await mkdir(outDir, { recursive: true })
  for (const name of await readdir(outDir)) {
    if (ARTIFACT_PATTERN.test(name)) await rm(join(outDir, name), { force: true })
  }
}

/** report.json, junit.xml and summary.md: written on every path, from the one report model. */
export async function writeArtifacts(outDir: string, report: Report): Promise<void> {
  await mkdir(outDir, { recursive: true })
  const present = (await readdir(outDir)).filter((n) => ARTIFACT_PATTERN.test(n))
  report.artifacts = [...new Set([...present, 'report.json', 'junit.xml', 'summary.md'])].sort()
  await writeFile(join(outDir, 'report.json'), JSON.stringify(report, null, 2) + '\n')
  await writeFile(join(outDir, 'junit.xml'), renderJunit(report))
  await writeFile(join(outDir, 'summary.md'), renderSummary(report))
}

/**
 * A stage's place in the report: its index in `order` (every stage in run order, STAGES of the
 * check registry); names outside it sort last.
 */
export function stageOrder(name: string, order: readonly string[]): number {
  const i = order.indexOf(name)
  return i < 0 ? order.length : i
}

/**
 * Every requested stage appears in the report: those that never started as skipped, with why.
 * The stages are then sorted by `order` (see stageOrder).
 */
export function addSkippedStages(
  report: Report,
  requested: readonly string[],
  order: readonly string[]
): void {
  const present = new Set(report.stages.map((s) => s.name))
  const why = report.failure !== null ? `not run: ${report.failure.stage} failed` : 'not run'
  for (const name of requested) {
    if (present.has(name)) continue
    report.stages.push({ name, status: 'skipped', durationMs: 0, checks: [], message: why })
  }
  report.stages.sort((a, b) => stageOrder(a.name, order) - stageOrder(b.name, order))
}
