import type * as GitHub from '@actions/github'
import { errorMessage } from '../util/errors.js'

export type GitHubClient = ReturnType<typeof GitHub.getOctokit>

/** Each API call gets this long: a hung connection must not hold the job. */
export const API_TIMEOUT_MS = 30_000

/**
 * An Octokit for the REST API at `apiUrl` (GITHUB_API_URL). @actions/github's own fetch honours
 * the runner's proxy settings; tests pass the global fetch so nock can intercept it. Octokit is
 * loaded here, on the paths that call the API only.
 */
export async function createGitHubClient(
  token: string,
  apiUrl: string,
  fetchImpl?: typeof fetch
): Promise<GitHubClient> {
  const { getOctokit } = await import('@actions/github')
  return getOctokit(token, {
    baseUrl: apiUrl,
    ...(fetchImpl !== undefined ? { request: { fetch: fetchImpl } } : {}),
    log: {
      debug: () => undefined,
      info: () => undefined,
      warn: () => undefined,
      error: () => undefined
    }
  })
}

/** An API call that failed; the action turns it into a warning, never into the job's failure. */
export class GitHubApiError extends Error {
  constructor(
    readonly what: string,
    readonly status: number | undefined,
    message: string
  ) {
    super(message)
    this.name = 'GitHubApiError'
  }
}

/** Status of an Octokit RequestError (duck-typed: bundling may load two copies of the class). */
export function httpStatus(err: unknown): number | undefined {
  const s = (err as { status?: unknown } | null)?.status
  return typeof s === 'number' ? s : undefined
}

/** `what` failed → a sentence a user can act on (403 is the fork-PR read-only token). */
export function toApiError(what: string, err: unknown, permission: string): GitHubApiError {
  const status = httpStatus(err)
  const detail = errorMessage(err).split('\n')[0]
  let hint = ''
  if (status === 403) {
    hint = ` — the token is read-only or lacks "permissions: ${permission}" (pull requests from forks always get a read-only token); the job summary and annotations carry the result`
  } else if (status === 401) hint = ' — the token was refused (bad or expired github-token)'
  else if (status === 404)
    hint = ` — not found, or the token cannot see it (needs "permissions: ${permission}")`
  return new GitHubApiError(
    what,
    status,
    `${what} failed${status !== undefined ? ` (HTTP ${status})` : ''}: ${detail}${hint}`
  )
}

/** Runs one API call with a timeout; any failure becomes a GitHubApiError. */
export async function apiCall<T>(
  what: string,
  permission: string,
  fn: (signal: AbortSignal) => Promise<T>
): Promise<T> {
  try {
    return await fn(AbortSignal.timeout(API_TIMEOUT_MS))
  } catch (err) {
    throw toApiError(what, err, permission)
  }
}
