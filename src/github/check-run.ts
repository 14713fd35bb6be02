import type { RestEndpointMethodTypes } from '@octokit/rest'
import { checkConclusion, type CheckConclusion } from '../report/failure.js'
import type { Report } from '../report/model.js'
import { errorMessage } from '../util/errors.js'
import {
  batches,
  buildAnnotations,
  type Annotation,
  type AnnotationContext
} from './annotations.js'
import { apiCall, GitHubApiError, type GitHubClient } from './client.js'
import { LIMITS, truncateMarkdown, truncateTitle } from './limits.js'

export type CreateCheckRunBody = RestEndpointMethodTypes['checks']['create']['parameters']
export type UpdateCheckRunBody = RestEndpointMethodTypes['checks']['update']['parameters']
export { checkConclusion, type CheckConclusion }

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

/** Where the reporter says what it did (core.info / core.warning in the action). */
export interface CheckRunLog {
  info(message: string): void
  warning(message: string): void
}

/** The run a reporter creates: the target without the repository it was made for. */
export type CheckRunSpec = Omit<CheckRunTarget, 'owner' | 'repo'>

/**
 * One check run from start to end: main creates it in progress, and main (or post, after a
 * killed main, with the id main saved) completes it from the report. Neither method throws: a
 * GitHub failure is a warning, never the job's failure reason.
 */
export interface CheckRunReporter {
  /** The run's id once created (or given); undefined before, or when GitHub refused it. */
  readonly id: number | undefined
  /** Creates the run `in_progress`; its id, or undefined (warned) when that failed. */
  start(run: CheckRunSpec, startedAt?: Date): Promise<number | undefined>
  /**
   * Completes it with the report's conclusion, `output` and the report's annotations; true when
   * GitHub took it (with the full or the short output), false (warned) otherwise.
   */
  complete(
    report: Report,
    output: CheckRunOutput,
    where: AnnotationContext,
    completedAt?: Date
  ): Promise<boolean>
}

export interface CheckRunReporterOptions {
  client: GitHubClient
  repo: Pick<CheckRunTarget, 'owner' | 'repo'>
  log: CheckRunLog
  /** A run an earlier step created. */
  id?: number
}

/** A GitHub-side failure, as the reporting warns of it. */
export function reportingWarning(err: unknown, doing: string): string {
  return err instanceof GitHubApiError ? err.message : `${doing} failed: ${errorMessage(err)}`
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`
}

export function checkRunReporter(o: CheckRunReporterOptions): CheckRunReporter {
  let id = o.id
  return {
    get id() {
      return id
    },
    async start(run, startedAt = new Date()) {
      try {
        id = await startCheckRun(o.client, { ...o.repo, ...run }, startedAt)
        o.log.info(`check run ${id} "${run.name}" in progress on ${run.headSha}`)
      } catch (err) {
        o.log.warning(reportingWarning(err, 'creating the check run'))
      }
      return id
    },
    async complete(report, output, where, completedAt = new Date()) {
      if (id === undefined) return false
      const conclusion = checkConclusion(report)
      const annotations = buildAnnotations(report, where)
      try {
        const done = await completeCheckRun(
          o.client,
          o.repo,
          id,
          conclusion,
          output,
          annotations,
          completedAt
        )
        if (done.refused !== undefined)
          o.log.warning(
            `check run ${id} completed (${conclusion}) with a one-line output and no annotations: ${done.refused}; the job summary and the artifact hold the full report`
          )
        else
          o.log.info(
            `check run ${id} completed: ${conclusion} (${plural(annotations.length, 'annotation')})`
          )
        return true
      } catch (err) {
        o.log.warning(reportingWarning(err, 'GitHub reporting'))
        return false
      }
    }
  }
}
