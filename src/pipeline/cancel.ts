/**
 * Stop signals of a run, as both front ends take them: the first one aborts the run (the VM is
 * stopped, the report written), a later one asks for more force. Returns the function that
 * removes the handlers — unless a signal came: then they stay, inert, until the process exits,
 * since a group signal forwarded again after a quick teardown would otherwise kill the process
 * by default and lose the run's exit code.
 */
export function onStopSignals(o: {
  signals: readonly NodeJS.Signals[]
  controller: AbortController
  /** Said when the first signal arrives, before the run is aborted. */
  first(sig: NodeJS.Signals): void
  /** A later signal. */
  again(sig: NodeJS.Signals): void
  /**
   * A signal this soon after the first is the same one delivered again (a process-group signal
   * reaches us once per forwarding parent: timeout, make, npm), not a second request.
   */
  repeatMs?: number
}): () => void {
  let firstAt: number | undefined
  let disposed = false
  const handler = (sig: NodeJS.Signals): void => {
    if (disposed) return
    const now = Date.now()
    if (firstAt === undefined) {
      firstAt = now
      o.first(sig)
      o.controller.abort()
      return
    }
    if (now - firstAt >= (o.repeatMs ?? 0)) o.again(sig)
  }
  for (const sig of o.signals) process.on(sig, handler)
  return () => {
    disposed = true
    if (firstAt === undefined) for (const sig of o.signals) process.off(sig, handler)
  }
}
