import { rm } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'
import type { CacheClient } from '../nix/cache.js'
import { readHistoryFile, writeHistoryFile, type PerfStore } from '../perf/store.js'
import type { PerfOptions } from '../perf/apply.js'
import type { PerfSettings } from '../perf/settings.js'

/** Bump when the history file's shape changes incompatibly. */
export const PERF_CACHE_PREFIX = 'nvv-perf-v1'

export interface PerfCacheInput {
  client: CacheClient
  env?: NodeJS.ProcessEnv
  commit?: string
}

/**
 * The history directory as the cache is given it. The cache version hashes the paths as given, so
 * a path under RUNNER_TEMP would tie an entry to one runner's work directory; `~` is expanded by
 * @actions/cache to this process's home, the same string everywhere (like STORE_CACHE_PATH).
 */
export const PERF_CACHE_PATH = '~/.cache/nixos-vm-validate/perf'

/**
 * The branch whose history a run compares with: a pull request's base branch (GITHUB_BASE_REF; a
 * pull request may restore its base branch's caches), else the branch the run is on.
 */
export function baseBranch(env: NodeJS.ProcessEnv): string | undefined {
  return env.GITHUB_BASE_REF || env.GITHUB_REF_NAME || undefined
}

/** Cache keys of one history: a new entry per run; the newest of the branch is restored. */
export function perfCacheKeys(
  historyKey: string,
  branch: string,
  env: NodeJS.ProcessEnv
): { key: string; restoreKeys: string[] } {
  const prefix = `${PERF_CACHE_PREFIX}-${historyKey}-${branch.replace(/[^A-Za-z0-9._/-]+/g, '_')}-`
  return {
    key: `${prefix}${env.GITHUB_RUN_ID ?? Date.now()}-${env.GITHUB_RUN_ATTEMPT ?? '1'}`,
    restoreKeys: [prefix]
  }
}

const PULL_REQUEST_EVENTS = new Set(['pull_request', 'pull_request_target'])

/**
 * The action's PerfStore: the history file lives in `~/.cache/nixos-vm-validate/perf/<key>/` and moves
 * through the Actions cache. A run on a branch restores that branch's newest history and saves it
 * again with its own run added (a new key per run: cache entries are immutable); a pull request's
 * run restores its base branch's history and records nothing. docs/performance-history.md.
 */
export function cachePerfStore(i: PerfCacheInput): PerfStore | undefined {
  const env = i.env ?? process.env
  const branch = baseBranch(env)
  if (branch === undefined) return undefined
  const home = env.HOME || homedir()
  const pathOf = (key: string): string => `${PERF_CACHE_PATH}/${key}`
  const dirOf = (key: string): string => join(home, PERF_CACHE_PATH.slice(2), key)
  return {
    baseline: branch,
    record: !PULL_REQUEST_EVENTS.has(env.GITHUB_EVENT_NAME ?? ''),
    ...(i.commit !== undefined ? { commit: i.commit } : {}),
    ref: branch,
    load: async (key) => {
      const { key: cacheKey, restoreKeys } = perfCacheKeys(key, branch, env)
      // A miss must not leave an earlier job's file (a self-hosted runner keeps HOME).
      await rm(dirOf(key), { recursive: true, force: true })
      const hit = await i.client.restore([pathOf(key)], cacheKey, restoreKeys)
      return hit !== undefined ? readHistoryFile(dirOf(key), key) : undefined
    },
    save: async (h) => {
      await writeHistoryFile(dirOf(h.key), h)
      const id = await i.client.save([pathOf(h.key)], perfCacheKeys(h.key, branch, env).key)
      if (id === -1)
        throw new Error('the Actions cache did not take the history (see the log above)')
    }
  }
}

/** Whether the runner offers the Actions cache (@actions/cache's own test, without loading it). */
export function cacheServiceAvailable(env: NodeJS.ProcessEnv): boolean {
  return env.ACTIONS_CACHE_SERVICE_V2 !== undefined && env.ACTIONS_CACHE_SERVICE_V2 !== ''
    ? !!env.ACTIONS_RESULTS_URL
    : !!env.ACTIONS_CACHE_URL
}

/**
 * The run's performance settings (perf-baseline auto): undefined, said in the log, when there is
 * no Actions cache (act, a local run) or no branch to keep the history under.
 */
export function actionPerf(
  settings: PerfSettings,
  o: {
    subject: string
    env?: NodeJS.ProcessEnv
    log: (m: string) => void
    client: CacheClient
  }
): PerfOptions | undefined {
  if (settings.baseline === 'off') return undefined
  const env = o.env ?? process.env
  if (!cacheServiceAvailable(env)) {
    o.log('performance history: no Actions cache on this runner (act or a local run): not compared')
    return undefined
  }
  const store = cachePerfStore({
    client: o.client,
    env,
    ...(env.GITHUB_SHA ? { commit: env.GITHUB_SHA } : {})
  })
  if (store === undefined) {
    o.log('performance history: no branch (GITHUB_REF_NAME) to keep it under: not compared')
    return undefined
  }
  return {
    store,
    thresholdPct: settings.thresholdPct,
    regression: settings.regression,
    subject: o.subject
  }
}
