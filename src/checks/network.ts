import { isScalar, type Node } from 'yaml'
import type { CheckResult } from '../report/model.js'
import { shellQuote } from '../ssh/client.js'
import { combined, describeExit } from '../ssh/guest.js'
import { Deadline } from '../util/time.js'
import type { ChecksFile, NetworkSection, NetworkSpec, SubstituteSpec } from './model.js'
import type { Entry, SectionContext, SectionParser } from './reader.js'
import {
  noSection,
  origin,
  runChecks,
  type CheckEnv,
  type CheckOutcome,
  type CheckSpec,
  type RunContext
} from './run.js'
import {
  STORE_PATH,
  substituteCheck,
  substituteCheckName,
  type PackagePathResolver
} from './substitute.js'
import { runContext, type StageUnit } from './unit.js'

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
  const r = await env.guest.run(resolveCommand(host), { timeoutMs: env.deadline.remaining() })
  if (r.code === 0 && r.stdout.trim() !== '') return { status: 'passed', output: combined(r) }
  const why = r.code === 2 ? 'not found (getent hosts: exit 2)' : describeExit(r)
  const dns = await env.guest.run('cat /etc/resolv.conf 2>&1 | grep -v "^#" | head -n 5', {
    timeoutMs: 10_000
  })
  return {
    status: 'failed',
    output: `cannot resolve ${host}: ${why}\n${combined(r)}\n/etc/resolv.conf:\n${combined(dns)}`
  }
}

async function fetchUrl(env: CheckEnv, url: string): Promise<CheckOutcome> {
  const budget = env.deadline.remaining()
  const r = await env.guest.run(fetchCommand(url, budget), { timeoutMs: budget })
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
  checks: ChecksFile & NetworkSection,
  packagePath?: PackagePathResolver
): Promise<CheckResult[]> {
  const n = checks.network
  const serial = oneAtATime()
  const specs: CheckSpec[] = [
    ...(n?.resolve ?? []).map((h) => ({
      name: `resolve ${h.name}`,
      timeoutMs: n?.timeoutMs ?? 30_000,
      ...origin(h),
      run: (env: CheckEnv) => resolveHost(env, h.name)
    })),
    ...(n?.urls ?? []).map((u) => ({
      name: `fetch ${u.url}`,
      timeoutMs: n?.timeoutMs ?? 30_000,
      ...origin(u),
      run: (env: CheckEnv) => fetchUrl(env, u.url)
    })),
    ...(n?.substitute ?? []).map((s) => ({
      name: substituteCheckName(s),
      timeoutMs: s.timeoutMs,
      ...origin(s),
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

/** Per-check timeouts of this stage when the file gives none. */
export const NETWORK_TIMEOUTS = {
  network: 30_000,
  /** Realising a package: Nix starts, downloads and unpacks, slowly under emulation. */
  substitute: 3 * 60_000
} as const

const SUBSTITUTE_KEYS = ['package', 'path', 'run', 'expect', 'timeout']
const PACKAGE_ATTR = /^[A-Za-z_][\w'-]*(\.[A-Za-z_][\w'-]*)*$/
const RELATIVE_RUN = /^(?!\/)(?!.*(^|\/)\.\.(\/|\s|$))\S+(\s.*)?$/s
const HOST_NAME = /^[a-z0-9_]([a-z0-9_.-]*[a-z0-9_.])?$/i
const ATTR_WHAT = 'a package attribute (hello, python3Packages.requests)'

/** The optional keys of a `{package|path, run, expect, timeout}` entry. */
function substituteKeys(
  s: SectionContext,
  e: Map<string, Entry>,
  path: string,
  spec: SubstituteSpec
): void {
  const r = s.r
  if (e.has('package'))
    spec.package = r.str(s.value(e, 'package'), `${path}.package`, PACKAGE_ATTR, ATTR_WHAT)
  if (e.has('path'))
    spec.path = r.str(
      s.value(e, 'path'),
      `${path}.path`,
      STORE_PATH,
      'a store path (/nix/store/<hash>-<name>)'
    )
  if (e.has('run'))
    spec.run = r.str(
      s.value(e, 'run'),
      `${path}.run`,
      RELATIVE_RUN,
      "a file of the package and its arguments (bin/hello --version), relative, without '..'"
    )
  const expect = e.get('expect')
  if (expect !== undefined) spec.expect = r.regex(expect.value, `${path}.expect`)
}

/** One `network.substitute` entry: an attribute, or {package|path, run, expect, timeout}. */
function parseSubstitute(s: SectionContext, item: Node, path: string): SubstituteSpec | undefined {
  const r = s.r
  if (isScalar(item)) {
    const pkg = r.str(item, path, PACKAGE_ATTR, ATTR_WHAT)
    return pkg === undefined
      ? undefined
      : { ...s.at(item), package: pkg, timeoutMs: NETWORK_TIMEOUTS.substitute }
  }
  const e = r.map(item, path, SUBSTITUTE_KEYS)
  if (e === undefined) return undefined
  const spec: SubstituteSpec = {
    ...s.at(item),
    timeoutMs: s.timeoutOf(e, path, NETWORK_TIMEOUTS.substitute)
  }
  if (e.has('package') === e.has('path')) {
    r.error(
      item,
      path,
      `give exactly one of "package" (evaluated from the configuration's pkgs) or "path" (a /nix/store path)`
    )
    return undefined
  }
  substituteKeys(s, e, path, spec)
  return spec.package !== undefined || spec.path !== undefined ? spec : undefined
}

/** `network: {resolve, urls, substitute, timeout}` */
const parseNetwork: SectionParser<NetworkSection> = (s, { value }, config) => {
  const r = s.r
  const m = r.map(value, 'network', ['resolve', 'urls', 'substitute', 'timeout'])
  if (m === undefined) return
  const resolveList = m.has('resolve')
    ? r.strList(s.value(m, 'resolve'), 'network.resolve', HOST_NAME, 'a host name')
    : []
  const urls = m.has('urls')
    ? r.strList(
        s.value(m, 'urls'),
        'network.urls',
        /^https?:\/\/[^\s/]+\S*$/,
        'an http:// or https:// URL'
      )
    : []
  const substitute: SubstituteSpec[] = []
  r.seq(
    s.value(m, 'substitute'),
    'network.substitute',
    'packages (an attribute such as hello, or {package|path, run, expect, timeout})'
  )?.forEach((item, i) => {
    const spec = parseSubstitute(s, item, `network.substitute[${i}]`)
    if (spec !== undefined) substitute.push(spec)
  })
  config.network = {
    resolve: resolveList.map((h) => ({ name: h.value, file: s.file, line: h.line })),
    urls: urls.map((u) => ({ url: u.value, file: s.file, line: u.line })),
    ...(substitute.length > 0 ? { substitute } : {}),
    timeoutMs: s.timeoutOf(m, 'network', NETWORK_TIMEOUTS.network)
  } satisfies NetworkSpec
}

export const networkUnit: StageUnit<'network', NetworkSection, typeof NETWORK_TIMEOUTS> = {
  name: 'network',
  sections: { network: parseNetwork },
  fileBase: () => ({}),
  // Reaching a cache is not something every VM's configuration promises: a checks file asks.
  defaults: () => ({}),
  timeouts: NETWORK_TIMEOUTS,
  afterBootEnd: true,
  run: (ctx) => networkStage(runContext(ctx, 'network'), ctx.checks, ctx.settings.packagePath)
}
