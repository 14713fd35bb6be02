import * as core from '@actions/core'
import type { TokenFile } from '../nix/install.js'
import type { GuestSystem } from '../vm/system.js'

/**
 * What main saves (core.saveState → GITHUB_STATE) for the post step, which the runner starts
 * with each value as STATE_<name>. Saved as soon as known, so a main killed at any point leaves
 * post enough to finish: stop QEMU, write the report, upload, complete the check run.
 */
export const STATE_KEYS = {
  /** RunPlan (JSON): saved once, before anything starts. */
  plan: 'plan',
  /** The runner's pid, which names the process group of the runner script and QEMU (vm/runner.ts). */
  qemuPid: 'qemu-pid',
  workDir: 'work-dir',
  checkRunId: 'check-run-id',
  /** The stage running now (JSON {name, startMs}), for the cancelled report. */
  stage: 'stage',
  /** Steps of the ending already done, each 'true' once done (post skips them). */
  artifact: 'artifact',
  summaryWritten: 'summary-written',
  checkRunCompleted: 'check-run-completed',
  commentWritten: 'comment-written',
  mainFinished: 'main-finished',
  /**
   * The nix.conf the Nix setup writes the GitHub token to (TokenFile JSON: its path, never the
   * token), saved before the write: post takes the token out whatever became of main.
   */
  githubTokenFile: 'github-token-file'
} as const
export type StateKey = (typeof STATE_KEYS)[keyof typeof STATE_KEYS]

/** Decisions main made that post needs to finish the same run the same way (no secrets). */
export interface RunPlan {
  subject: string
  configuration?: string
  runner?: string
  system: GuestSystem
  emulated: boolean
  outDir: string
  workspace: string
  startedAt: number
  artifactName: string
  retentionDays?: number
  checkName: string
  externalId: string
  marker: string
  prComment: boolean
  checksFile?: string
}

export interface SavedArtifact {
  id?: number
  url?: string
  note?: string
}

export interface SavedState {
  plan?: RunPlan
  qemuPid?: number
  workDir?: string
  checkRunId?: number
  stage?: { name: string; startMs: number }
  artifact?: SavedArtifact
  summaryWritten: boolean
  checkRunCompleted: boolean
  commentWritten: boolean
  mainFinished: boolean
  githubTokenFile?: TokenFile
}

export type StateWriter = (key: StateKey, value: string) => void
export type StateReader = (key: StateKey) => string

export const saveState: StateWriter = (key, value) => core.saveState(key, value)
export const getState: StateReader = (key) => core.getState(key)

function json<T>(text: string): T | undefined {
  if (text === '') return undefined
  try {
    return JSON.parse(text) as T
  } catch {
    return undefined
  }
}

function int(text: string): number | undefined {
  const n = Number(text)
  return text !== '' && Number.isInteger(n) && n > 0 ? n : undefined
}

/** A saved TokenFile, or undefined for anything else (post acts on it, so it is checked). */
function tokenFile(text: string): TokenFile | undefined {
  const t = json<Partial<TokenFile>>(text)
  return t !== undefined &&
    t !== null &&
    typeof t.path === 'string' &&
    t.path.startsWith('/') &&
    (t.kind === 'block' || t.kind === 'file')
    ? { path: t.path, kind: t.kind }
    : undefined
}

export function loadState(read: StateReader = getState): SavedState {
  return {
    plan: json<RunPlan>(read(STATE_KEYS.plan)),
    qemuPid: int(read(STATE_KEYS.qemuPid)),
    workDir: read(STATE_KEYS.workDir) || undefined,
    checkRunId: int(read(STATE_KEYS.checkRunId)),
    stage: json(read(STATE_KEYS.stage)),
    artifact: json<SavedArtifact>(read(STATE_KEYS.artifact)),
    summaryWritten: read(STATE_KEYS.summaryWritten) === 'true',
    checkRunCompleted: read(STATE_KEYS.checkRunCompleted) === 'true',
    commentWritten: read(STATE_KEYS.commentWritten) === 'true',
    mainFinished: read(STATE_KEYS.mainFinished) === 'true',
    githubTokenFile: tokenFile(read(STATE_KEYS.githubTokenFile))
  }
}
