import type { RestEndpointMethodTypes } from '@octokit/rest'
import type { Report } from '../report/model.js'
import { batches, type Annotation } from './annotations.js'
import { apiCall, type GitHubClient } from './client.js'
import { LIMITS, truncateChars } from './limits.js'

export type CreateCheckRunBody = RestEndpointMethodTypes['checks']['create']['parameters']
export type UpdateCheckRunBody = RestEndpointMethodTypes['checks']['update']['parameters']
export type CheckConclusion = 'success' | 'failure' | 'cancelled'

/** Which check run, on which commit. */
export interface CheckRunTarget {
  owner: string
  repo: string
  /** The pull request's head commit (not GITHUB_SHA, the merge commit of a PR run). */
  headSha: string
  name: string
  /** configuration/system: tells the legs apart when GitHub attaches runs to a workflow. */
  externalId: string
  detailsUrl?: string
}

export interface CheckRunOutput {
  title: string
  summary: string
  text?: string
}

const PERMISSION = 'checks: write'
const TITLE_MAX = 255

export function checkConclusion(r: Report): CheckConclusion {
  if (r.conclusion === 'success') return 'success'
  return r.failure?.kind === 'cancelled' ? 'cancelled' : 'failure'
}

export function createCheckRunBody(t: CheckRunTarget, startedAt: Date): CreateCheckRunBody {
  return {
    owner: t.owner,
    repo: t.repo,
    name: t.name,
    head_sha: t.headSha,
    status: 'in_progress',
    started_at: startedAt.toISOString(),
    external_id: t.externalId,
    ...(t.detailsUrl !== undefined ? { details_url: t.detailsUrl } : {}),
    output: {
      title: 'VM validation running',
      summary: `Building, booting and checking ${t.externalId}; the result replaces this text when the job ends.`
    }
  }
}

function limitOutput(o: CheckRunOutput): CheckRunOutput {
  return {
    title: truncateChars(o.title, TITLE_MAX),
    summary: truncateChars(o.summary, LIMITS.checkRunText),
    ...(o.text !== undefined && o.text !== ''
      ? { text: truncateChars(o.text, LIMITS.checkRunText) }
      : {})
  }
}

/**
 * The requests that finish a check run: the first completes it with the conclusion and the first
 * 50 annotations; each further 50 go in an update (annotations append, the output stays).
 * Summary and text are cut to 65,535 characters whatever the report holds.
 */
export function completionBodies(
  t: Pick<CheckRunTarget, 'owner' | 'repo'>,
  checkRunId: number,
  conclusion: CheckConclusion,
  output: CheckRunOutput,
  annotations: Annotation[],
  completedAt: Date
): UpdateCheckRunBody[] {
  const out = limitOutput(output)
  const groups = batches(annotations)
  const first: UpdateCheckRunBody = {
    owner: t.owner,
    repo: t.repo,
    check_run_id: checkRunId,
    status: 'completed',
    conclusion,
    completed_at: completedAt.toISOString(),
    output: { ...out, ...(groups.length > 0 ? { annotations: groups[0] } : {}) }
  }
  return [
    first,
    ...groups.slice(1).map((annotations): UpdateCheckRunBody => ({
      owner: t.owner,
      repo: t.repo,
      check_run_id: checkRunId,
      output: { ...out, annotations }
    }))
  ]
}

/** Creates the check run `in_progress`; returns its id. Throws GitHubApiError. */
export async function startCheckRun(
  client: GitHubClient,
  t: CheckRunTarget,
  startedAt = new Date()
): Promise<number> {
  const res = await apiCall('creating the check run', PERMISSION, (signal) =>
    client.rest.checks.create({ ...createCheckRunBody(t, startedAt), request: { signal } })
  )
  return res.data.id
}

/** Completes it and sends every annotation batch. Throws GitHubApiError on the first failure. */
export async function completeCheckRun(
  client: GitHubClient,
  t: Pick<CheckRunTarget, 'owner' | 'repo'>,
  checkRunId: number,
  conclusion: CheckConclusion,
  output: CheckRunOutput,
  annotations: Annotation[],
  completedAt = new Date()
): Promise<void> {
  const bodies = completionBodies(t, checkRunId, conclusion, output, annotations, completedAt)
  for (const [i, body] of bodies.entries()) {
    await apiCall(
      i === 0
        ? 'completing the check run'
        : `adding annotations (batch ${i + 1} of ${bodies.length})`,
      PERMISSION,
      (signal) => client.rest.checks.update({ ...body, request: { signal } })
    )
  }
}
