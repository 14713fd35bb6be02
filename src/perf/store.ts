import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseHistory } from './history.js'
import type { PerfHistory } from './model.js'

/**
 * Where histories live. The CLI keeps them in a directory (`--perf-history DIR`); the action keeps
 * one in a directory too and moves it through the Actions cache (action/perf-cache.ts).
 */
export interface PerfStore {
  /** Where the base comes from, for the reader (`main`, the directory). */
  baseline: string
  /** Whether this run joins the history (a pull request's run does not). */
  record: boolean
  /** The run's commit and branch, stored with its metrics. */
  commit?: string
  ref?: string
  /** The history of `key`; undefined when there is none yet. */
  load(key: string): Promise<PerfHistory | undefined>
  save(history: PerfHistory): Promise<void>
}

export function historyFile(dir: string, key: string): string {
  return join(dir, `${key}.json`)
}

/** Reads `<dir>/<key>.json`: undefined when absent; an unreadable file is an Error naming it. */
export async function readHistoryFile(dir: string, key: string): Promise<PerfHistory | undefined> {
  const file = historyFile(dir, key)
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  try {
    return parseHistory(text, key)
  } catch (err) {
    throw new Error(`${file}: ${err instanceof Error ? err.message : String(err)}`)
  }
}

/** Writes `<dir>/<key>.json` whole (a temporary file renamed over it). */
export async function writeHistoryFile(dir: string, h: PerfHistory): Promise<string> {
  await mkdir(dir, { recursive: true })
  const file = historyFile(dir, h.key)
  await writeFile(`${file}.tmp`, JSON.stringify(h, null, 2) + '\n')
  await rename(`${file}.tmp`, file)
  return file
}

/** The CLI's store: every run is recorded, and compared with the runs before it. */
export function directoryStore(
  dir: string,
  run: { commit?: string; ref?: string } = {}
): PerfStore {
  return {
    baseline: dir,
    record: true,
    ...run,
    load: (key) => readHistoryFile(dir, key),
    save: async (h) => {
      await writeHistoryFile(dir, h)
    }
  }
}
