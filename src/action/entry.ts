import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/**
 * Whether the module at `moduleUrl` is the script Node was started with (`node dist/main/index.js`,
 * as the runner and act start an action), rather than a module someone imported. GitHub's local
 * runner for actions (@github/local-action) imports src/main.ts and src/post.ts and calls their
 * exported `run` itself: the entry must not start a second run of its own then.
 */
export function isEntryPoint(moduleUrl: string, argv: readonly string[] = process.argv): boolean {
  const script = argv[1]
  if (script === undefined) return true
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(moduleUrl))
  } catch {
    // Cannot tell (a path vanished): behave as the entry, as the bundle always did.
    return true
  }
}
