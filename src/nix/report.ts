import { existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { writeArtifacts } from '../report/artifacts.js'
import { failureOf } from '../report/failure.js'
import { newReport, type Report } from '../report/model.js'
import type { ValidationFailure } from '../util/errors.js'
import type { GuestSystem } from '../vm/system.js'

/**
 * The report of a run that stopped at the build: one failed `build` stage, failure kind
 * `build-failed` with the file and line Nix named (repository-relative), nothing booted.
 * Writes report.json, junit.xml and summary.md like any run, with build.log listed.
 */
export async function writeBuildFailureReport(o: {
  outDir: string
  system: GuestSystem
  configuration: string
  failure: ValidationFailure
  buildMs: number
  startedAt: number
}): Promise<Report> {
  const report: Report = {
    ...newReport({ system: o.system, startedAt: o.startedAt, configuration: o.configuration }),
    failure: failureOf('build', o.failure),
    timings: { totalMs: Date.now() - o.startedAt, buildMs: o.buildMs },
    stages: [
      {
        name: 'build',
        status: 'failed',
        durationMs: o.buildMs,
        startMs: 0,
        checks: [],
        message: o.failure.message
      }
    ]
  }
  await writeArtifacts(o.outDir, report)
  return listBuildLog(o.outDir, report)
}

/** Adds build.log to report.artifacts (validate() lists only its own files) and rewrites report.json. */
export async function listBuildLog(outDir: string, report: Report): Promise<Report> {
  if (!existsSync(join(outDir, 'build.log')) || report.artifacts.includes('build.log'))
    return report
  report.artifacts = [...report.artifacts, 'build.log'].sort()
  await writeFile(join(outDir, 'report.json'), JSON.stringify(report, null, 2) + '\n')
  return report
}
