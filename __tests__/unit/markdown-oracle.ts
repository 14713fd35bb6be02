/**
 * What GitHub would make of rendered Markdown, as far as the unit tests need it: which text is
 * inside fenced code blocks (shown as typed) and which is interpreted (CommonMark's fence rules,
 * written here apart from the code under test).
 */
import { expect } from '@jest/globals'

/** Guest text that tries to mention, link, embed, inject HTML and break out of a fence. */
export const HOSTILE = [
  '@octocat look here',
  '<img src=x onerror=alert(1)>',
  '[click](https://evil)',
  '![x](https://evil/x.png)',
  '```',
  '``````',
  '</details><script>alert(1)</script>',
  '| a | b | @org/team $\\Huge{x}$'
].join('\n')

/** [interpreted text, code text] of a Markdown document. */
export function splitFences(md: string): [string, string] {
  const outside: string[] = []
  const inside: string[] = []
  let open: string | undefined
  for (const line of md.split('\n')) {
    if (open === undefined) {
      const m = /^ {0,3}(`{3,}|~{3,})(.*)$/.exec(line)
      if (m !== null && !(m[1][0] === '`' && m[2].includes('`'))) open = m[1]
      else outside.push(line)
      continue
    }
    const close = /^ {0,3}(`{3,}|~{3,})[ \t]*$/.exec(line)
    if (close !== null && close[1][0] === open[0] && close[1].length >= open.length)
      open = undefined
    else inside.push(line)
  }
  // An unclosed fence runs to the end of the document: still code.
  return [outside.join('\n'), inside.join('\n')]
}

/** Nothing of the guest's reaches GitHub as a mention, link, image, HTML or math. */
export function expectNeutral(md: string): void {
  const [text] = splitFences(md)
  // GitHub links @name (and @org/team) right after a non-word character.
  expect(text).not.toMatch(/(^|[^A-Za-z0-9_])@[A-Za-z0-9]/)
  // Only the renderer's own tags: <details>, <summary>, <sub>, and the sticky marker comment.
  expect(text).not.toMatch(/<(?!\/?(details|summary|sub)\b|!-- nixos-vm-validate:)/)
  expect(text).not.toContain('[click](')
  expect(text).not.toContain('![x](')
  expect(text).not.toContain('$\\Huge')
  expect(text).not.toContain('| a | b |')
}
