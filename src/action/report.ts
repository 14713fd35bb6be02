import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Report } from '../report/model.js'
import { stripAnsi } from '../vm/console.js'
import { readTail } from './summary.js'

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
