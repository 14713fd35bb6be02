// Bundles the action's entry points (main, post) and the CLI with esbuild into one ES-module bundle:
// dist/{main,post,cli}/index.js are small entries over shared chunks in dist/chunks/. The heavy
// dependencies (@actions/artifact, @actions/cache, Octokit) are imported dynamically where they are
// used, so they land in chunks of their own that a dry run, a CLI run or a post step without
// publishing never loads. dist/licenses.txt lists every bundled package with its licence text.
//
//   node scripts/package.mjs          → dist/   (PACKAGE_OUT=DIR builds elsewhere: check-dist)
import { build } from 'esbuild'
import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'

const outRoot = process.env.PACKAGE_OUT ?? 'dist'
const entryPoints = {
  'main/index': 'src/main.ts',
  'post/index': 'src/post.ts',
  'cli/index': 'src/cli/index.ts'
}

// CommonJS dependencies call require() for Node's built-ins and ssh2's helpers use __dirname; an ES
// module has neither, so every output file starts with them. esbuild never declares a top-level
// `require` of its own (it renames one), but bundled ES modules may declare `__filename` and
// `__dirname` (Azure's crc64 does): ours get private names, and `define` points the free
// references of CommonJS code at them.
const SHIM = [
  "import { createRequire as __nvvCreateRequire } from 'node:module';",
  "import { fileURLToPath as __nvvFileURLToPath } from 'node:url';",
  "import { dirname as __nvvDirname } from 'node:path';",
  'const require = __nvvCreateRequire(import.meta.url);',
  'const __nvv_filename = __nvvFileURLToPath(import.meta.url);',
  'const __nvv_dirname = __nvvDirname(__nvv_filename);'
].join('\n')

// ssh2's optional native addons (cpu-features, its sshcrypto binding), loaded in try/catch: a .node
// file built for one Node ABI breaks on another, and resolving them at run time would find whatever a
// checkout's node_modules holds. They become modules that throw, so every machine takes ssh2's pure-JS
// path and the bundle ships no binaries.
const noNativeAddons = {
  name: 'no-native-addons',
  setup(b) {
    b.onResolve({ filter: /^cpu-features$|\.node$/ }, (a) => ({
      path: a.path,
      namespace: 'native'
    }))
    b.onLoad({ filter: /.*/, namespace: 'native' }, (a) => ({
      contents: `throw new Error(${JSON.stringify(`${a.path}: native addons are not bundled`)})`,
      loader: 'js'
    }))
  }
}

// Build beside the target and swap at the end: a failed build leaves the old bundle in place.
const next = join(dirname(outRoot), `.${outRoot.split('/').pop()}.next`)
rmSync(next, { recursive: true, force: true })

const result = await build({
  entryPoints,
  outdir: next,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  // GitHub runs the action on node24; the CLI and the tests run on Node 20 too.
  target: 'node20',
  chunkNames: 'chunks/[name]-[hash]',
  // Whitespace and syntax only: names stay, so a stack trace still reads.
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'none',
  banner: { js: SHIM },
  define: { __filename: '__nvv_filename', __dirname: '__nvv_dirname' },
  plugins: [noNativeAddons],
  metafile: true,
  logLevel: 'warning'
})

writeFileSync(join(next, 'package.json'), '{ "type": "module" }\n')
writeFileSync(join(next, 'licenses.txt'), licenses(result.metafile))

rmSync(outRoot, { recursive: true, force: true })
mkdirSync(dirname(outRoot), { recursive: true })
renameSync(next, outRoot)

/** Name, version, licence and licence text of each package that has code in the bundle. */
function licenses(metafile) {
  const dirs = new Set()
  for (const input of Object.keys(metafile.inputs)) {
    const m = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input)
    if (m !== null) dirs.add(m[1])
  }
  const blocks = []
  for (const dir of [...dirs].sort()) {
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
    const file = readdirSync(dir).find((n) => /^(licen[cs]e|copying)(\.|$)/i.test(n))
    const text = file !== undefined ? readFileSync(join(dir, file), 'utf8').trim() : ''
    const licence = typeof pkg.license === 'string' ? pkg.license : (pkg.license?.type ?? 'unknown')
    blocks.push(`${pkg.name}@${pkg.version}\n${licence}${text !== '' ? `\n\n${text}` : ''}`)
  }
  return blocks.join('\n\n' + '-'.repeat(72) + '\n\n') + '\n'
}
