import { isAbsolute, relative, sep } from 'node:path'
import { failureKind, type AnnotationPlace } from '../report/failure.js'
import type { Report } from '../report/model.js'
import { LIMITS, truncateBytes, truncateTitle } from './limits.js'

/** One check-run annotation (GitHub's `output.annotations[]` item). */
export interface Annotation {
  path: string
  start_line: number
  end_line: number
  annotation_level: 'notice' | 'warning' | 'failure'
  message: string
  title?: string
  raw_details?: string
}

export interface AnnotationContext {
  /** GITHUB_WORKSPACE: absolute paths under it become repository paths. */
  workspace: string
  /** The checks file, where a failed check without its own position is pinned. */
  checksFile?: string
  /** The workflow file (from GITHUB_WORKFLOW_REF), the next fallback. */
  workflowFile?: string
}

/** More would be noise, and each 50 is one more API request. */
export const MAX_ANNOTATIONS = 500

/** A path as GitHub wants it: relative to the repository root, forward slashes. */
export function repoPath(path: string, workspace: string): string {
  if (!isAbsolute(path)) return path.replace(/^\.\//, '').split(sep).join('/')
  const rel = relative(workspace, path)
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) return path.replace(/^\/+/, '')
  return rel.split(sep).join('/')
}

/**
 * Where an annotation without its own position goes: a failed check on the checks file that
 * declared it; anything else (the setup, the build, the boot) on the workflow that ran the step.
 */
function fallbackPath(c: AnnotationContext, of: NonNullable<AnnotationPlace>): string {
  if (of === 'checks-file' && c.checksFile !== undefined) return repoPath(c.checksFile, c.workspace)
  return c.workflowFile ?? 'action.yml'
}

function firstLines(text: string, n: number): string {
  const lines = text.trim().split('\n')
  return lines.length <= n
    ? lines.join('\n')
    : [...lines.slice(0, n), `… (${lines.length - n} more lines)`].join('\n')
}

function position(
  file: string | undefined,
  line: number | undefined,
  c: AnnotationContext,
  of: NonNullable<AnnotationPlace>
): { path: string; line: number } {
  if (file !== undefined && file !== '') {
    return {
      path: repoPath(file, c.workspace),
      line: line !== undefined && line >= 1 ? Math.floor(line) : 1
    }
  }
  return { path: fallbackPath(c, of), line: 1 }
}

/**
 * Failed checks (at their file/line when the check carries one, else on the checks file or the
 * workflow, line 1), plus the run's failure when no failed check stands for it (a panic, a boot
 * timeout, a build error with its own file/line).
 */
export function buildAnnotations(r: Report, c: AnnotationContext): Annotation[] {
  const out: Annotation[] = []
  let failureCovered = false
  for (const stage of r.stages) {
    for (const check of stage.checks) {
      if (check.status !== 'failed') continue
      if (r.failure !== null && r.failure.stage === stage.name && r.failure.check === check.name)
        failureCovered = true
      const at = position(check.file, check.line, c, 'checks-file')
      const output = check.output.trim()
      out.push({
        path: at.path,
        start_line: at.line,
        end_line: at.line,
        annotation_level: 'failure',
        title: truncateTitle(`${stage.name}: ${check.name}`),
        message: truncateBytes(
          output !== '' ? firstLines(output, 20) : `check "${check.name}" failed`,
          LIMITS.annotationTextBytes
        ),
        ...(output !== '' ? { raw_details: truncateBytes(output, LIMITS.annotationTextBytes) } : {})
      })
    }
  }
  const f = r.failure
  const place = f !== null ? failureKind(f.kind).annotation : null
  if (f !== null && !failureCovered && place !== null) {
    const at = position(f.file, f.line, c, place)
    out.unshift({
      path: at.path,
      start_line: at.line,
      end_line: at.line,
      annotation_level: 'failure',
      title: truncateTitle(`${f.kind} in stage ${f.stage} (${r.system})`),
      message: truncateBytes(f.message, LIMITS.annotationTextBytes),
      ...(f.excerpt.trim() !== ''
        ? { raw_details: truncateBytes(f.excerpt, LIMITS.annotationTextBytes) }
        : {})
    })
  }
  return out.slice(0, MAX_ANNOTATIONS)
}

/** Splits into the 50-per-request batches the Checks API accepts. */
export function batches<T>(items: T[], size: number = LIMITS.annotationsPerRequest): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}
