import type { CacheClient } from './cache.js'

/**
 * The Actions cache behind CacheClient. @actions/cache is loaded on first use only: the CLI, a dry
 * run and a run with `cache: false` never load it.
 */
export function actionsCacheClient(): CacheClient {
  const cache = (): Promise<typeof import('@actions/cache')> => import('@actions/cache')
  return {
    restore: async (paths, key, restoreKeys) =>
      (await cache()).restoreCache(paths, key, restoreKeys),
    save: async (paths, key) => (await cache()).saveCache(paths, key)
  }
}
