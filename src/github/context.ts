import { readFileSync } from 'node:fs'

/** What the action needs to know about the workflow run it is part of. */
export interface RunContext {
  owner?: string
  repo?: string
  eventName?: string
  /** The commit a check run belongs on: the PR's head, not GITHUB_SHA (the merge commit). */
  headSha?: string
  /** Pull request number, when the event is about one. */
  prNumber?: number
  runId?: string
  runAttempt: string
  serverUrl: string
  apiUrl: string
  workspace: string
  /** `owner/repo/.github/workflows/x.yml@ref` → `.github/workflows/x.yml`. */
  workflowFile?: string
  /** Running under nektos/act (ACT=true). */
  act: boolean
}

interface EventPayload {
  pull_request?: { number?: number; head?: { sha?: string } }
  issue?: { number?: number; pull_request?: unknown }
}

export function readRunContext(env: NodeJS.ProcessEnv = process.env): RunContext {
  const payload = readPayload(env.GITHUB_EVENT_PATH)
  const [owner, repo] = (env.GITHUB_REPOSITORY ?? '').split('/')
  const pr = payload.pull_request
  const prNumber =
    pr?.number ?? (payload.issue?.pull_request !== undefined ? payload.issue.number : undefined)
  const workflowRef = env.GITHUB_WORKFLOW_REF
  const workflowFile =
    workflowRef !== undefined && owner !== undefined && repo !== undefined
      ? workflowRef.replace(`${owner}/${repo}/`, '').replace(/@.*$/, '') || undefined
      : undefined
  return {
    owner: owner || undefined,
    repo: repo || undefined,
    eventName: env.GITHUB_EVENT_NAME,
    headSha: pr?.head?.sha ?? (env.GITHUB_SHA || undefined),
    prNumber: typeof prNumber === 'number' ? prNumber : undefined,
    runId: env.GITHUB_RUN_ID || undefined,
    runAttempt: env.GITHUB_RUN_ATTEMPT || '1',
    serverUrl: (env.GITHUB_SERVER_URL || 'https://github.com').replace(/\/+$/, ''),
    apiUrl: (env.GITHUB_API_URL || 'https://api.github.com').replace(/\/+$/, ''),
    workspace: env.GITHUB_WORKSPACE || process.cwd(),
    workflowFile,
    act: env.ACT === 'true'
  }
}

function readPayload(path: string | undefined): EventPayload {
  if (path === undefined || path === '') return {}
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as EventPayload
  } catch {
    return {}
  }
}

/** Link to the workflow run (the check run's details_url, the comment's "details"). */
export function runUrl(c: RunContext): string | undefined {
  if (c.owner === undefined || c.repo === undefined || c.runId === undefined) return undefined
  return `${c.serverUrl}/${c.owner}/${c.repo}/actions/runs/${c.runId}${c.runAttempt !== '1' ? `/attempts/${c.runAttempt}` : ''}`
}
