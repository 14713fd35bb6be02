import { defaultArtifactName } from '../github/artifact.js'
import { commentMarker } from '../github/comment.js'
import type { RunContext } from '../github/context.js'
import { hostSystem, type GuestSystem } from '../vm/system.js'
import { runnerName, type ActionInputs } from './inputs.js'

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
    inputs.configuration ?? (inputs.vmRunner !== undefined ? runnerName(inputs.vmRunner) : 'vm')
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
