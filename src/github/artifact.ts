import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { UploadArtifactOptions } from '@actions/artifact'
import { errorMessage } from '../util/errors.js'
import type { RunContext } from './context.js'

/** Characters @actions/artifact rejects in a name (NTFS-safe names). */
export const FORBIDDEN_ARTIFACT_NAME_CHARS = [
  '"',
  ':',
  '<',
  '>',
  '|',
  '*',
  '?',
  '\r',
  '\n',
  '\\',
  '/'
]

/** Any character outside [A-Za-z0-9._-] becomes "-", runs of "-" collapse. */
export function sanitizeArtifactName(name: string): string {
  return name
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/-{2,}/g, '-')
    .replace(/^[-.]+|[-.]+$/g, '')
}

/**
 * `vm-validation-<configuration or runner name>-<system>-<attempt>`: distinct per matrix leg
 * (artifacts v2 answers 409 to a name reused within a run) and per re-run attempt. A leg that
 * emulates its guest's architecture gets `-emulated`, so a native and an emulated leg of the same
 * configuration and system do not collide.
 */
export function defaultArtifactName(p: {
  subject: string
  system: string
  attempt: string
  emulated: boolean
}): string {
  return sanitizeArtifactName(
    `vm-validation-${p.subject}-${p.system}${p.emulated ? '-emulated' : ''}-${p.attempt}`
  )
}

export type UploadOutcome =
  | { kind: 'uploaded'; id: number; url?: string; files: string[] }
  | { kind: 'skipped'; reason: string }
  | { kind: 'failed'; reason: string }

/** The part of DefaultArtifactClient used here (tests inject their own). */
export interface ArtifactUploader {
  uploadArtifact(
    name: string,
    files: string[],
    rootDirectory: string,
    options?: UploadArtifactOptions
  ): Promise<{ id?: number; size?: number }>
}

export interface UploadRequest {
  name: string
  outDir: string
  retentionDays?: number
  context: RunContext
  env?: NodeJS.ProcessEnv
  uploader?: ArtifactUploader
}

/**
 * Uploads every file of the run's output directory (console log, screenshots, report.json,
 * junit.xml, journal). Never throws: a failed upload is reported to the caller as a warning,
 * a missing runtime token (act without --artifact-server-path, a local run) as a skip.
 */
export async function uploadEvidence(r: UploadRequest): Promise<UploadOutcome> {
  const env = r.env ?? process.env
  if (!env.ACTIONS_RUNTIME_TOKEN || !env.ACTIONS_RESULTS_URL) {
    return {
      kind: 'skipped',
      reason: `no artifact service here (ACTIONS_RUNTIME_TOKEN${env.ACTIONS_RESULTS_URL ? '' : '/ACTIONS_RESULTS_URL'} unset: act without --artifact-server-path, or a local run); the files stay in ${r.outDir}`
    }
  }
  let files: string[]
  try {
    files = await listFiles(r.outDir)
  } catch (err) {
    return { kind: 'failed', reason: `cannot list ${r.outDir}: ${errorMessage(err)}` }
  }
  if (files.length === 0)
    return { kind: 'skipped', reason: `nothing to upload: ${r.outDir} is empty` }
  try {
    // Loaded here only: a run that uploads nothing never loads the artifact client.
    const uploader = r.uploader ?? new (await import('@actions/artifact')).DefaultArtifactClient()
    const res = await uploader.uploadArtifact(r.name, files, r.outDir, {
      ...(r.retentionDays !== undefined ? { retentionDays: r.retentionDays } : {})
    })
    if (res.id === undefined)
      return { kind: 'failed', reason: 'the artifact service returned no artifact id' }
    return {
      kind: 'uploaded',
      id: res.id,
      url: artifactUrl(r.context, res.id),
      files: files.map((f) => f.slice(r.outDir.length + 1))
    }
  } catch (err) {
    return { kind: 'failed', reason: errorMessage(err) }
  }
}

/** Where a person downloads it: the run page's artifact link (what upload-artifact prints). */
export function artifactUrl(c: RunContext, id: number): string | undefined {
  if (c.owner === undefined || c.repo === undefined || c.runId === undefined) return undefined
  return `${c.serverUrl}/${c.owner}/${c.repo}/actions/runs/${c.runId}/artifacts/${id}`
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const name of (await readdir(dir)).sort()) {
    const p = join(dir, name)
    const s = await stat(p)
    if (s.isFile()) out.push(p)
    else if (s.isDirectory()) out.push(...(await listFiles(p)))
  }
  return out
}
