import { formatDuration } from '../util/duration.js'
import type { Logger } from '../util/log.js'

/** Progress lines for a terminal or a CI log: elapsed time, stage, what the run waits for. */
export function cliLogger(
  verbose: boolean,
  write: (line: string) => void = (l) => process.stderr.write(l + '\n')
): Logger {
  const t0 = Date.now()
  const stamp = (): string => `[${formatDuration(Date.now() - t0).padStart(7)}]`
  return {
    info: (m) => write(`${stamp()} ${m}`),
    warning: (m) => write(`${stamp()} warning: ${m}`),
    waiting: (m) => write(`${stamp()} … ${m}`),
    stageStart: (s) => write(`${stamp()} ▶ ${s}`),
    stageEnd: (s, status, ms) =>
      write(
        `${stamp()} ${status === 'passed' ? '✔' : status === 'skipped' ? '·' : '✘'} ${s} ${status} (${formatDuration(ms)})`
      ),
    debug: (m) => {
      if (verbose) write(`${stamp()} debug: ${m}`)
    }
  }
}
