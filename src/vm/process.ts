import { createServer } from 'node:net'

/** Process groups of QEMU runners started by this process; killed on exit whatever happens. */
const liveGroups = new Set<number>()

export function trackGroup(pid: number): void {
  liveGroups.add(pid)
}

export function untrackGroup(pid: number): void {
  liveGroups.delete(pid)
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Sends `signal` to the whole process group of `pid` (the runner script execs QEMU, same group). */
export function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal)
  } catch {
    try {
      process.kill(pid, signal)
    } catch {
      // already gone
    }
  }
}

/** Synchronous last resort (process 'exit' handler, fatal signals): no QEMU outlives the run. */
export function killAllGroupsSync(): void {
  for (const pid of liveGroups) killGroup(pid, 'SIGKILL')
  liveGroups.clear()
}

let exitHookInstalled = false
export function installExitHook(): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.on('exit', killAllGroupsSync)
}

/** A free TCP port on 127.0.0.1 (the kernel picks; QEMU binds it right after). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address()
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0
      server.close(() => resolve(port))
    })
  })
}
