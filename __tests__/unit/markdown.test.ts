import { describe, expect, it } from '@jest/globals'
import {
  cutBytes,
  cutMarkdown,
  escapeMarkdown,
  fence,
  openFence,
  sliceChars,
  utf8Prefix
} from '../../src/util/markdown.js'
import { truncateBytes, truncateMarkdown, truncateTitle } from '../../src/github/limits.js'
import { clip } from '../../src/report/render.js'
import { HOSTILE, expectNeutral, splitFences } from './markdown-oracle.js'

const loneSurrogate = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

describe('escapeMarkdown (inline guest text)', () => {
  it('neutralizes mentions, links, images, HTML, math and table cells', () => {
    const out = escapeMarkdown(HOSTILE)
    expect(out).not.toContain('\n')
    expectNeutral(out)
    expect(out).toContain('@\u200doctocat')
    expect(out).toContain('@\u200dorg/team')
    expect(out).toContain('&#60;img src=x onerror=alert(1)&#62;')
    expect(out).toContain('&#91;click&#93;(https://evil)')
    expect(out).toContain('!&#91;x&#93;(https://evil/x.png)')
  })

  it('leaves what links nobody: systemd template units, e-mail, #123, plain words', () => {
    expect(escapeMarkdown('getty@tty1.service failed, see #123')).toBe(
      'getty@tty1.service failed, see #123'
    )
    expect(escapeMarkdown('root@localhost')).toBe('root@localhost')
    expect(escapeMarkdown('(x86-64) nvim: not found')).toBe('(x86-64) nvim: not found')
    // An `_` inside a word cannot emphasize; at a word's edge it could.
    expect(escapeMarkdown('x86_64 nix_daemon _em_ a_')).toBe(
      'x86_64 nix_daemon &#95;em&#95; a&#95;'
    )
  })

  it('a leading heading, list or quote marker stays text', () => {
    expect(escapeMarkdown('# big')).toBe('&#35; big')
    expect(escapeMarkdown('- item')).toBe('&#45; item')
    expect(escapeMarkdown('12. item')).toBe('12&#46; item')
    expect(escapeMarkdown('> quote')).toBe('&#62; quote')
    expect(escapeMarkdown('a - b')).toBe('a - b')
  })

  it('drops control bytes and joins lines', () => {
    expect(escapeMarkdown('a\r\nb\x1b[31mc\x00')).toBe('a b&#91;31mc')
  })
})

describe('fence (multi-line guest text)', () => {
  it('no line of the text closes the fence; the text inside is as typed', () => {
    const md = `before\n\n${fence(HOSTILE)}\n\nafter`
    const [text, code] = splitFences(md)
    expect(text).toBe('before\n\n\nafter')
    expect(code).toBe(HOSTILE)
    expect(fence('x')).toBe('```text\nx\n```')
    expect(fence('a ```` b').startsWith('`````text\n')).toBe(true)
    expect(openFence(md)).toBe('')
    expect(openFence(md.slice(0, md.indexOf('@octocat')))).toBe('```````')
  })
})

describe('byte cuts', () => {
  it('utf8Prefix never splits a character or a surrogate pair', () => {
    const s = 'a€😀é'
    for (let n = 0; n <= Buffer.byteLength(s); n++) {
      const p = utf8Prefix(s, n)
      expect(Buffer.byteLength(p)).toBeLessThanOrEqual(n)
      expect(s.startsWith(p)).toBe(true)
      expect(p).not.toMatch(loneSurrogate)
    }
    expect(utf8Prefix(s, 5)).toBe('a€')
  })

  it('the mark is inside the budget, whatever the text', () => {
    for (const max of [1, 3, 10, 60, 255, 1000]) {
      const t = truncateBytes('😀'.repeat(500), max)
      expect(Buffer.byteLength(t)).toBeLessThanOrEqual(max)
      expect(t).not.toMatch(loneSurrogate)
    }
    expect(truncateBytes('😀'.repeat(500), 1000)).toMatch(/cut to stay within GitHub’s size limit/)
    expect(cutBytes('abc', 3, '…')).toBe('abc')
    const title = truncateTitle(`Failed: ${'✅'.repeat(300)}\nsecond line`)
    expect(Buffer.byteLength(title)).toBeLessThanOrEqual(255)
    expect(title.endsWith('…')).toBe(true)
    expect(title).not.toContain('\n')
  })

  it('a Markdown cut closes the fence it falls in, so the mark is text', () => {
    const md = `# Report\n\n${fence(Array.from({ length: 2000 }, (_, i) => `‼ line ${i} ✗`).join('\n'))}\n\nend`
    const cut = truncateMarkdown(md, 10_000)
    expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(10_000)
    expect(openFence(cut)).toBe('')
    const [text, code] = splitFences(cut)
    expect(text).toMatch(/cut to stay within GitHub’s size limit/)
    expect(code).not.toMatch(/cut to stay/)
    // Whole lines only when a line end is near.
    expect(code.split('\n').at(-1)).toMatch(/^‼ line \d+ ✗$/)
    expect(cutMarkdown('x'.repeat(100), 5, '[cut]')).toBe('[cut]')
    expect(cutMarkdown('x'.repeat(100), 3, '[cut]')).toBe('[cu')
  })

  it('character slices keep surrogate pairs whole', () => {
    expect(sliceChars('a😀', 2)).toBe('a')
    expect(clip('😀'.repeat(10), 5)).not.toMatch(loneSurrogate)
    expect(clip('abcdef', 3)).toBe('… (3 characters cut)\ndef')
  })
})
