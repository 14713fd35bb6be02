import type { RestEndpointMethodTypes } from '@octokit/rest'
import type { Report } from '../report/model.js'
import { batches, type Annotation } from './annotations.js'
import { apiCall, GitHubApiError, type GitHubClient } from './client.js'
import { LIMITS, truncateMarkdown, truncateTitle } from './limits.js'

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
    title: truncateTitle(o.title),
    summary: truncateMarkdown(o.summary, LIMITS.checkRunTextBytes),
    ...(o.text !== undefined && o.text !== ''
      ? { text: truncateMarkdown(o.text, LIMITS.checkRunTextBytes) }
      : {})
  }
}

/**
 * What completes the run when GitHub refused the full output: the title and one line, no
 * annotations, nothing from the report that could be refused again.
 */
export function minimalOutput(conclusion: CheckConclusion, title: string): CheckRunOutput {
  return {
    title: truncateTitle(title),
    summary: `Conclusion: **${conclusion}**. GitHub refused the full report for this check run; it is in the job summary and the evidence artifact of the workflow run.`
  }
}

/**
 * The requests that finish a check run: the first completes it with the conclusion and the first
 * 50 annotations; each further 50 go in an update (annotations append, the output stays).
 * Summary and text are cut to 65,535 bytes whatever the report holds.
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

export interface Completion {
  /** Why the run was completed with minimalOutput instead (GitHub's 422 to the full output). */
  refused?: string
}

/**
 * Completes it and sends every annotation batch. A 422 to the completing request (a field GitHub
 * would not take) is retried once with minimalOutput and no annotations, so the run never stays
 * in progress. Throws GitHubApiError on any other failure.
 */
export async function completeCheckRun(
  client: GitHubClient,
  t: Pick<CheckRunTarget, 'owner' | 'repo'>,
  checkRunId: number,
  conclusion: CheckConclusion,
  output: CheckRunOutput,
  annotations: Annotation[],
  completedAt = new Date()
): Promise<Completion> {
  const bodies = completionBodies(t, checkRunId, conclusion, output, annotations, completedAt)
  const update = (what: string, body: UpdateCheckRunBody): Promise<unknown> =>
    apiCall(what, PERMISSION, (signal) =>
      client.rest.checks.update({ ...body, request: { signal } })
    )
  try {
    await update('completing the check run', bodies[0])
  } catch (err) {
    if (!(err instanceof GitHubApiError) || err.status !== 422) throw err
    const [minimal] = completionBodies(
      t,
      checkRunId,
      conclusion,
      minimalOutput(conclusion, output.title),
      [],
      completedAt
    )
    await update('completing the check run with a short output', minimal)
    return { refused: err.message }
  }
  for (const [i, body] of bodies.slice(1).entries()) {
    await update(`adding annotations (batch ${i + 2} of ${bodies.length})`, body)
  }
  return {}
}
