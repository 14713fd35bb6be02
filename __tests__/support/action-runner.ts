/**
 * Runs the bundled action (dist/main/index.js, dist/post/index.js) the way the runner does:
 * inputs as INPUT_<NAME> (hyphens kept, upper case), GITHUB_* variables and file commands
 * (GITHUB_OUTPUT, GITHUB_STATE, GITHUB_STEP_SUMMARY), saved state handed to post as STATE_<name>.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
/** The bundles under test: dist/ (what action.yml runs), or NVV_ACTION_DIST (a fresh build elsewhere). */
export const DIST = process.env.NVV_ACTION_DIST ?? join(ROOT, 'dist')
export const MAIN = join(DIST, 'main', 'index.js')
export const POST = join(DIST, 'post', 'index.js')

export const OWNER = 'octo-org'
export const REPO = 'vm-repo'
export const HEAD_SHA = 'a'.repeat(40)
export const MERGE_SHA = 'b'.repeat(40)
export const PR_NUMBER = 17
export const RUN_ID = '1234567'

export interface ActionFiles {
  dir: string
  temp: string
  workspace: string
  output: string
  state: string
  summary: string
  postSummary: string
  event: string
}

export interface EnvOptions {
  inputs: Record<string, string>
  apiUrl?: string
  resultsUrl?: string
  runtimeToken?: string
  runAttempt?: string
  extra?: Record<string, string>
}

/** A fresh step environment: nothing inherited from the test process but PATH and HOME. */
export function actionEnv(o: EnvOptions): { env: NodeJS.ProcessEnv; files: ActionFiles } {
  const dir = mkdtempSync(join(tmpdir(), 'nvv-action-'))
  const files: ActionFiles = {
    dir,
    temp: join(dir, 'runner-temp'),
    workspace: join(dir, 'workspace'),
    output: join(dir, 'github-output'),
    state: join(dir, 'github-state'),
    summary: join(dir, 'step-summary.md'),
    postSummary: join(dir, 'post-step-summary.md'),
    event: join(dir, 'event.json')
  }
  mkdirSync(files.temp)
  mkdirSync(files.workspace)
  for (const f of [files.output, files.state, files.summary, files.postSummary])
    writeFileSync(f, '')
  writeFileSync(
    files.event,
    JSON.stringify({
      action: 'synchronize',
      number: PR_NUMBER,
      pull_request: {
        number: PR_NUMBER,
        head: { sha: HEAD_SHA, ref: 'feature' },
        base: { ref: 'main' }
      }
    })
  )
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    GITHUB_ACTIONS: 'true',
    GITHUB_REPOSITORY: `${OWNER}/${REPO}`,
    GITHUB_EVENT_NAME: 'pull_request',
    GITHUB_EVENT_PATH: files.event,
    GITHUB_SHA: MERGE_SHA,
    GITHUB_REF: `refs/pull/${PR_NUMBER}/merge`,
    GITHUB_WORKFLOW_REF: `${OWNER}/${REPO}/.github/workflows/vm.yml@refs/pull/${PR_NUMBER}/merge`,
    GITHUB_SERVER_URL: 'https://github.com',
    GITHUB_RUN_ID: RUN_ID,
    GITHUB_RUN_ATTEMPT: o.runAttempt ?? '1',
    GITHUB_WORKSPACE: files.workspace,
    GITHUB_OUTPUT: files.output,
    GITHUB_STATE: files.state,
    GITHUB_STEP_SUMMARY: files.summary,
    RUNNER_TEMP: files.temp,
    ...(o.apiUrl !== undefined ? { GITHUB_API_URL: o.apiUrl } : {}),
    ...(o.resultsUrl !== undefined ? { ACTIONS_RESULTS_URL: `${o.resultsUrl}/` } : {}),
    ...(o.runtimeToken !== undefined ? { ACTIONS_RUNTIME_TOKEN: o.runtimeToken } : {}),
    ...o.extra
  }
  for (const [name, value] of Object.entries(o.inputs))
    env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] = value
  return { env, files }
}

export interface BundleRun {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  durationMs: number
}

export function runBundle(
  entry: string,
  env: NodeJS.ProcessEnv,
  o: { timeoutMs?: number; onSpawn?: (child: ChildProcess, output: () => string) => void } = {}
): Promise<BundleRun> {
  const started = Date.now()
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [entry], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 10 * 60_000)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolvePromise({ code, signal, stdout, stderr, durationMs: Date.now() - started })
    })
    o.onSpawn?.(child, () => stdout)
  })
}

/** A GITHUB_OUTPUT / GITHUB_STATE file (`name<<delimiter` blocks); a later value wins. */
export function readCommandFile(path: string): Record<string, string> {
  const out: Record<string, string> = {}
  if (!existsSync(path)) return out
  const lines = readFileSync(path, 'utf8').split('\n')
  for (let i = 0; i < lines.length; i++) {
    const m = /^([^<=]+)<<(.+)$/.exec(lines[i])
    if (m !== null) {
      const value: string[] = []
      for (i++; i < lines.length && lines[i] !== m[2]; i++) value.push(lines[i])
      out[m[1]] = value.join('\n')
      continue
    }
    const eq = lines[i].indexOf('=')
    if (eq > 0) out[lines[i].slice(0, eq)] = lines[i].slice(eq + 1)
  }
  return out
}

/** What the runner hands the post step: each saved state as STATE_<name>. */
export function postEnv(env: NodeJS.ProcessEnv, files: ActionFiles): NodeJS.ProcessEnv {
  const state = readCommandFile(files.state)
  const next: NodeJS.ProcessEnv = {
    ...env,
    GITHUB_STEP_SUMMARY: files.postSummary,
    GITHUB_STATE: join(files.dir, 'post-state')
  }
  writeFileSync(join(files.dir, 'post-state'), '')
  for (const [k, v] of Object.entries(state)) next[`STATE_${k}`] = v
  return next
}

export function processRunning(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return !['Z', 'X'].includes(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0])
  } catch {
    return false
  }
}

/** Kills the process groups of the QEMU processes a test started, where still running. */
export function killStarted(pids: number[]): void {
  for (const pid of pids) {
    if (!processRunning(pid)) continue
    try {
      process.kill(-pid, 'SIGKILL')
    } catch {
      // gone
    }
  }
}

export async function waitFor(
  what: string,
  cond: () => boolean,
  timeoutMs: number,
  stepMs = 200
): Promise<void> {
  const until = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, stepMs))
  }
}

/** Workflow commands the action printed (`::warning::…`, `::error file=…::…`). */
export function workflowCommands(stdout: string, command: string): string[] {
  return stdout
    .split('\n')
    .filter((l) => l.startsWith(`::${command}`))
    .map((l) => l.replace(/%0A/g, '\n').replace(/%25/g, '%'))
}
