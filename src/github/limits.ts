import { cutBytes, cutMarkdown } from '../util/markdown.js'

/**
 * GitHub's size limits for what the action posts (docs/faults.md lists them). GitHub counts
 * them in UTF-8 bytes and answers HTTP 422 past them, so every field is measured and cut in bytes
 * (a byte count is never below the character count, whichever way characters are counted).
 */
export const LIMITS = {
  /** Job summary: 1 MiB per step (GITHUB_STEP_SUMMARY). */
  stepSummaryBytes: 1024 * 1024,
  /** Check run `output.summary` and `output.text`: 65,535 bytes each. */
  checkRunTextBytes: 65_535,
  /** Annotations per check run create/update request. */
  annotationsPerRequest: 50,
  /** An annotation's `message` / `raw_details`: 64 KB. */
  annotationTextBytes: 65_535,
  /** Check run and annotation titles: 255 characters. */
  titleBytes: 255,
  /** An issue comment body: 65,536 characters. */
  commentBodyBytes: 65_536
} as const

const CUT_MARK = '\n\n… (cut to stay within GitHub’s size limit)\n'

/** Plain text (annotations) cut to at most `maxBytes` of UTF-8, the mark inside the budget. */
export function truncateBytes(text: string, maxBytes: number, mark: string = CUT_MARK): string {
  return cutBytes(text, maxBytes, mark)
}

/** A one-line title cut to GitHub's 255. */
export function truncateTitle(text: string): string {
  return cutBytes(text.replace(/\s*\n\s*/g, ' '), LIMITS.titleBytes, '…')
}

/** Markdown (check run output, comment, job summary) cut to at most `maxBytes`; an open fence is closed. */
export function truncateMarkdown(md: string, maxBytes: number): string {
  return cutMarkdown(md, maxBytes, CUT_MARK)
}
