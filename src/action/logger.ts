import * as core from '@actions/core'
import { formatDuration } from '../util/duration.js'
import type { Logger } from '../util/log.js'

export interface ActionLogger extends Logger {
  /** Closes a log group left open (a stage that ended by an exception). */
  close(): void
}

/** The engine's progress events as workflow log lines: one collapsible group per stage. */
export function actionLogger(onStageStart?: (stage: string) => void): ActionLogger {
  const t0 = Date.now()
  const stamp = (): string => `[${formatDuration(Date.now() - t0).padStart(7)}]`
  let open = false
  const close = (): void => {
    if (open) core.endGroup()
    open = false
  }
  return {
    info: (m) => core.info(`${stamp()} ${m}`),
    warning: (m) => core.warning(m),
    waiting: (m) => core.info(`${stamp()} … ${m}`),
    debug: (m) => core.debug(m),
    stageStart: (s) => {
      close()
      core.startGroup(`▶ ${s}`)
      open = true
      onStageStart?.(s)
    },
    stageEnd: (s, status, ms) => {
      close()
      const icon = status === 'passed' ? '✔' : status === 'skipped' ? '·' : '✘'
      core.info(`${stamp()} ${icon} ${s} ${status} (${formatDuration(ms)})`)
    },
    close
  }
}
