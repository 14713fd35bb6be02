/**
 * The committed bundle (dist/, built by scripts/package.mjs; check-dist proves it is current):
 * one ES-module bundle whose three entries share chunks, no binaries, and the heavy clients
 * (artifact upload, Actions cache, Octokit) outside what an entry loads before it runs — they
 * are imported dynamically on the paths that use them. Cold-start time is measured by
 * `npm run bench` (part E), not here.
 */
import { describe, expect, it } from '@jest/globals'
import { execFileSync } from 'node:child_process'
import { readFileSync, readdirSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const DIST = join(ROOT, 'dist')

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n)
    return statSync(p).isDirectory() ? files(p) : [p]
  })
}

/** The files `entry` imports statically, transitively (what Node loads before the entry runs). */
function staticClosure(entry: string): string[] {
  const seen = new Set<string>()
  const visit = (f: string): void => {
    if (seen.has(f)) return
    seen.add(f)
    const text = readFileSync(f, 'utf8')
    for (const m of text.matchAll(
      /(?:^|[;\n}])\s*import\s*(?:[\w*{}\s,$]*from\s*)?["'](\.[^"']+)["']/g
    ))
      visit(join(dirname(f), m[1] ?? ''))
  }
  visit(entry)
  return [...seen].map((f) => relative(DIST, f)).sort()
}

/** Text only the named client's code contains. */
const HEAVY = {
  '@actions/artifact': 'github.actions.results.api.v1.ArtifactService',
  '@actions/cache': 'Cache Service Url not found',
  Octokit: 'octokit-core.js'
}

describe('dist/', () => {
  const all = files(DIST).map((f) => relative(DIST, f))

  it('is one bundle: three entries over shared chunks, no binaries, ≤ 4 MB of JavaScript', () => {
    expect(all.filter((f) => f.endsWith('index.js')).sort()).toEqual([
      'cli/index.js',
      'main/index.js',
      'post/index.js'
    ])
    expect(all.filter((f) => !/\.(js|txt|json)$/.test(f))).toEqual([])
    const js = all.filter((f) => f.endsWith('.js'))
    const bytes = js.reduce((n, f) => n + statSync(join(DIST, f)).size, 0)
    expect(bytes).toBeLessThanOrEqual(4_000_000)
    // Shared code lives once: main and post load the same chunks.
    const main = staticClosure(join(DIST, 'main/index.js'))
    const post = staticClosure(join(DIST, 'post/index.js'))
    expect(post.filter((f) => f.startsWith('chunks/')).every((f) => main.includes(f))).toBe(true)
  })

  it.each(['main', 'post', 'cli'])(
    '%s loads no artifact, cache or Octokit code before it runs',
    (entry) => {
      const loaded = staticClosure(join(DIST, entry, 'index.js'))
      const found = Object.entries(HEAVY)
        .filter(([, marker]) =>
          loaded.some((f) => readFileSync(join(DIST, f), 'utf8').includes(marker))
        )
        .map(([name]) => name)
      expect(found).toEqual([])
    }
  )

  it('still has each heavy client, in a chunk of its own reached by import()', () => {
    for (const marker of Object.values(HEAVY)) {
      const holders = all.filter(
        (f) => f.endsWith('.js') && readFileSync(join(DIST, f), 'utf8').includes(marker)
      )
      expect(holders.length).toBe(1)
    }
    const dynamic = all
      .filter((f) => f.endsWith('.js'))
      .some((f) =>
        /\bimport\(["']\.\.?\/[^"']*artifact-[\w-]+\.js["']\)/.test(
          readFileSync(join(DIST, f), 'utf8')
        )
      )
    expect(dynamic).toBe(true)
  })

  it('every chunk loads in a plain Node process (one declaration too many fails only at import)', () => {
    const chunks = all
      .filter((f) => f.startsWith('chunks/'))
      .map((f) => pathToFileURL(join(DIST, f)).href)
    const script = `for (const c of ${JSON.stringify(chunks)}) await import(c); console.log('loaded')`
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8'
    })
    expect(out.trim()).toBe('loaded')
  })

  it('ships the licences of what it bundles', () => {
    const text = readFileSync(join(DIST, 'licenses.txt'), 'utf8')
    for (const name of ['@actions/core@', 'ssh2@', 'yaml@', '@actions/artifact@'])
      expect(text).toContain(name)
  })
})
