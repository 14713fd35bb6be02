import { mkdir, mkdtemp, readdir, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as core from '@actions/core'
import { artifactUrl, sanitizeArtifactName } from '../github/artifact.js'
import { completeCheckRun, reportingWarning, startCheckRun } from '../github/check-run.js'
import type { GitHubClient } from '../github/client.js'
import { runUrl, type RunContext } from '../github/context.js'
import { LIMITS, truncateMarkdown } from '../github/limits.js'
import { HOME_CONSISTENCY_FILE, type HomeConsistency } from '../home/model.js'
import type { Report } from '../report/model.js'
import { collectRollUp, LEG_ARTIFACT_PREFIX, type CollectedArtifact } from '../rollup/collect.js'
import type { RollUp } from '../rollup/model.js'
import { renderRollUp, rollUpTitle } from '../rollup/render.js'
import { errorMessage } from '../util/errors.js'
import type { RollUpInputs } from './inputs.js'
import { githubClientFor, stickyComment } from './publish.js'

/** The one check run of the roll-up (the `check-name` input overrides it). */
export const ROLL_UP_CHECK_NAME = 'VM validation (all legs)'
/** The roll-up's sticky comment: one per pull request, apart from any leg's. */
export const ROLL_UP_MARKER = '<!-- nixos-vm-validate roll-up -->'

/** The part of DefaultArtifactClient the roll-up uses (tests inject their own). */
export interface ArtifactDownloader {
  listArtifacts(options?: {
    latest?: boolean
  }): Promise<{ artifacts: { name: string; id: number }[] }>
  downloadArtifact(
    artifactId: number,
    options?: { path?: string }
  ): Promise<{ downloadPath?: string }>
}

/** Whether the roll-up downloads an artifact: a leg's, or a Home Manager consistency one. */
export function wanted(name: string): boolean {
  return name.startsWith(LEG_ARTIFACT_PREFIX) || name.includes('home-consistency')
}

/** `name` in `dir` or a folder below it (at most `depth` levels down). */
async function findFile(dir: string, name: string, depth = 3): Promise<string | undefined> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => [])
  if (entries.some((e) => e.isFile() && e.name === name)) return join(dir, name)
  if (depth === 0) return undefined
  for (const e of entries
    .filter((x) => x.isDirectory())
    .sort((a, b) => a.name.localeCompare(b.name))) {
    const hit = await findFile(join(dir, e.name), name, depth - 1)
    if (hit !== undefined) return hit
  }
  return undefined
}

async function readJson<T>(path: string, valid: (v: unknown) => boolean, what: string): Promise<T> {
  const v: unknown = JSON.parse(await readFile(path, 'utf8'))
  if (!valid(v)) throw new Error(`${path} is not ${what}`)
  return v as T
}

const isReport = (v: unknown): boolean =>
  typeof v === 'object' &&
  v !== null &&
  (v as Report).schemaVersion === 1 &&
  Array.isArray((v as Report).stages)
const isHome = (v: unknown): boolean =>
  typeof v === 'object' &&
  v !== null &&
  Array.isArray((v as HomeConsistency).homes) &&
  Array.isArray((v as HomeConsistency).differences)

/** What one downloaded artifact holds: its report.json and/or home-consistency.json. */
export async function readArtifactDir(
  dir: string
): Promise<Pick<CollectedArtifact, 'report' | 'home' | 'error'>> {
  const out: Pick<CollectedArtifact, 'report' | 'home' | 'error'> = {}
  try {
    const report = await findFile(dir, 'report.json')
    if (report !== undefined)
      out.report = await readJson<Report>(report, isReport, 'a nixos-vm-validate report.json')
    const home = await findFile(dir, HOME_CONSISTENCY_FILE)
    if (home !== undefined)
      out.home = await readJson<HomeConsistency>(home, isHome, `a ${HOME_CONSISTENCY_FILE}`)
  } catch (err) {
    out.error = errorMessage(err)
  }
  if (out.report === undefined && out.home === undefined && out.error === undefined)
    out.error = `the artifact holds no report.json or ${HOME_CONSISTENCY_FILE}`
  return out
}

/** Lists the run's artifacts, downloads the legs' and the Home Manager ones, and reads them. */
export async function collectArtifacts(
  client: ArtifactDownloader,
  root: string,
  ctx: RunContext
): Promise<CollectedArtifact[]> {
  const { artifacts } = await client.listArtifacts({ latest: true })
  const picked = artifacts
    .filter((a) => wanted(a.name))
    .sort((a, b) => a.name.localeCompare(b.name))
  core.info(
    `roll-up: ${artifacts.length} artifact(s) in this run, ${picked.length} to read: ${picked.map((a) => a.name).join(', ') || 'none'}`
  )
  const out: CollectedArtifact[] = []
  for (const a of picked) {
    const url = artifactUrl(ctx, a.id)
    const base = { name: a.name, id: a.id, ...(url !== undefined ? { url } : {}) }
    const dir = join(root, `${a.id}-${sanitizeArtifactName(a.name)}`)
    try {
      await mkdir(dir, { recursive: true })
      const res = await client.downloadArtifact(a.id, { path: dir })
      out.push({ ...base, ...(await readArtifactDir(res.downloadPath ?? dir)) })
    } catch (err) {
      core.warning(`roll-up: artifact "${a.name}" (id ${a.id}) not read: ${errorMessage(err)}`)
      out.push({ ...base, error: `download failed: ${errorMessage(err)}` })
    }
  }
  return out
}

export interface RollUpRun {
  inputs: RollUpInputs
  ctx: RunContext
  /** Default: @actions/artifact's DefaultArtifactClient (the current run's artifacts). */
  artifacts?: ArtifactDownloader
  /** Default: a client for `inputs.githubToken` (none without a token, or under act). */
  github?: GitHubClient
  tempRoot?: string
  env?: NodeJS.ProcessEnv
}

async function defaultDownloader(env: NodeJS.ProcessEnv): Promise<ArtifactDownloader | undefined> {
  if (!env.ACTIONS_RUNTIME_TOKEN || !env.ACTIONS_RESULTS_URL) {
    core.warning(
      'roll-up: no artifact service here (ACTIONS_RUNTIME_TOKEN/ACTIONS_RESULTS_URL unset: act without --artifact-server-path, or a local run); no leg can be read'
    )
    return undefined
  }
  return new (await import('@actions/artifact')).DefaultArtifactClient()
}

/** Every artifact of the run read, or none (warned) when listing them failed. */
async function readRun(o: RollUpRun): Promise<CollectedArtifact[]> {
  const env = o.env ?? process.env
  const client = o.artifacts ?? (await defaultDownloader(env))
  if (client === undefined) return []
  const root = await mkdtemp(join(o.tempRoot ?? (env.RUNNER_TEMP || tmpdir()), 'nvv-rollup-'))
  try {
    return await collectArtifacts(client, root, o.ctx)
  } catch (err) {
    core.warning(`roll-up: listing the run's artifacts failed: ${errorMessage(err)}`)
    return []
  }
}

/**
 * `mode: roll-up`: boots nothing. Reads every leg's report.json (and the Home Manager
 * consistency) from the run's artifacts and publishes one verdict: the job summary, one check
 * run, one sticky pull request comment; fails the step unless every leg passed.
 */
export async function runRollUp(o: RollUpRun): Promise<RollUp> {
  const r = collectRollUp(await readRun(o), o.inputs.legs)
  const md = renderRollUp(r, { runUrl: runUrl(o.ctx) })
  try {
    await core.summary.addRaw(truncateMarkdown(md, LIMITS.stepSummaryBytes), true).write()
  } catch (err) {
    core.info(`no job summary written: ${errorMessage(err)}`)
  }
  const client = o.github ?? (await githubClientFor(o.inputs.githubToken, o.ctx))
  if (client !== undefined) {
    await rollUpCheckRun(client, o, r, md)
    if (o.inputs.prComment) await rollUpComment(client, o.ctx, md)
  }
  core.setOutput('conclusion', r.conclusion)
  const title = rollUpTitle(r)
  if (r.conclusion !== 'success') core.setFailed(`VM validation roll-up: ${title}`)
  else core.info(`VM validation roll-up: ${title}`)
  return r
}

async function rollUpCheckRun(
  client: GitHubClient,
  o: RollUpRun,
  r: RollUp,
  md: string
): Promise<void> {
  const { ctx } = o
  if (ctx.owner === undefined || ctx.repo === undefined || ctx.headSha === undefined) return
  const repo = { owner: ctx.owner, repo: ctx.repo }
  const name = o.inputs.checkName ?? ROLL_UP_CHECK_NAME
  try {
    const details = runUrl(ctx)
    const id = await startCheckRun(client, {
      ...repo,
      headSha: ctx.headSha,
      name,
      externalId: 'roll-up',
      ...(details !== undefined ? { detailsUrl: details } : {})
    })
    core.setOutput('check-run-id', id)
    await completeCheckRun(
      client,
      repo,
      id,
      r.conclusion,
      { title: rollUpTitle(r), summary: md },
      []
    )
    core.info(`check run ${id} "${name}" completed: ${r.conclusion}`)
  } catch (err) {
    core.warning(reportingWarning(err, 'GitHub reporting'))
  }
}

async function rollUpComment(client: GitHubClient, ctx: RunContext, md: string): Promise<void> {
  await stickyComment(client, ctx, ROLL_UP_MARKER, () => md)
}
