/**
 * @actions/cache run in a process of its own, as the action runs it, for the tests of the
 * loopback cache service. argv[2] is a JSON job: {"op": "save", "paths": [...], "key": "..."} or
 * {"op": "restore", "paths": [...], "key": "...", "restoreKeys": [...]}. The library's own log goes
 * to stdout as workflow commands; the last line is `NVV-CACHE-RESULT <json>`: {"value": ...} (the
 * cache id, or the matched key, null for undefined) or {"thrown": {"name", "message"}} (then the
 * exit code is 1, as an unhandled rejection would make it).
 */
import * as cache from '@actions/cache'

const job = JSON.parse(process.argv[2] ?? '{}')
try {
  const value =
    job.op === 'save'
      ? await cache.saveCache(job.paths, job.key)
      : await cache.restoreCache(job.paths, job.key, job.restoreKeys)
  console.log(`NVV-CACHE-RESULT ${JSON.stringify({ value: value ?? null })}`)
} catch (err) {
  const e = err instanceof Error ? err : new Error(String(err))
  console.log(
    `NVV-CACHE-RESULT ${JSON.stringify({ thrown: { name: e.name, message: e.message } })}`
  )
  process.exitCode = 1
}
