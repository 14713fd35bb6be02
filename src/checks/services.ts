import { isScalar } from 'yaml'
import type { CheckResult } from '../report/model.js'
import type { ExecResult } from '../ssh/client.js'
import { JOURNAL_LINES, combined, describeExit, lastAttempt } from '../ssh/guest.js'
import type { ChecksFile, ServicesSection, DockerSpec, ServiceSpec } from './model.js'
import { UNIT_NAME, USER_NAME, type SectionParser } from './reader.js'
import {
  noSection,
  origin,
  runChecks,
  type CheckEnv,
  type CheckOutcome,
  type CheckSpec,
  type RunContext
} from './run.js'
import { unitJournal } from './system.js'
import { runContext, type StageUnit } from './unit.js'

export interface UnitState {
  LoadState?: string
  ActiveState?: string
  SubState?: string
  Result?: string
  /** `systemctl is-system-running` (without --wait). */
  SystemState?: string
}

/**
 * What a unit's state means for "must be active": pass, keep waiting, or fail now. `mayExit`: a
 * oneshot without RemainAfterExit, which passes once the boot is over and it ended without
 * failing (inactive, result success; also when its condition skipped it).
 */
export function judgeUnit(
  s: UnitState,
  mayExit = false
): 'active' | 'exited' | 'wait' | 'failed' | 'not-found' {
  if (s.LoadState === 'not-found') return 'not-found'
  if (s.ActiveState === 'active' || s.ActiveState === 'reloading') return 'active'
  if (s.ActiveState === 'activating' || s.ActiveState === 'deactivating') return 'wait'
  // Queued but not started yet while the boot is still in progress.
  if (
    s.ActiveState === 'inactive' &&
    (s.SystemState === 'starting' || s.SystemState === 'initializing')
  )
    return 'wait'
  if (mayExit && s.ActiveState === 'inactive' && s.Result === 'success') return 'exited'
  return 'failed'
}

/** The properties a unit's state is judged by. */
export const STATE_PROPS = ['LoadState', 'ActiveState', 'SubState', 'Result']

/**
 * Waits (bounded) for `unit` to be active; on failure the output has its state and journal.
 * `firstLook`: the unit's state already asked together with others (the stage's first round),
 * used instead of the first command of its own.
 */
export async function unitActive(
  env: CheckEnv,
  unit: string,
  user: string | undefined,
  firstLook?: () => Promise<{ r: ExecResult; state?: UnitState }>,
  mayExit = false
): Promise<CheckOutcome & { state: UnitState }> {
  const who = user !== undefined ? ` (user ${user})` : ''
  let first = firstLook
  const look = async (remaining: number): Promise<{ r: ExecResult; state: UnitState }> => {
    const shared = first !== undefined ? await first() : undefined
    first = undefined
    if (shared?.state !== undefined) return { r: shared.r, state: shared.state }
    const timeoutMs = Math.min(30_000, Math.max(1000, remaining))
    const show = await env.guest.systemctlShow([unit], STATE_PROPS, { user, timeoutMs })
    return { r: show.result, state: show.states.get(unit) ?? {} }
  }
  const { r, state, verdict } = await env.guest
    .waitUntil(async (remaining) => {
      const { r, state } = await look(remaining)
      const verdict =
        r.code === 0 || state.ActiveState !== undefined ? judgeUnit(state, mayExit) : 'failed'
      return { done: verdict !== 'wait', value: { r, state, verdict }, output: combined(r) }
    }, env.deadline)
    .catch(lastAttempt<{ r: ExecResult; state: UnitState; verdict: ReturnType<typeof judgeUnit> }>)
  const summary = `${unit}${who}: ${state.ActiveState ?? '?'} (${state.SubState ?? '?'}), load ${state.LoadState ?? '?'}, result ${state.Result ?? '?'}`
  if (verdict === 'active') return { status: 'passed', output: summary, state }
  if (verdict === 'exited')
    return { status: 'passed', output: `${summary} — a oneshot: it ran without failing`, state }
  if (state.ActiveState === undefined) {
    return {
      status: 'failed',
      output: `cannot read the state of ${unit}${who}: ${describeExit(r)}\n${combined(r)}`,
      state,
      unit
    }
  }
  if (verdict === 'not-found')
    return {
      status: 'failed',
      output: `${unit}${who} does not exist on the guest (LoadState=not-found)`,
      state
    }
  const journal = await env.guest.journal(unitJournal(unit, user), { timeoutMs: 30_000 })
  const waited =
    verdict === 'wait' ? ` — still ${state.ActiveState} when the check's time ran out` : ''
  return {
    status: 'failed',
    output: `${summary}${waited}\n\n── journalctl -b -u ${unit} -n ${JOURNAL_LINES}\n${journal || '(no journal lines)'}`,
    state,
    unit
  }
}

/**
 * Asks the Docker daemon for its version over its socket, as `user` (no sudo): curl's HTTP over
 * the unix socket when the guest has curl (NixOS always does), else the docker CLI. Under
 * emulation a docker CLI start costs the guest about a second of CPU, curl a fifth of that, and
 * the question is the same: can this user open the socket, and does the daemon answer on it.
 * When curl cannot connect, the socket itself says why: missing (daemon not started) or not
 * writable by the user (not in the docker group).
 */
export const DOCKER_API_SCRIPT = [
  's=/var/run/docker.sock',
  'case "${DOCKER_HOST:-}" in unix://*) s=${DOCKER_HOST#unix://} ;; ?*) s= ;; esac',
  'if [ -n "$s" ] && command -v curl >/dev/null 2>&1; then',
  '  if curl -sS --max-time 30 --unix-socket "$s" http://docker/version; then echo; echo "socket=$s"; exit 0; fi',
  '  if [ ! -S "$s" ]; then echo "Cannot connect to the Docker daemon: no socket at $s" >&2',
  `  elif [ ! -w "$s" ]; then echo "permission denied: $(id -un) cannot open $s ($(stat -c '%U:%G %a' "$s" 2>/dev/null))" >&2`,
  '  else echo "Cannot connect to the Docker daemon at unix://$s" >&2; fi',
  '  exit 1',
  'fi',
  "exec docker version --format 'server {{.Server.Version}}, API {{.Server.APIVersion}} (docker CLI)'"
].join('\n')

/** What the daemon said: its /version JSON (curl) in one line, or the docker CLI's own line. */
export function describeDockerVersion(stdout: string): string {
  const text = stdout.trim()
  const socket = /^socket=(.*)$/m.exec(text)?.[1]
  const json = text.replace(/^socket=.*$/m, '').trim()
  if (!json.startsWith('{')) return text
  try {
    const v = JSON.parse(json) as { Version?: unknown; ApiVersion?: unknown }
    return `server ${String(v.Version ?? '?')}, API ${String(v.ApiVersion ?? '?')}${socket !== undefined ? ` (unix://${socket})` : ''}`
  } catch {
    return text
  }
}

async function dockerReaches(env: CheckEnv, user: string | undefined): Promise<CheckOutcome> {
  const guest = env.guest.asUser(user)
  const r = await env.guest
    .waitUntil(
      async (remaining) => {
        const r = await guest.run(DOCKER_API_SCRIPT, {
          timeoutMs: Math.min(60_000, Math.max(1000, remaining))
        })
        const out = combined(r)
        // The daemon may still be starting; a permission problem will not go away by waiting.
        const retry =
          r.code !== 0 &&
          /Cannot connect to the Docker daemon|Is the docker daemon running/i.test(out)
        return { done: !retry, value: r, output: out }
      },
      env.deadline,
      2000
    )
    .catch(lastAttempt<ExecResult>)
  if (r.code === 0) return { status: 'passed', output: describeDockerVersion(r.stdout) }
  const out = combined(r)
  const hint =
    user !== undefined && /permission denied/i.test(out)
      ? `\n${user} cannot reach the Docker socket without sudo (is ${user} in the docker group?)`
      : ''
  return {
    status: 'failed',
    output: `docker daemon${user !== undefined ? ` as ${user}` : ''}: ${describeExit(r)}\n${out}${hint}`,
    unit: 'docker.service'
  }
}

function serviceName(s: ServiceSpec): string {
  return s.user !== undefined ? `${s.unit} (user ${s.user})` : s.unit
}

/** Stage `services`: the services section and the docker section. */
export async function servicesStage(
  ctx: RunContext,
  checks: ChecksFile & ServicesSection
): Promise<CheckResult[]> {
  // The system units' first look is one command for all of them; a unit still starting is then
  // polled on its own.
  const systemUnits = [
    ...new Set(checks.services.filter((s) => s.user === undefined).map((s) => s.unit))
  ]
  let batch: Promise<{ r: ExecResult; states: Map<string, UnitState> }> | undefined
  const firstLook =
    (env: CheckEnv, unit: string) => async (): Promise<{ r: ExecResult; state?: UnitState }> => {
      batch ??= env.guest
        .systemctlShow(systemUnits, STATE_PROPS, { timeoutMs: 30_000 })
        .then(({ result, states }) => ({ r: result, states }))
      const { r, states } = await batch
      return { r, state: states.get(unit) }
    }
  const specs: CheckSpec[] = checks.services.map((s) => ({
    name: serviceName(s),
    timeoutMs: s.timeoutMs,
    ...origin(s),
    unit: s.user === undefined ? s.unit : undefined,
    run: (env) =>
      unitActive(
        env,
        s.unit,
        s.user,
        s.user === undefined && systemUnits.length > 1 ? firstLook(env, s.unit) : undefined,
        s.mayExit === true
      )
  }))
  const docker = checks.docker
  if (docker !== undefined) {
    // A listed user who reached the daemon proves it answers: the daemon check asks as the SSH
    // user only when no listed user got through.
    const asUsers = new Map<string, Promise<CheckOutcome>>()
    const userRun = (env: CheckEnv, name: string): Promise<CheckOutcome> => {
      let p = asUsers.get(name)
      if (p === undefined) {
        p = dockerReaches(env, name)
        asUsers.set(name, p)
      }
      return p
    }
    specs.push({
      name: 'docker daemon answers',
      timeoutMs: docker.timeoutMs,
      ...origin(docker),
      run: async (env) => {
        for (const u of docker.users) {
          const r = await userRun(env, u.name)
          if (r.status === 'passed')
            return { status: 'passed', output: `${r.output} (as ${u.name})` }
        }
        return dockerReaches(env, undefined)
      }
    })
    for (const u of docker.users) {
      specs.push({
        name: `docker as ${u.name} (no sudo)`,
        timeoutMs: docker.timeoutMs,
        ...origin(u),
        run: (env) => userRun(env, u.name)
      })
    }
  }
  if (specs.length === 0) return noSection('services', 'services or docker section', checks)
  return runChecks(ctx, specs)
}

/** Per-check timeouts of this stage when the file gives none. */
export const SERVICES_TIMEOUTS = { service: 60_000, docker: 60_000 } as const

const SERVICE_KEYS = ['unit', 'user', 'timeout']

/** `services: [unit | {unit, user, timeout}]` */
const parseServices: SectionParser<ServicesSection> = (s, { value }, config) => {
  const r = s.r
  r.seq(value, 'services', 'units (a unit name or {unit, user, timeout})')?.forEach((item, i) => {
    const path = `services[${i}]`
    if (isScalar(item)) {
      const unit = r.str(item, path, UNIT_NAME, 'a systemd unit name')
      if (unit !== undefined)
        config.services.push({ ...s.at(item), unit, timeoutMs: SERVICES_TIMEOUTS.service })
      return
    }
    const m = r.map(item, path, SERVICE_KEYS, ['unit'])
    if (m === undefined) return
    const unit = m.has('unit')
      ? r.str(s.value(m, 'unit'), `${path}.unit`, UNIT_NAME, 'a systemd unit name')
      : undefined
    const user = m.has('user')
      ? r.str(s.value(m, 'user'), `${path}.user`, USER_NAME, 'a user name')
      : undefined
    const spec: ServiceSpec = {
      ...s.at(item),
      unit: unit ?? '',
      timeoutMs: s.timeoutOf(m, path, SERVICES_TIMEOUTS.service)
    }
    if (user !== undefined) spec.user = user
    if (unit !== undefined) config.services.push(spec)
  })
}

/** `docker: {users, timeout}` */
const parseDocker: SectionParser<ServicesSection> = (s, { key, value }, config) => {
  const m = s.r.map(value, 'docker', ['users', 'timeout'])
  if (m === undefined) return
  const users = m.has('users')
    ? s.r.strList(s.value(m, 'users'), 'docker.users', USER_NAME, 'a user name')
    : []
  config.docker = {
    ...s.at(key),
    users: users.map((u) => ({ name: u.value, file: s.file, line: u.line })),
    timeoutMs: s.timeoutOf(m, 'docker', SERVICES_TIMEOUTS.docker)
  } satisfies DockerSpec
}

export const servicesUnit: StageUnit<'services', ServicesSection, typeof SERVICES_TIMEOUTS> = {
  name: 'services',
  sections: { services: parseServices, docker: parseDocker },
  fileBase: () => ({ services: [] }),
  defaults: () => ({
    services: [{ unit: 'sshd.service', timeoutMs: SERVICES_TIMEOUTS.service }]
  }),
  timeouts: SERVICES_TIMEOUTS,
  afterBootEnd: true,
  run: (ctx) => servicesStage(runContext(ctx, 'services'), ctx.checks)
}
