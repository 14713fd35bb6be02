import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { newReport, type Failure, type Report, type StageResult } from '../report/model.js'
import type { Accelerator, GuestSystem } from '../vm/system.js'
import { stripAnsi } from '../vm/console.js'
import { readTail } from './summary.js'

export interface BareReportInput {
  system: GuestSystem
  configuration?: string
  runner?: string
  startedAt: number
  failure: Failure
  /** The stage that was running (its duration runs to now). */
  stage?: { name: string; startMs: number }
  /** What QEMU ran with, when known (post reads it from QEMU's command line). */
  accelerator?: Accelerator
}

/**
 * A report for a run that never reached validate()'s own report (a Nix build that failed, a main
 * step killed before it wrote one): same model, so the summary, check run and artifacts treat it
 * like any other.
 */
export function bareReport(i: BareReportInput): Report {
  const now = Date.now()
  const stages: StageResult[] =
    i.stage !== undefined
      ? [
          {
            name: i.stage.name,
            status: 'failed',
            startMs: i.stage.startMs,
            durationMs: Math.max(0, now - i.startedAt - i.stage.startMs),
            checks: [],
            message: i.failure.message
          }
        ]
      : []
  return {
    ...newReport({
      system: i.system,
      startedAt: i.startedAt,
      runner: i.runner,
      configuration: i.configuration,
      accelerator: i.accelerator
    }),
    failure: i.failure,
    timings: { totalMs: now - i.startedAt },
    stages
  }
}

/** The last lines of console.log as evidence for a cancelled run. */
export async function consoleTail(outDir: string, lines = 40): Promise<string> {
  const text = await readTail(join(outDir, 'console.log'), 256 * 1024)
  return stripAnsi(text)
    .replace(/\r/g, '')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .slice(-lines)
    .join('\n')
}

/** report.json of a run, if one was written and parses. */
export async function readReport(outDir: string): Promise<Report | undefined> {
  try {
    const r = JSON.parse(await readFile(join(outDir, 'report.json'), 'utf8')) as Report
    return r.schemaVersion === 1 ? r : undefined
  } catch {
    return undefined
  }
}

/** The accelerator a QEMU command line asks for: the last `accel=` wins, as in QEMU. */
export function acceleratorFromCmdline(cmdline: string): Accelerator | undefined {
  const all = [...cmdline.matchAll(/accel=(kvm|tcg)\b/g)]
  return all.at(-1)?.[1] as Accelerator | undefined
}
