import { rm } from 'node:fs/promises'
import * as core from '@actions/core'
import { removeGithubToken } from '../nix/install.js'
import { readRunContext } from '../github/context.js'
import { errorMessage } from '../util/errors.js'
import { sleep } from '../util/time.js'
import { writeArtifacts } from '../report/artifacts.js'
import { acceleratorFromCmdline, cmdlineOf, isOurRunner, processRunning } from '../vm/runner.js'
import { readGithubToken } from './inputs.js'
import { githubClientFor, publish } from './publish.js'
import { bareReport } from '../report/model.js'
import { consoleTail, readReport } from './report.js'
import { loadState, saveState, type RunPlan, type StateReader } from './state.js'
import { plainConclusion } from './summary.js'

/** The post step (post-if: always()). Finishes what a cancelled or killed main could not; never fails the job itself. */
export async function runPost(read?: StateReader): Promise<void> {
  try {
    await removeToken(read)
  } catch (err) {
    core.warning(`post: could not remove the GitHub token from nix.conf: ${errorMessage(err)}`)
  }
  try {
    await finish(read)
  } catch (err) {
    core.warning(`post step: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
  }
}

/**
 * First, whatever main did or did not finish: the GitHub token the Nix setup wrote to a nix.conf
 * leaves with the job (a self-hosted runner keeps that file for the next one).
 */
async function removeToken(read?: StateReader): Promise<void> {
  const file = loadState(read).githubTokenFile
  if (file === undefined) return
  core.info(`post: ${await removeGithubToken(file)}`)
}

async function finish(read?: StateReader): Promise<void> {
  const st = loadState(read)
  if (st.plan === undefined) {
    core.info(
      'post: nothing to finish (main started no validation: bad input, a dry run, a roll-up, or it was stopped before)'
    )
    return
  }
  if (st.mainFinished) {
    core.info('post: main finished the validation and its report; nothing to do')
    return
  }
  const plan = st.plan
  core.warning(
    'main did not finish (cancelled or timed out): the post step stops the VM and completes the report'
  )

  const cmdline = st.qemuPid !== undefined ? await stopRunner(st.qemuPid, plan) : undefined
  if (st.workDir !== undefined)
    await rm(st.workDir, { recursive: true, force: true }).catch(() => undefined)

  let report = await readReport(plan.outDir)
  if (report === undefined) {
    report = bareReport({
      system: plan.system,
      configuration: plan.configuration,
      runner: plan.runner,
      startedAt: plan.startedAt,
      stage: st.stage,
      accelerator: cmdline !== undefined ? acceleratorFromCmdline(cmdline) : undefined,
      failure: {
        stage: st.stage?.name ?? 'setup',
        kind: 'cancelled',
        message: `the run was cancelled or timed out${st.stage !== undefined ? ` during ${st.stage.name}` : ''} before the main step finished; the post step wrote this report`,
        excerpt: await consoleTail(plan.outDir)
      }
    })
    await writeArtifacts(plan.outDir, report)
    core.info(`post: wrote ${plan.outDir}/report.json (cancelled)`)
  } else {
    core.info(`post: main wrote report.json (${report.conclusion}); finishing the reporting`)
  }

  const ctx = readRunContext()
  const needsApi =
    (st.checkRunId !== undefined && !st.checkRunCompleted) || (plan.prComment && !st.commentWritten)
  const client = needsApi ? await githubClientFor(readGithubToken(), ctx) : undefined
  await publish({
    report,
    plan,
    context: ctx,
    client,
    checkRunId: st.checkRunId,
    done: st,
    save: saveState,
    annotate: false
  })
  core.info(plainConclusion(report))
}

/**
 * SIGKILL to the runner's process group (runner script and QEMU), then wait until it is gone.
 * Returns the command line it had, when it was still running.
 */
export async function stopRunner(
  pid: number,
  plan: RunPlan,
  timeoutMs = 10_000
): Promise<string | undefined> {
  if (!processRunning(pid)) {
    core.info(`post: QEMU (pid ${pid}) is already gone`)
    return undefined
  }
  const cmdline = await cmdlineOf(pid)
  if (cmdline === undefined || !isOurRunner(cmdline, plan.runner)) {
    core.warning(`post: pid ${pid} is no longer the VM runner (recycled pid?); not killing it`)
    return undefined
  }
  try {
    process.kill(-pid, 'SIGKILL')
  } catch (err) {
    core.debug(`kill(-${pid}): ${errorMessage(err)}; signalling the pid alone`)
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // gone in between
    }
  }
  const until = Date.now() + timeoutMs
  while (processRunning(pid) && Date.now() < until) await sleep(100)
  if (processRunning(pid))
    core.warning(`post: QEMU (pid ${pid}) still runs ${timeoutMs / 1000}s after SIGKILL`)
  else core.info(`post: stopped QEMU (process group ${pid})`)
  return cmdline
}
