/**
 * Progress events. The CLI prints them as lines; the action maps stages to log groups.
 * One interface so both front ends show the same thing.
 */
export interface Logger {
  info(message: string): void
  warning(message: string): void
  /** What the run is waiting for right now (printed at most every few seconds by the CLI). */
  waiting(message: string): void
  stageStart(stage: string): void
  stageEnd(stage: string, status: string, durationMs: number): void
  debug(message: string): void
}

export const silentLogger: Logger = {
  info: () => undefined,
  warning: () => undefined,
  waiting: () => undefined,
  stageStart: () => undefined,
  stageEnd: () => undefined,
  debug: () => undefined
}
