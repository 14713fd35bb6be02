import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { loadChecks } from '../checks/config.js'
import { checkSshKey, type SshKeySource, type SshKeyWording } from '../nix/sshkey.js'
import { InputError } from '../util/errors.js'
import { isExecutableFile } from '../util/fs.js'
import type { InputErrorCollector } from '../util/input-errors.js'
import type { GuestSystem } from '../vm/system.js'
import type { RunRequest, RunSettings, Spelling } from './request.js'

/** The checks file a run reads when none is named (relative to the repository root). */
export const DEFAULT_CHECKS_FILE = 'tests/vm/checks.yml'

/** What a front end hands the preflight: its parsed settings and the files they name. */
export interface PreflightInput {
  settings: RunSettings
  system: GuestSystem
  /** Absolute paths; relative ones were resolved against `root` by the front end. */
  runner?: string
  checks?: string
  sshKey?: SshKeySource
  /** The repository root: the checks file's fallback and its paths are relative to it. */
  root: string
  dryRun: boolean
  spell: Spelling & SshKeyWording
}

/**
 * The one preflight of a run, dry runs included: the runner is an executable, the checks file
 * (named, else DEFAULT_CHECKS_FILE when present) parses, the key is a readable private key. Each
 * problem is recorded in `errors` (all are reported together, before anything starts); the
 * request is only meaningful when nothing was recorded.
 */
export async function preflight(
  o: PreflightInput,
  errors: InputErrorCollector
): Promise<RunRequest> {
  const { runner, spell } = o
  if (runner !== undefined) {
    await errors.checkAsync('runner', async () => {
      if (!(await isExecutableFile(runner)))
        throw new InputError(spell.notExecutable('runner', runner))
    })
  }
  const checksFile = await resolveChecksFile(o, errors)
  const source = o.sshKey
  const sshKey =
    source !== undefined
      ? await errors.checkAsync('ssh-key', () => checkSshKey(source, spell))
      : undefined
  return { ...o.settings, runner, system: o.system, sshKey, checksFile, dryRun: o.dryRun }
}

/** The named checks file (which must exist), else the default one when present; parsed now. */
async function resolveChecksFile(
  o: PreflightInput,
  errors: InputErrorCollector
): Promise<string | undefined> {
  let file = o.checks
  if (file !== undefined) {
    if (!existsSync(file)) {
      errors.add('checks', o.spell.missingFile('checks', file))
      return file
    }
  } else {
    const fallback = join(o.root, DEFAULT_CHECKS_FILE)
    if (existsSync(fallback)) file = fallback
  }
  // Parsed now, dry runs included: a malformed checks file is an input error before any build.
  const checked = file
  if (checked !== undefined)
    await errors.checkAsync('checks', () => loadChecks(checked, o.settings.stages, o.root))
  return file
}
