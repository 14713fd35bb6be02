/** GitHub's size limits for what the action posts (field-notes.md, "Reporting"). */
export const LIMITS = {
  /** Job summary: 1 MiB per step (GITHUB_STEP_SUMMARY). */
  stepSummaryBytes: 1024 * 1024,
  /** Check run `output.summary` and `output.text`: 65,535 characters each. */
  checkRunText: 65_535,
  /** Annotations per check run create/update request. */
  annotationsPerRequest: 50,
  /** An annotation's `message` / `raw_details`: 64 KB. */
  annotationText: 64 * 1024 - 1,
  /** An issue comment body: 65,536 characters. */
  commentBody: 65_536
} as const

const CUT_MARK = '\n\n… (cut to stay within GitHub’s size limit)\n'

/** Cuts `text` to at most `max` UTF-16 units (never inside a surrogate pair), marking the cut. */
export function truncateChars(text: string, max: number): string {
  if (text.length <= max) return text
  let end = Math.max(0, max - CUT_MARK.length)
  if (end > 0 && isHighSurrogate(text.charCodeAt(end - 1))) end--
  return text.slice(0, end) + CUT_MARK
}

/** Cuts `text` to at most `max` UTF-8 bytes (never inside a character), marking the cut. */
export function truncateBytes(text: string, max: number): string {
  const buf = Buffer.from(text)
  if (buf.length <= max) return text
  let end = Math.max(0, max - Buffer.byteLength(CUT_MARK))
  // Step back to the start of a UTF-8 sequence (continuation bytes are 10xxxxxx).
  while (end > 0 && (buf[end] & 0xc0) === 0x80) end--
  return buf.subarray(0, end).toString() + CUT_MARK
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff
}
