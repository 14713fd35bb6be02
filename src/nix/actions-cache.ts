import * as cache from '@actions/cache'
import type { CacheClient } from './cache.js'

/**
 * The Actions cache behind CacheClient. Kept out of the other modules so the CLI bundle does not
 * pull in @actions/cache; only the action imports it.
 */
export function actionsCacheClient(): CacheClient {
  return {
    restore: (paths, key, restoreKeys) => cache.restoreCache(paths, key, restoreKeys),
    save: (paths, key) => cache.saveCache(paths, key)
  }
}
