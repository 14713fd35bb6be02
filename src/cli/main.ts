import { existsSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { InputError, ValidationFailure, errorMessage } from '../util/errors.js'
import { formatDuration } from '../util/duration.js'
import { validate } from '../pipeline/validate.js'
import { writeArtifacts } from '../report/artifacts.js'
import { renderPlan } from '../pipeline/plan.js'
import { engineOptions, type RunRequest } from '../pipeline/request.js'
import { preflight } from '../pipeline/preflight.js'
import { onStopSignals } from '../pipeline/cancel.js'
import type { Report } from '../report/model.js'
import { conclusionLine } from '../report/render.js'
import { killAllGroupsSync } from '../vm/process.js'
import { buildForCli, checkFlakeInput, cliFlakePlanSections, type CliBuild } from '../nix/cli.js'
import { spawnExecutor } from '../nix/exec.js'
import { findOnPath, gatherHostFacts, nixRunOptions } from '../nix/facts.js'
import { openSshKey, type SshKey } from '../nix/sshkey.js'
import { checkConfigurationExists, type ConfigurationCheck } from '../pipeline/configurations.js'
import { InputErrorCollector } from '../util/input-errors.js'
import type { Logger } from '../util/log.js'
import type { FlakeTarget } from '../nix/flakeref.js'
import { listBuildLog } from '../nix/report.js'
import { TOOL_VERSION } from '../version.js'
import { CLI_SPELLING, USAGE, collectArgs, type CliOptions } from './args.js'
import { cliLogger } from './logger.js'
import { HOME_USAGE, parseHomeArgs, runHomeConsistency, type HomeOptions } from './home.js'
import { bareReport } from '../report/model.js'
import { directoryStore } from '../perf/store.js'

export const EXIT_OK = 0
export const EXIT_FAILED = 1
export const EXIT_INPUT = 2

/** Signals that stop a run: the VM is stopped and the report written (a hang-up too). */
const STOP_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT']
/** A stop signal repeated within this time is the first one delivered again. */
export const SIGNAL_REPEAT_MS = 2000
/** After a forced stop, how long the teardown may still take before the process leaves. */
const FORCE_GRACE_MS = 10_000

type Out = (s: string) => void

/** A checked command line: the options, the run request, and the flake it builds (if any). */
interface CliRun {
  opts: CliOptions
  request: RunRequest
  flake?: FlakeTarget
  configuration?: ConfigurationCheck
}

export async function main(
  argv: string[],
  out: Out = (s) => process.stdout.write(s)
): Promise<number> {
  if (argv[0] === 'home-consistency') return homeCommand(argv.slice(1), out)
  let run: CliRun | 'help' | 'version'
  try {
    run = await readRequest(argv)
  } catch (err) {
    process.stderr.write(`error: ${errorMessage(err)}\n`)
    if (!(err instanceof InputError)) return EXIT_FAILED
    process.stderr.write(`run "vm-automation help" for usage\n`)
    return EXIT_INPUT
  }
  if (run === 'help') out(USAGE + '\n')
  else if (run === 'version') out(`nixos-vm-validate ${TOOL_VERSION}\n`)
  else if (run.opts.dryRun) out((await dryRunPlan(run)) + '\n')
  else return runValidation(run, out)
  return EXIT_OK
}

/** `home-consistency`: bad input exits 2 (nothing evaluated), a difference or a failure 1. */
async function homeCommand(rest: string[], out: Out): Promise<number> {
  let opts: HomeOptions | 'help'
  try {
    opts = parseHomeArgs(rest, process.cwd())
    if (opts === 'help') {
      out(HOME_USAGE + '\n')
      return EXIT_OK
    }
    return await runHomeConsistency(opts, out)
  } catch (err) {
    process.stderr.write(`error: ${errorMessage(err)}\n`)
    if (!(err instanceof InputError)) return EXIT_FAILED
    process.stderr.write(`run "vm-automation home-consistency --help" for usage\n`)
    return EXIT_INPUT
  }
}

/**
 * The command line, the files it names and the flake, checked before anything starts: every
 * problem is thrown together as one InputErrors (exit 2, nothing booted).
 */
async function readRequest(argv: string[]): Promise<CliRun | 'help' | 'version'> {
  const errors = new InputErrorCollector()
  const opts = collectArgs(argv, process.cwd(), errors)
  if (opts.command !== 'validate') return opts.command
  const flakeText = opts.flake
  const flake =
    flakeText !== undefined
      ? errors.check('flake', () => checkFlakeInput({ flake: flakeText, requireNix: !opts.dryRun }))
      : undefined
  const request = await preflight(
    {
      settings: opts,
      system: opts.system,
      runner: opts.runner,
      checks: opts.checksFile,
      sshKey: opts.sshKey !== undefined ? { kind: 'file', path: opts.sshKey } : undefined,
      root: process.cwd(),
      dryRun: opts.dryRun,
      spell: CLI_SPELLING
    },
    errors
  )
  // A dry run with Nix here: the configuration must be one the flake has.
  const configuration =
    opts.dryRun && flake !== undefined && !errors.failed('flake')
      ? await errors.checkAsync('flake', () => configurationOf(flake))
      : undefined
  errors.throwIfAny()
  return { opts, request, flake, configuration }
}

async function configurationOf(target: FlakeTarget): Promise<ConfigurationCheck> {
  const exec = spawnExecutor()
  const nix = findOnPath('nix')
  const facts = nix !== undefined ? await gatherHostFacts(exec).catch(() => undefined) : undefined
  return checkConfigurationExists(target, {
    exec,
    nix,
    options: facts !== undefined ? nixRunOptions(facts) : [],
    what: '--flake'
  })
}

/** --dry-run: the plan, with the flake's configuration and the Nix facts when building. */
async function dryRunPlan({ opts, request, flake, configuration }: CliRun): Promise<string> {
  const sections =
    flake !== undefined
      ? [
          {
            title: 'Configuration',
            lines: [
              configuration?.status === 'found'
                ? `nixosConfigurations.${flake.configuration} exists in ${flake.display} (it has: ${configuration.names.join(', ')}; ${configuration.command})`
                : `not checked: ${configuration?.reason ?? 'unknown'}`
            ]
          },
          ...(await cliFlakePlanSections({
            target: flake,
            system: opts.system,
            sshUser: opts.sshUser,
            outDir: opts.outDir
          }))
        ]
      : []
  return renderPlan({ ...opts, checksFile: request.checksFile, sections })
}

/** Builds (with --flake), validates, prints the outcome; the exit code. */
async function runValidation(run: CliRun, out: Out): Promise<number> {
  const { opts, request, flake } = run
  const logger = cliLogger(opts.verbose)
  const controller = new AbortController()
  // Count from the process start, so the report includes Node start-up, the build and the KVM probe.
  const startedAt = Math.round(performance.timeOrigin)
  let workDir: string | undefined
  const stop = cliStopSignals({ opts, logger, controller, startedAt, workDir: () => workDir })
  let built: CliBuild | undefined
  let key: SshKey | undefined
  try {
    key = request.sshKey !== undefined ? await openSshKey(request.sshKey, tmpdir()) : undefined
    if (flake !== undefined) {
      // --flake: build first; the VM authorizes this run's key (or --ssh-key's public half).
      const b = await buildForCli({
        target: flake,
        system: opts.system,
        sshUser: opts.sshUser,
        sshKey: key,
        outDir: opts.outDir,
        logger,
        signal: controller.signal,
        startedAt
      })
      if ('report' in b) {
        printOutcome(out, b.report)
        out(`report: ${opts.outDir}/report.json, build log: ${opts.outDir}/build.log\n`)
        return EXIT_FAILED
      }
      built = b.build
    }
    let report = await validate(
      engineOptions(request, {
        runner: built?.runner ?? (opts.runner as string),
        sshKey: built?.sshKey ?? (key?.path as string),
        outDir: opts.outDir,
        logger,
        signal: controller.signal,
        startedAt,
        onStarted: (info) => (workDir = info.workDir),
        ...(opts.perfHistory !== undefined
          ? {
              perf: {
                store: directoryStore(opts.perfHistory),
                thresholdPct: opts.perf.thresholdPct,
                regression: opts.perf.regression
              }
            }
          : {}),
        ...(built !== undefined
          ? {
              packagePath: built.packagePath,
              declared: built.declared,
              buildMs: built.buildMs,
              closureBytes: built.closureBytes,
              configuration: flake?.configuration
            }
          : {})
      })
    )
    if (built !== undefined) report = await listBuildLog(opts.outDir, report)
    printOutcome(out, report)
    out(`report: ${opts.outDir}/report.json (total ${formatDuration(report.timings.totalMs)})\n`)
    if (report.failure?.kind === 'input') return EXIT_INPUT
    return report.conclusion === 'success' ? EXIT_OK : EXIT_FAILED
  } catch (err) {
    const kind = err instanceof ValidationFailure ? err.kind : 'tool-error'
    process.stderr.write(`error (${kind}): ${errorMessage(err)}\n`)
    return EXIT_FAILED
  } finally {
    await built?.cleanup()
    await key?.dispose()
    stop()
  }
}

/** The conclusion, and the end of the failure's evidence when there is one. */
function printOutcome(out: Out, report: Report): void {
  out(`${conclusionLine(report).replace(/\*\*/g, '')}\n`)
  const f = report.failure
  if (f !== null && f.excerpt !== '')
    out(`--- evidence (${f.kind}) ---\n${f.excerpt.split('\n').slice(-30).join('\n')}\n---\n`)
}

/**
 * The CLI's signal policy: the first stop signal stops the VM and writes the report; a second
 * one (not a repeat of the first) kills QEMU at once, and should the teardown still hang, the
 * process leaves after FORCE_GRACE_MS with a report and without the work directory.
 */
function cliStopSignals(o: {
  opts: CliOptions
  logger: Logger
  controller: AbortController
  startedAt: number
  workDir: () => string | undefined
}): () => void {
  let forced = false
  return onStopSignals({
    signals: STOP_SIGNALS,
    controller: o.controller,
    repeatMs: SIGNAL_REPEAT_MS,
    first: (sig) =>
      o.logger.warning(`${sig}: stopping the VM and writing the report (again to force)`),
    again: (sig) => {
      if (forced) return
      forced = true
      o.logger.warning(
        `${sig} again: forcing — QEMU is killed now, the report written as it stands`
      )
      killAllGroupsSync()
      setTimeout(() => void leaveForced(sig, o), FORCE_GRACE_MS).unref()
    }
  })
}

/** The forced stop's end: a report if the teardown wrote none, no disk image left behind. */
async function leaveForced(
  sig: NodeJS.Signals,
  o: { opts: CliOptions; startedAt: number; workDir: () => string | undefined }
): Promise<void> {
  const { opts } = o
  if (!existsSync(join(opts.outDir, 'report.json'))) {
    const report = bareReport({
      system: opts.system,
      startedAt: o.startedAt,
      ...(opts.runner !== undefined ? { runner: opts.runner } : {}),
      failure: {
        stage: 'boot',
        kind: 'cancelled',
        message: `stopped by ${sig} twice (forced): the teardown did not finish within ${FORCE_GRACE_MS / 1000} s`,
        excerpt: ''
      }
    })
    // The run's own writer: report.json with the artifact list, junit.xml and summary.md.
    await writeArtifacts(opts.outDir, report).catch(() => undefined)
  }
  const workDir = o.workDir()
  if (workDir !== undefined) rmSync(workDir, { recursive: true, force: true })
  process.exit(130)
}
