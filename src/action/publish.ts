import { join } from 'node:path'
import * as core from '@actions/core'
import type { Report } from '../report/model.js'
import { buildAnnotations, type AnnotationContext } from '../github/annotations.js'
import { uploadEvidence, type ArtifactUploader } from '../github/artifact.js'
import {
  checkRunReporter,
  reportingWarning,
  type CheckRunLog,
  type CheckRunReporter,
  type CheckRunSpec
} from '../github/check-run.js'
import { createGitHubClient, type GitHubClient } from '../github/client.js'
import { upsertComment } from '../github/comment.js'
import { runUrl, type RunContext } from '../github/context.js'
import { failureKind } from '../report/failure.js'
import { errorMessage } from '../util/errors.js'
import {
  STATE_KEYS,
  type RunPlan,
  type SavedArtifact,
  type SavedState,
  type StateWriter
} from './state.js'
import {
  checkRunOutput,
  commentMarkdown,
  jobSummary,
  readTail,
  type SummaryContext
} from './summary.js'

/** Check runs and comments need a token and a repository; act has no commit on GitHub to attach them to. */
export async function githubClientFor(
  token: string | undefined,
  ctx: RunContext
): Promise<GitHubClient | undefined> {
  if (ctx.act) {
    core.notice(
      'act: no check run or pull request comment (a local run has no commit on GitHub to attach them to); see the job summary'
    )
    return undefined
  }
  if (token === undefined) {
    core.warning(
      'no github-token: no check run or pull request comment; the job summary and annotations carry the result'
    )
    return undefined
  }
  if (ctx.owner === undefined || ctx.repo === undefined || ctx.headSha === undefined) {
    core.warning('GITHUB_REPOSITORY or the commit is unknown: no check run or pull request comment')
    return undefined
  }
  return createGitHubClient(token, ctx.apiUrl)
}

const CORE_LOG: CheckRunLog = {
  info: (m) => core.info(m),
  warning: (m) => core.warning(m)
}

/**
 * This job's check run, logged with core; undefined without a client or a repository. `id`: the
 * run main created (post completes it).
 */
export function actionCheckRun(
  client: GitHubClient | undefined,
  ctx: RunContext,
  id?: number
): CheckRunReporter | undefined {
  if (client === undefined || ctx.owner === undefined || ctx.repo === undefined) return undefined
  return checkRunReporter({ client, repo: { owner: ctx.owner, repo: ctx.repo }, log: CORE_LOG, id })
}

/**
 * main's start of the reporting: the check run created in progress on the head commit (see
 * checkRunReporter; its id is undefined when GitHub refused). Undefined without a client.
 */
export async function startActionCheckRun(
  client: GitHubClient | undefined,
  ctx: RunContext,
  run: Pick<CheckRunSpec, 'name' | 'externalId'>
): Promise<CheckRunReporter | undefined> {
  const reporter = actionCheckRun(client, ctx)
  if (reporter === undefined || ctx.headSha === undefined) return undefined
  await reporter.start({ ...run, headSha: ctx.headSha, detailsUrl: runUrl(ctx) })
  return reporter
}

/** Workflow-command annotations GitHub shows per step (more are dropped). */
const WORKFLOW_ANNOTATIONS = 10

export interface PublishInput {
  report: Report
  plan: RunPlan
  context: RunContext
  /** Absent: no token, or act (no check run, no comment). */
  client?: GitHubClient
  /** The check run to complete; without it, one is made of `client` and `checkRunId`. */
  checkRun?: CheckRunReporter
  checkRunId?: number
  /** What an earlier step (main, for post) already did. */
  done: Pick<SavedState, 'artifact' | 'summaryWritten' | 'checkRunCompleted' | 'commentWritten'>
  save: StateWriter
  /** core.error annotations for each failure (main only: post's run was cancelled). */
  annotate: boolean
  uploader?: ArtifactUploader
  env?: NodeJS.ProcessEnv
}

/** A GitHub-side failure: always a warning, never the job's failure reason. */
function warn(err: unknown): void {
  core.warning(reportingWarning(err, 'GitHub reporting'))
}

function annotationContext(p: PublishInput): AnnotationContext {
  return {
    workspace: p.plan.workspace,
    checksFile: p.plan.checksFile,
    workflowFile: p.context.workflowFile
  }
}

/**
 * The end of a run, from its report: artifact, job summary, check run, PR comment, annotations.
 * Each step is saved as done, so post (after a killed main) does only what is left. Never throws.
 */
export async function publish(p: PublishInput): Promise<SavedArtifact> {
  const { report, plan, context } = p
  const artifact = p.done.artifact ?? (await uploadStep(p))

  const summaryCtx: SummaryContext = {
    artifactUrl: artifact.url,
    artifactNote: artifact.note,
    runUrl: runUrl(context),
    consoleText:
      report.failure !== null ? await readTail(join(plan.outDir, 'console.log')) : undefined
  }

  if (!p.done.summaryWritten) {
    try {
      await core.summary.addRaw(jobSummary(report, summaryCtx), true).write()
      p.save(STATE_KEYS.summaryWritten, 'true')
    } catch (err) {
      core.info(`no job summary written: ${errorMessage(err)}`)
    }
  }

  const checkRun = p.checkRun ?? actionCheckRun(p.client, context, p.checkRunId)
  if (checkRun !== undefined && !p.done.checkRunCompleted) {
    const output = checkRunOutput(report, summaryCtx)
    if (await checkRun.complete(report, output, annotationContext(p)))
      p.save(STATE_KEYS.checkRunCompleted, 'true')
  }

  if (plan.prComment && !p.done.commentWritten) await commentStep(p, summaryCtx)

  if (
    p.annotate &&
    report.failure !== null &&
    failureKind(report.failure.kind).annotation !== null
  ) {
    const annotations = buildAnnotations(report, annotationContext(p))
    for (const a of annotations.slice(0, WORKFLOW_ANNOTATIONS)) {
      core.error(a.message.split('\n').slice(0, 5).join('\n'), {
        title: a.title,
        file: a.path,
        startLine: a.start_line
      })
    }
  }
  return artifact
}

async function uploadStep(p: PublishInput): Promise<SavedArtifact> {
  const outcome = await uploadEvidence({
    name: p.plan.artifactName,
    outDir: p.plan.outDir,
    retentionDays: p.plan.retentionDays,
    context: p.context,
    env: p.env,
    uploader: p.uploader
  })
  let saved: SavedArtifact
  if (outcome.kind === 'uploaded') {
    core.info(
      `artifact "${p.plan.artifactName}" uploaded (id ${outcome.id}, ${outcome.files.length} files)${outcome.url !== undefined ? `: ${outcome.url}` : ''}`
    )
    saved = { id: outcome.id, url: outcome.url }
  } else if (outcome.kind === 'skipped') {
    core.notice(`artifact not uploaded: ${outcome.reason}`)
    saved = { note: `not uploaded (${outcome.reason})` }
  } else {
    core.warning(`artifact "${p.plan.artifactName}" not uploaded: ${outcome.reason}`)
    saved = {
      note: `upload failed (${outcome.reason.split('\n')[0]}); files in ${p.plan.outDir} on the runner`
    }
  }
  p.save(STATE_KEYS.artifact, JSON.stringify(saved))
  return saved
}

async function commentStep(p: PublishInput, summaryCtx: SummaryContext): Promise<void> {
  const { context } = p
  if (p.client === undefined) {
    core.info('pr-comment: no comment (no github-token, or a local act run)')
    return
  }
  const written = await stickyComment(p.client, context, p.plan.marker, () =>
    commentMarkdown(p.report, summaryCtx)
  )
  if (written) p.save(STATE_KEYS.commentWritten, 'true')
}

/**
 * Creates or updates the pull request's comment carrying `marker` (a leg's, or the roll-up's).
 * Not about a pull request: said in the log. A failure is a warning. True when it was written.
 */
export async function stickyComment(
  client: GitHubClient,
  context: RunContext,
  marker: string,
  markdown: () => string
): Promise<boolean> {
  if (context.prNumber === undefined || context.owner === undefined || context.repo === undefined) {
    core.info(
      `pr-comment: no comment (event "${context.eventName ?? 'unknown'}" is not about a pull request)`
    )
    return false
  }
  try {
    const res = await upsertComment(
      client,
      { owner: context.owner, repo: context.repo, issueNumber: context.prNumber },
      marker,
      markdown()
    )
    core.info(`pull request comment ${res.created ? 'created' : 'updated'} (id ${res.id})`)
    return true
  } catch (err) {
    warn(err)
    return false
  }
}
