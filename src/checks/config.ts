import { readFile } from 'node:fs/promises'
import { isAbsolute, relative } from 'node:path'
import { InputError, errorMessage } from '../util/errors.js'
import type { ChecksConfig, StageName } from './registry.js'
import { defaultChecks } from './defaults.js'
import { parseChecks } from './schema.js'

export type * from './model.js'
export type { ChecksConfig } from './registry.js'

/** `path` as annotations and error messages show it: relative to `cwd` when inside it. */
export function displayPath(path: string, cwd = process.cwd()): string {
  const rel = relative(cwd, path)
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path
}

/**
 * The checks of a run: the file when given (validated; errors name FILE:LINE and the allowed
 * keys), else the built-in defaults. Throws InputError before anything starts.
 * `stages` decides which references must resolve on the host now (e2e scripts).
 */
export async function loadChecks(
  file: string | undefined,
  stages: StageName[],
  cwd = process.cwd()
): Promise<ChecksConfig> {
  if (file === undefined) return defaultChecks()
  const label = displayPath(file, cwd)
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new InputError(`${label}: cannot read the checks file: ${errorMessage(err)}`)
  }
  return parseChecks(text, { source: file, label, root: cwd, checkScripts: stages.includes('e2e') })
}
