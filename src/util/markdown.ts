/**
 * Guest and user text (console and journal lines, check names and outputs, failure messages)
 * rendered as GitHub Markdown: in a fence it is shown as typed, inline it is escaped, and either
 * way it cannot post mentions, links, images or HTML through the action's token.
 */

// Terminal control bytes: shown by no renderer, refused by some APIs (\t and \n stay).
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\x00-\x08\x0b-\x1f\x7f]/g

/**
 * Characters that start Markdown or HTML syntax inline, as numeric character references: a
 * reference is literal text to CommonMark and to HTML alike, so one escape holds in a paragraph,
 * a table cell (`|`) and an HTML block such as `<summary>` (where a backslash would show). An
 * `_` inside a word (x86_64, unit names) cannot emphasize and stays readable.
 */
const INLINE_SYNTAX = /[\\`*[\]<>&|~$]|(?<![\p{L}\p{N}])_|_(?![\p{L}\p{N}])/gu

/**
 * Inline guest text: one line, Markdown and HTML escaped, @mentions broken by a zero-width
 * joiner (GitHub links `@name` only right after a non-word character, so `getty@tty1` stays as
 * is). `#123` references are left: they link, never notify.
 */
export function escapeMarkdown(text: string): string {
  return (
    text
      .replace(/\r?\n|\r/g, ' ')
      .replace(CONTROL_CHARS, '')
      .replace(/(^|[^A-Za-z0-9_])@(?=[A-Za-z0-9])/g, '$1@\u200d')
      .replace(INLINE_SYNTAX, (c) => `&#${c.charCodeAt(0)};`)
      // At the start of a line these begin a heading, a list, a quote or a setext underline.
      .replace(
        /^(\s*)([#+\-=]|\d+[.)])/,
        (_, sp: string, m: string) => `${sp}${m.slice(0, -1)}&#${m.charCodeAt(m.length - 1)};`
      )
  )
}

/**
 * A fenced code block for multi-line guest text: nothing inside a fence is interpreted, and the
 * fence is longer than any backtick run in the text, so no line of it can close the block.
 */
export function fence(text: string, info = 'text'): string {
  const body = text.replace(/\r\n?/g, '\n').replace(CONTROL_CHARS, '')
  const longest = Math.max(2, ...(body.match(/`+/g) ?? []).map((m) => m.length))
  const f = '`'.repeat(longest + 1)
  return `${f}${info}\n${body}\n${f}`
}

/** The fence still open at the end of `md` ('' if none), to close it after a cut. */
export function openFence(md: string): string {
  let open = ''
  for (const line of md.split('\n')) {
    const m = /^ {0,3}(`{3,}|~{3,})(.*)$/.exec(line)
    if (m === null) continue
    if (open === '') {
      if (!(m[1][0] === '`' && m[2].includes('`'))) open = m[1]
    } else if (m[1][0] === open[0] && m[1].length >= open.length && m[2].trim() === '') open = ''
  }
  return open
}

/** The longest start of `text` within `maxBytes` of UTF-8; never half a character. */
export function utf8Prefix(text: string, maxBytes: number): string {
  const buf = Buffer.from(text)
  if (buf.length <= maxBytes) return text
  let end = Math.max(0, maxBytes)
  // Step back to the start of a UTF-8 sequence (continuation bytes are 10xxxxxx); a surrogate
  // pair is one 4-byte sequence, so it is never split either.
  while (end > 0 && (buf[end] & 0xc0) === 0x80) end--
  return buf.subarray(0, end).toString()
}

/** At most `maxBytes` of UTF-8, `mark` included when cut. */
export function cutBytes(text: string, maxBytes: number, mark: string): string {
  if (Buffer.byteLength(text) <= maxBytes) return text
  const markBytes = Buffer.byteLength(mark)
  if (markBytes >= maxBytes) return utf8Prefix(text, maxBytes)
  return utf8Prefix(text, maxBytes - markBytes) + mark
}

/** Whole lines are kept when the cut falls within this many bytes of a line end. */
const LINE_SLACK = 2048

/**
 * Like cutBytes, for Markdown: cut at a line end when one is near, and close a fence the cut
 * left open, so the mark renders as text after the code instead of inside it.
 */
export function cutMarkdown(md: string, maxBytes: number, mark: string): string {
  if (Buffer.byteLength(md) <= maxBytes) return md
  let budget = maxBytes - Buffer.byteLength(mark)
  while (budget > 0) {
    let head = utf8Prefix(md, budget)
    const nl = head.lastIndexOf('\n')
    if (nl >= 0 && Buffer.byteLength(head.slice(nl)) <= LINE_SLACK) head = head.slice(0, nl)
    const open = openFence(head)
    const out = `${head}${open !== '' ? `\n${open}` : ''}${mark}`
    const over = Buffer.byteLength(out) - maxBytes
    if (over <= 0) return out
    budget -= over
  }
  return utf8Prefix(mark, maxBytes)
}

/** The first `max` UTF-16 units of `text`, without leaving half a surrogate pair. */
export function sliceChars(text: string, max: number): string {
  if (text.length <= max) return text
  const end = max > 0 && isHighSurrogate(text.charCodeAt(max - 1)) ? max - 1 : max
  return text.slice(0, end)
}

/** The last `max` UTF-16 units of `text`, without leaving half a surrogate pair. */
export function sliceCharsEnd(text: string, max: number): string {
  if (text.length <= max) return text
  let start = text.length - max
  if (isLowSurrogate(text.charCodeAt(start))) start++
  return text.slice(start)
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff
}
