import type { CheckResult } from '../report/model.js'
import { shellQuote } from '../ssh/client.js'
import { Deadline } from '../util/time.js'
import type { ChecksConfig, SubstituteSpec } from './config.js'
import { substituteCheck, substituteCheckName, type PackagePathResolver } from './substitute.js'
import {
  combined,
  describeExit,
  noSection,
  run,
  runChecks,
  type CheckEnv,
  type CheckOutcome,
  type CheckSpec,
  type RunContext
} from './run.js'

export function resolveCommand(host: string): string {
  return `getent hosts ${shellQuote(host)}`
}

/**
 * Fetches `url` from the guest: curl when present, else wget, else busybox wget (minimal
 * guests), each with its own time limit inside the SSH timeout.
 */
export function fetchCommand(url: string, timeoutMs: number): string {
  const u = shellQuote(url)
  const secs = Math.max(1, Math.floor(timeoutMs / 1000) - 2)
  return [
    `if command -v curl >/dev/null 2>&1; then`,
    `  curl -fsS -o /dev/null --max-time ${secs} -w 'curl: HTTP %{http_code}, %{size_download} bytes in %{time_total}s from %{remote_ip}\\n' ${u}`,
    `elif command -v wget >/dev/null 2>&1; then`,
    `  wget -q -O /dev/null -T ${secs} ${u} && echo 'wget: ok'`,
    `elif command -v busybox >/dev/null 2>&1; then`,
    `  busybox wget -q -O /dev/null -T ${secs} ${u} && echo 'busybox wget: ok'`,
    `else`,
    `  echo 'no curl, wget or busybox in the guest' >&2; exit 127`,
    `fi`
  ].join('\n')
}

async function resolveHost(env: CheckEnv, host: string): Promise<CheckOutcome> {
  const r = await run(env, resolveCommand(host), env.deadline.remaining())
  if (r.code === 0 && r.stdout.trim() !== '') return { status: 'passed', output: combined(r) }
  const why = r.code === 2 ? 'not found (getent hosts: exit 2)' : describeExit(r)
  const dns = await run(env, 'cat /etc/resolv.conf 2>&1 | grep -v "^#" | head -n 5', 10_000)
  return {
    status: 'failed',
    output: `cannot resolve ${host}: ${why}\n${combined(r)}\n/etc/resolv.conf:\n${combined(dns)}`
  }
}

async function fetchUrl(env: CheckEnv, url: string): Promise<CheckOutcome> {
  const budget = env.deadline.remaining()
  const r = await run(env, fetchCommand(url, budget), budget)
  if (r.code === 0) return { status: 'passed', output: combined(r) }
  return {
    status: 'failed',
    output: `cannot fetch ${url}: ${describeExit(r, budget)}\n${combined(r)}`
  }
}

/** A substitution check's store path: as given, or evaluated by the front-end from the flake. */
function substituteRun(
  spec: SubstituteSpec,
  packagePath: PackagePathResolver | undefined
): (env: CheckEnv) => Promise<CheckOutcome> {
  const given = spec.path
  if (given !== undefined) return (env) => substituteCheck(env, spec, () => Promise.resolve(given))
  const attribute = spec.package ?? ''
  if (packagePath === undefined) {
    return () =>
      Promise.resolve({
        status: 'skipped',
        output: `no flake to evaluate ${attribute} from: this run was given a VM runner, not a flake; give network.substitute a store path ({ path: /nix/store/…, run: … }) to check it`
      })
  }
  return (env) => substituteCheck(env, spec, () => packagePath(attribute))
}

/**
 * Runs the substitution checks one after another: concurrent Nix processes in the guest race on
 * their shared binary-cache database (Nix 2.8 fails the second one with "executing SQLite
 * statement … constraint failed"). The other network checks still run beside them.
 */
function oneAtATime(): <T>(task: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve()
  return (task) => {
    const next = tail.then(task, task)
    tail = next.catch(() => undefined)
    return next
  }
}

/**
 * Stage `network`: names resolve, URLs answer and packages install from the VM's own
 * substituters, from inside the guest.
 */
export async function networkStage(
  ctx: RunContext,
  checks: ChecksConfig,
  packagePath?: PackagePathResolver
): Promise<CheckResult[]> {
  const n = checks.network
  const serial = oneAtATime()
  const specs: CheckSpec[] = [
    ...(n?.resolve ?? []).map((h) => ({
      name: `resolve ${h.name}`,
      timeoutMs: n?.timeoutMs ?? 30_000,
      file: h.file,
      line: h.line,
      run: (env: CheckEnv) => resolveHost(env, h.name)
    })),
    ...(n?.urls ?? []).map((u) => ({
      name: `fetch ${u.url}`,
      timeoutMs: n?.timeoutMs ?? 30_000,
      file: u.file,
      line: u.line,
      run: (env: CheckEnv) => fetchUrl(env, u.url)
    })),
    ...(n?.substitute ?? []).map((s) => ({
      name: substituteCheckName(s),
      timeoutMs: s.timeoutMs,
      file: s.file,
      line: s.line,
      // Its own timeout starts when its turn comes, bounded by the stage's.
      run: (env: CheckEnv) =>
        serial(() =>
          substituteRun(
            s,
            packagePath
          )({ ...env, deadline: new Deadline(Math.min(s.timeoutMs, ctx.deadline.remaining())) })
        )
    }))
  ]
  if (specs.length === 0) return noSection('network', 'network section', checks)
  return runChecks(ctx, specs)
}
