import { existsSync, rmSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { InputError, ValidationFailure, errorMessage } from '../util/errors.js'
import { formatDuration } from '../util/duration.js'
import { validate } from '../pipeline/validate.js'
import { writeArtifacts } from '../report/artifacts.js'
import { renderPlan } from '../pipeline/plan.js'
import { conclusionLine } from '../report/render.js'
import { killAllGroupsSync } from '../vm/process.js'
import { buildForCli, checkFlakeInput, cliFlakePlanSections, type CliBuild } from '../nix/cli.js'
import { spawnExecutor } from '../nix/exec.js'
import { findOnPath, gatherHostFacts, nixRunOptions } from '../nix/facts.js'
import { checkConfigurationExists, type ConfigurationCheck } from '../pipeline/configurations.js'
import { InputErrorCollector } from '../util/input-errors.js'
import { isExecutableFile } from '../util/fs.js'
import { loadChecks } from '../checks/config.js'
import { publicKeyOf } from '../nix/sshkey.js'
import type { FlakeTarget } from '../nix/flakeref.js'
import { listBuildLog } from '../nix/report.js'
import { TOOL_VERSION } from '../version.js'
import { USAGE, collectArgs, type CliOptions } from './args.js'
import { cliLogger } from './logger.js'
import { bareReport } from '../action/report.js'

export const EXIT_OK = 0
export const EXIT_FAILED = 1
export const EXIT_INPUT = 2

/** Signals that stop a run: the VM is stopped and the report written (a hang-up too). */
const STOP_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT']
/** A stop signal repeated within this time is the first one delivered again. */
export const SIGNAL_REPEAT_MS = 2000
/** After a forced stop, how long the teardown may still take before the process leaves. */
const FORCE_GRACE_MS = 10_000

/** Checks files and keys before anything starts: bad input exits 2 with nothing booted. */
export async function checkInputs(o: CliOptions): Promise<void> {
  const errors = new InputErrorCollector()
  await collectInputChecks(o, errors)
  errors.throwIfAny()
}

/** The checks of checkInputs, each problem recorded in `errors` (all are reported together). */
async function collectInputChecks(o: CliOptions, errors: InputErrorCollector): Promise<void> {
  const runner = o.runner
  if (runner !== undefined) {
    await errors.checkAsync('runner', async () => {
      if (!(await isExecutableFile(runner)))
        throw new InputError(
          `--runner ${runner}: not an executable file (expected result/bin/run-<host>-vm)`
        )
    })
  }
  const sshKey = o.sshKey
  if (sshKey !== undefined) {
    await errors.checkAsync('ssh-key', async () => {
      let text: Buffer
      try {
        text = await readFile(sshKey)
      } catch {
        throw new InputError(`--ssh-key ${sshKey}: cannot read the file`)
      }
      // A public key parses too: demand the private half now, not as ssh-unreachable later.
      publicKeyOf(text, `--ssh-key ${sshKey}`)
    })
  }
  // Parsed now, dry runs included: a malformed checks file is an input error before anything runs.
  const checks = o.checksFile
  if (checks !== undefined) {
    if (!existsSync(checks)) errors.add('checks', `--checks ${checks}: no such file`)
    else await errors.checkAsync('checks', () => loadChecks(checks, o.stages))
  }
}

export async function main(
  argv: string[],
  out: (s: string) => void = (s) => process.stdout.write(s)
): Promise<number> {
  let opts: CliOptions
  let flake: FlakeTarget | undefined
  let configuration: ConfigurationCheck | undefined
  try {
    // Every problem with the options, the files they name and the flake, listed together.
    const errors = new InputErrorCollector()
    opts = collectArgs(argv, process.cwd(), errors)
    if (opts.command === 'help') {
      out(USAGE + '\n')
      return EXIT_OK
    }
    if (opts.command === 'version') {
      out(`nixos-vm-validate ${TOOL_VERSION}\n`)
      return EXIT_OK
    }
    if (opts.checksFile === undefined && existsSync(resolve('tests/vm/checks.yml'))) {
      opts.checksFile = resolve('tests/vm/checks.yml')
    }
    const flakeText = opts.flake
    if (flakeText !== undefined)
      flake = errors.check('flake', () =>
        checkFlakeInput({ flake: flakeText, requireNix: !opts.dryRun })
      )
    await collectInputChecks(opts, errors)
    // A dry run with Nix here: the configuration must be one the flake has.
    if (opts.dryRun && flake !== undefined && !errors.failed('flake')) {
      const target = flake
      const exec = spawnExecutor()
      const nix = findOnPath('nix')
      const facts =
        nix !== undefined ? await gatherHostFacts(exec).catch(() => undefined) : undefined
      configuration = await errors.checkAsync('flake', () =>
        checkConfigurationExists(target, {
          exec,
          nix,
          options: facts !== undefined ? nixRunOptions(facts) : [],
          what: '--flake'
        })
      )
    }
    errors.throwIfAny()
  } catch (err) {
    process.stderr.write(`error: ${errorMessage(err)}\n`)
    if (!(err instanceof InputError)) return EXIT_FAILED
    process.stderr.write(`run "vm-automation help" for usage\n`)
    return EXIT_INPUT
  }
  if (opts.dryRun) {
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
    out(renderPlan({ ...opts, sections }) + '\n')
    return EXIT_OK
  }
  const logger = cliLogger(opts.verbose)
  const controller = new AbortController()
  // Count from the process start, so the report includes Node start-up, the build and the KVM probe.
  const startedAt = Math.round(performance.timeOrigin)
  let workDir: string | undefined
  let firstSignalAt: number | undefined
  let forced = false
  const onSignal = (sig: NodeJS.Signals): void => {
    const now = Date.now()
    if (firstSignalAt === undefined) {
      firstSignalAt = now
      logger.warning(`${sig}: stopping the VM and writing the report (again to force)`)
      controller.abort()
      return
    }
    // One process-group signal reaches us once per forwarding parent (timeout, make, npm):
    // a repeat this soon is the same request, not a second one.
    if (forced || now - firstSignalAt < SIGNAL_REPEAT_MS) return
    forced = true
    logger.warning(`${sig} again: forcing — QEMU is killed now, the report written as it stands`)
    killAllGroupsSync()
    // With QEMU gone the teardown ends at once; should it hang, leave all the same, with a
    // report and without the work directory (its disk image).
    setTimeout(async () => {
      if (!existsSync(join(opts.outDir, 'report.json'))) {
        const report = bareReport({
          system: opts.system,
          startedAt,
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
      if (workDir !== undefined) rmSync(workDir, { recursive: true, force: true })
      process.exit(130)
    }, FORCE_GRACE_MS).unref()
  }
  for (const sig of STOP_SIGNALS) process.on(sig, onSignal)
  let built: CliBuild | undefined
  try {
    if (flake !== undefined) {
      // --flake: build first; the VM authorizes this run's key (or --ssh-key's public half).
      const b = await buildForCli({
        target: flake,
        system: opts.system,
        sshUser: opts.sshUser,
        sshKey: opts.sshKey,
        outDir: opts.outDir,
        logger,
        signal: controller.signal,
        startedAt
      })
      if ('report' in b) {
        out(`${conclusionLine(b.report).replace(/\*\*/g, '')}\n`)
        const f = b.report.failure
        if (f !== null && f.excerpt !== '')
          out(`--- evidence (${f.kind}) ---\n${f.excerpt.split('\n').slice(-30).join('\n')}\n---\n`)
        out(`report: ${opts.outDir}/report.json, build log: ${opts.outDir}/build.log\n`)
        return EXIT_FAILED
      }
      built = b.build
    }
    let report = await validate({
      runner: built?.runner ?? (opts.runner as string),
      system: opts.system,
      sshKey: built?.sshKey ?? (opts.sshKey as string),
      sshUser: opts.sshUser,
      guestSshPort: opts.guestSshPort,
      stages: opts.stages,
      outDir: opts.outDir,
      bootTimeoutMs: opts.bootTimeoutMs,
      silenceTimeoutMs: opts.silenceTimeoutMs,
      sshTimeoutMs: opts.sshTimeoutMs,
      stageTimeoutMs: opts.stageTimeoutMs,
      timeoutMs: opts.timeoutMs,
      accel: opts.accel,
      bootRetries: opts.bootRetries,
      cpu: opts.cpu,
      checksFile: opts.checksFile,
      ...(built !== undefined ? { packagePath: built.packagePath } : {}),
      logger,
      signal: controller.signal,
      startedAt,
      onStarted: (info) => (workDir = info.workDir),
      ...(built !== undefined
        ? { buildMs: built.buildMs, configuration: flake?.configuration }
        : {})
    })
    if (built !== undefined) report = await listBuildLog(opts.outDir, report)
    out(`${conclusionLine(report).replace(/\*\*/g, '')}\n`)
    if (report.failure !== null && report.failure.excerpt !== '') {
      out(
        `--- evidence (${report.failure.kind}) ---\n${report.failure.excerpt.split('\n').slice(-30).join('\n')}\n---\n`
      )
    }
    out(`report: ${opts.outDir}/report.json (total ${formatDuration(report.timings.totalMs)})\n`)
    if (report.failure?.kind === 'input') return EXIT_INPUT
    return report.conclusion === 'success' ? EXIT_OK : EXIT_FAILED
  } catch (err) {
    const kind = err instanceof ValidationFailure ? err.kind : 'tool-error'
    process.stderr.write(`error (${kind}): ${errorMessage(err)}\n`)
    return EXIT_FAILED
  } finally {
    await built?.cleanup()
    for (const sig of STOP_SIGNALS) process.off(sig, onSignal)
  }
}
