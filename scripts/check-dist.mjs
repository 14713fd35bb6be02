// Fails when dist/ differs from a fresh build of src/ (GitHub runs dist/, so it must be current).
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'

const fresh = mkdtempSync(join(tmpdir(), 'nvv-dist-'))
try {
  execFileSync('node', ['scripts/package.mjs'], {
    stdio: 'inherit',
    env: { ...process.env, PACKAGE_OUT: fresh }
  })
  const list = (root) => {
    const out = []
    const walk = (d) => {
      for (const n of readdirSync(d)) {
        const p = join(d, n)
        if (statSync(p).isDirectory()) walk(p)
        else out.push(relative(root, p))
      }
    }
    walk(root)
    return out.sort()
  }
  const a = list('dist')
  const b = list(fresh)
  const diffs = []
  for (const f of new Set([...a, ...b])) {
    if (!a.includes(f)) diffs.push(`missing in dist/: ${f}`)
    else if (!b.includes(f)) diffs.push(`stale file in dist/: ${f}`)
    else if (!readFileSync(join('dist', f)).equals(readFileSync(join(fresh, f))))
      diffs.push(`differs: dist/${f}`)
  }
  if (diffs.length > 0) {
    console.error(
      `dist/ does not match a fresh build of src/ — run "npm run package" and commit dist/:\n  ${diffs.join('\n  ')}`
    )
    process.exit(1)
  }
  console.log(`dist/ matches a fresh build (${a.length} files)`)
} finally {
  rmSync(fresh, { recursive: true, force: true })
}
