// Bundles the three entry points with ncc into dist/<name>/index.js (what action.yml and the CLI run).
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'

const entries = { main: 'src/main.ts', post: 'src/post.ts', cli: 'src/cli/index.ts' }
const only = process.argv.slice(2)
const outRoot = process.env.PACKAGE_OUT ?? 'dist'

// ssh2's bundled wasm helpers use __dirname, which an ES module lacks.
const SHIM =
  "import { fileURLToPath as __nvvFileURLToPath } from 'node:url';\n" +
  "import { dirname as __nvvDirname } from 'node:path';\n" +
  'const __filename = __nvvFileURLToPath(import.meta.url);\n' +
  'const __dirname = __nvvDirname(__filename);\n'

// ssh2's optional native crypto binding is built by npm only where a compiler and its install script
// ran; bundled, it would make dist/ depend on the machine and fail to load on another Node ABI.
// Hide it while ncc runs, so every machine bundles ssh2's pure-JS path.
const sshcrypto = 'node_modules/ssh2/lib/protocol/crypto/build'
const hidden = `${sshcrypto}.nvv-hidden`
if (existsSync(sshcrypto)) renameSync(sshcrypto, hidden)
try {
  build()
} finally {
  if (existsSync(hidden)) renameSync(hidden, sshcrypto)
}

function build() {
  for (const [name, entry] of Object.entries(entries)) {
    if (only.length > 0 && !only.includes(name)) continue
    const out = `${outRoot}/${name}`
    // Build beside the target and swap at the end: a failed build leaves the old bundle in place.
    const next = `${outRoot}/.${name}.next`
    rmSync(next, { recursive: true, force: true })
    mkdirSync(outRoot, { recursive: true })
    // cpu-features is an optional native addon of ssh2 (loaded in try/catch): a .node file built for
    // one Node ABI would break on the runner's node24, so it stays out of the bundle.
    execFileSync(
      'npx',
      [
        'ncc',
        'build',
        entry,
        '-o',
        next,
        '--license',
        'licenses.txt',
        '--target',
        'es2022',
        '-q',
        '--no-cache',
        '-e',
        'cpu-features'
      ],
      { stdio: 'inherit' }
    )
    const file = `${next}/index.js`
    let code = readFileSync(file, 'utf8')
    const shebang = code.startsWith('#!') ? code.slice(0, code.indexOf('\n') + 1) : ''
    code = shebang + SHIM + code.slice(shebang.length)
    writeFileSync(file, code)
    rmSync(out, { recursive: true, force: true })
    renameSync(next, out)
  }
}
