import type { CheckResult } from '../report/model.js'
import { shellQuote, type ExecResult } from '../ssh/client.js'
import type { ChecksConfig, ServiceSpec } from './config.js'
import {
  asUser,
  combined,
  describeExit,
  noSection,
  poll,
  run,
  runChecks,
  type CheckEnv,
  type CheckOutcome,
  type CheckSpec,
  type RunContext
} from './run.js'
import { JOURNAL_LINES, unitJournalCommand } from './system.js'

export interface UnitState {
  LoadState?: string
  ActiveState?: string
  SubState?: string
  Result?: string
  /** `systemctl is-system-running` (without --wait). */
  SystemState?: string
}

/** KEY=VALUE lines of `systemctl show -p …` (plus our SystemState=) into an object. */
export function parseUnitState(text: string): UnitState {
  const out: Record<string, string> = {}
  for (const line of text.split('\n')) {
    const m = /^(\w+)=(.*)$/.exec(line.trim())
    if (m !== null) out[m[1]] = m[2]
  }
  return out as UnitState
}

/** What a unit's state means for "must be active": pass, keep waiting, or fail now. */
export function judgeUnit(s: UnitState): 'active' | 'wait' | 'failed' | 'not-found' {
  if (s.LoadState === 'not-found') return 'not-found'
  if (s.ActiveState === 'active' || s.ActiveState === 'reloading') return 'active'
  if (s.ActiveState === 'activating' || s.ActiveState === 'deactivating') return 'wait'
  // Queued but not started yet while the boot is still in progress.
  if (
    s.ActiveState === 'inactive' &&
    (s.SystemState === 'starting' || s.SystemState === 'initializing')
  )
    return 'wait'
  return 'failed'
}

const STATE_PROPS = '-p LoadState -p ActiveState -p SubState -p Result'

/** One command for the states of several system units (one block per unit, in order). */
export function unitStatesCommand(units: string[]): string {
  return `systemctl show ${STATE_PROPS} ${units.map(shellQuote).join(' ')}; echo "SystemState=$(systemctl is-system-running 2>/dev/null)"`
}

/** The guest command that prints a unit's state (system unit, or a user's unit). */
export function unitStateCommand(unit: string, user: string | undefined, sshUser: string): string {
  if (user === undefined) return unitStatesCommand([unit])
  const u = shellQuote(unit)
  // The user manager runs only while the user has a session (or lingers): start it as a login
  // would, then talk to it over its private socket (no D-Bus user session needed).
  const q = shellQuote(user)
  return [
    `uid=$(id -u ${q}) || exit 3`,
    `systemctl start "user@$uid.service" >/dev/null 2>&1 || true`,
    asUser(
      `XDG_RUNTIME_DIR=/run/user/$(id -u); export XDG_RUNTIME_DIR; systemctl --user show ${STATE_PROPS} ${u}; echo "SystemState=$(systemctl --user is-system-running 2>/dev/null)"`,
      user,
      sshUser
    )
  ].join('\n')
}

function unitJournal(unit: string, user: string | undefined): string {
  if (user === undefined) return unitJournalCommand(unit)
  return `journalctl -b --user-unit ${shellQuote(unit)} _UID=$(id -u ${shellQuote(user)}) -n ${JOURNAL_LINES} --no-pager -o short-monotonic 2>&1`
}

/**
 * The output of unitStatesCommand, by unit. Blocks come in argument order (an alias such as
 * sshd.service answers for its unit, so order, not Id, says whose block it is); a count that does
 * not match gives an empty map, and the units are asked one by one instead.
 */
export function parseUnitStates(units: string[], text: string): Map<string, UnitState> {
  const system = /^SystemState=(.*)$/m.exec(text)?.[1]
  const blocks = text
    .replace(/^SystemState=.*$/m, '')
    .split(/\n\s*\n/)
    .map((b) => b.trim())
    .filter((b) => b !== '')
  const out = new Map<string, UnitState>()
  if (blocks.length !== units.length) return out
  units.forEach((u, i) => {
    const state = parseUnitState(blocks[i])
    if (system !== undefined) state.SystemState = system
    out.set(u, state)
  })
  return out
}

/**
 * Waits (bounded) for `unit` to be active; on failure the output has its state and journal.
 * `firstLook`: the unit's state already asked together with others (the stage's first round),
 * used instead of the first command of its own.
 */
export async function unitActive(
  env: CheckEnv,
  unit: string,
  user: string | undefined,
  firstLook?: () => Promise<{ r: ExecResult; state?: UnitState }>
): Promise<CheckOutcome & { state: UnitState }> {
  const who = user !== undefined ? ` (user ${user})` : ''
  let first = firstLook
  const last = await poll(env.deadline, env.signal, async (remaining) => {
    const shared = first !== undefined ? await first() : undefined
    first = undefined
    const r =
      shared?.state !== undefined
        ? shared.r
        : await run(
            env,
            unitStateCommand(unit, user, env.sshUser),
            Math.min(30_000, Math.max(1000, remaining))
          )
    const state = shared?.state ?? parseUnitState(r.stdout)
    const verdict = r.code === 0 || state.ActiveState !== undefined ? judgeUnit(state) : 'failed'
    return { done: verdict !== 'wait', value: { r, state, verdict } }
  })
  const { r, state, verdict } = last.value
  const summary = `${unit}${who}: ${state.ActiveState ?? '?'} (${state.SubState ?? '?'}), load ${state.LoadState ?? '?'}, result ${state.Result ?? '?'}`
  if (verdict === 'active') return { status: 'passed', output: summary, state }
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
  const journal = await run(env, unitJournal(unit, user), 30_000)
  const waited =
    verdict === 'wait' ? ` — still ${state.ActiveState} when the check's time ran out` : ''
  return {
    status: 'failed',
    output: `${summary}${waited}\n\n── journalctl -b -u ${unit} -n ${JOURNAL_LINES}\n${combined(journal) || '(no journal lines)'}`,
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
export function dockerApiCommand(user: string | undefined, sshUser: string): string {
  return asUser(
    [
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
    ].join('\n'),
    user,
    sshUser
  )
}

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
  const last = await poll(
    env.deadline,
    env.signal,
    async (remaining) => {
      const r = await run(
        env,
        dockerApiCommand(user, env.sshUser),
        Math.min(60_000, Math.max(1000, remaining))
      )
      const out = combined(r)
      // The daemon may still be starting; a permission problem will not go away by waiting.
      const retry =
        r.code !== 0 &&
        /Cannot connect to the Docker daemon|Is the docker daemon running/i.test(out)
      return { done: !retry, value: r }
    },
    2000
  )
  const r = last.value
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
export async function servicesStage(ctx: RunContext, checks: ChecksConfig): Promise<CheckResult[]> {
  // The system units' first look is one command for all of them; a unit still starting is then
  // polled on its own.
  const systemUnits = [
    ...new Set(checks.services.filter((s) => s.user === undefined).map((s) => s.unit))
  ]
  let batch: Promise<{ r: ExecResult; states: Map<string, UnitState> }> | undefined
  const firstLook =
    (env: CheckEnv, unit: string) => async (): Promise<{ r: ExecResult; state?: UnitState }> => {
      batch ??= run(env, unitStatesCommand(systemUnits), 30_000).then((r) => ({
        r,
        states: parseUnitStates(systemUnits, r.stdout)
      }))
      const { r, states } = await batch
      return { r, state: states.get(unit) }
    }
  const specs: CheckSpec[] = checks.services.map((s) => ({
    name: serviceName(s),
    timeoutMs: s.timeoutMs,
    file: s.file,
    line: s.line,
    unit: s.user === undefined ? s.unit : undefined,
    run: (env) =>
      unitActive(
        env,
        s.unit,
        s.user,
        s.user === undefined && systemUnits.length > 1 ? firstLook(env, s.unit) : undefined
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
      file: docker.file,
      line: docker.line,
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
        file: u.file,
        line: u.line,
        run: (env) => userRun(env, u.name)
      })
    }
  }
  if (specs.length === 0) return noSection('services', 'services or docker section', checks)
  return runChecks(ctx, specs)
}
