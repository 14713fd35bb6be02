import { dirname, join } from 'node:path'
import { defaultArtifactName } from '../github/artifact.js'
import { commentMarker } from '../github/comment.js'
import type { RunContext } from '../github/context.js'
import { hostSystem, type GuestSystem } from '../vm/system.js'
import { runnerHostName } from '../vm/runner.js'
import type { ActionInputs } from './inputs.js'

/** How this leg names itself everywhere: artifact, check run, external_id, PR comment marker. */
export interface RunIdentity {
  /** The configuration, else the runner's host name (run-<host>-vm). */
  subject: string
  system: GuestSystem
  emulated: boolean
  artifactName: string
  checkName: string
  externalId: string
  marker: string
}

export function runIdentity(
  inputs: ActionInputs,
  ctx: RunContext,
  host: GuestSystem | undefined = hostSystem()
): RunIdentity {
  const subject =
    inputs.configuration ?? (inputs.vmRunner !== undefined ? runnerHostName(inputs.vmRunner) : 'vm')
  const emulated = host !== inputs.system
  const suffix = emulated ? ', emulated' : ''
  return {
    subject,
    system: inputs.system,
    emulated,
    artifactName:
      inputs.artifactName ??
      defaultArtifactName({ subject, system: inputs.system, attempt: ctx.runAttempt, emulated }),
    checkName: inputs.checkName ?? `VM validation (${subject}, ${inputs.system}${suffix})`,
    externalId: `${subject}/${inputs.system}${emulated ? '/emulated' : ''}`,
    marker: commentMarker(subject, inputs.system, emulated)
  }
}

/**
 * Where a leg's files go: one directory under RUNNER_TEMP/nixos-vm-validate/out, named after its
 * artifact through a form no input can move elsewhere — anything but letters, digits, `.`, `_`
 * and `-` becomes `_`, and so does a leading dot (`..` would make it the work directory, whose
 * key and netrc the upload would then take).
 */
export function outDirFor(id: RunIdentity, tempRoot: string): string {
  const base = join(tempRoot, 'nixos-vm-validate', 'out')
  const name = id.artifactName.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\./, '_') || '_'
  const dir = join(base, name)
  if (dirname(dir) !== base) throw new Error(`output directory ${dir} is not inside ${base}`)
  return dir
}
