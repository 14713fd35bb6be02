/**
 * Plans as data, for unit tests that read them: a command is its argv; a file write is
 * `['write', path, mode]` (plus `'via sudo'` when a non-root user writes a root file). What a
 * step does for real is proven by the host-layer integration tests, not here.
 */
import { isFileWrite, type Step } from '../../src/nix/exec.js'

export function stepArgv(step: Step): string[] {
  if (!isFileWrite(step)) return step.argv
  const w = step.write
  return ['write', w.path, w.mode, ...(w.privileged && w.uid !== 0 ? ['via sudo'] : [])]
}

/** What a step feeds: a command's stdin, or the content of the file it writes. */
export function stepInput(step: Step | undefined): string {
  if (step === undefined) return ''
  return isFileWrite(step) ? step.write.content : (step.input ?? '')
}

export const argvs = (steps: Step[]): string[][] => steps.map(stepArgv)
