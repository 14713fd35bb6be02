import type { CheckResult } from '../report/model.js'
import { shellQuote } from '../ssh/client.js'
import type { ChecksConfig, HomeManagerSpec, UserSpec } from './config.js'
import { DEFAULTS_LABEL, DEFAULT_USER } from './defaults.js'
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
import { unitActive } from './services.js'

export interface Account {
  name: string
  uid: number
  home: string
  shell: string
  groups: string[]
}

/** `getent passwd NAME` line + `id -nG NAME` line. */
export function parseAccount(passwdLine: string, groupsLine: string): Account | undefined {
  const f = passwdLine.trim().split(':')
  if (f.length < 7) return undefined
  return {
    name: f[0],
    uid: Number(f[2]),
    home: f[5],
    shell: f[6],
    groups: groupsLine.trim().split(/\s+/).filter(Boolean)
  }
}

/** Every way `account` differs from `spec`; empty when it matches. */
export function userProblems(
  spec: Pick<UserSpec, 'name' | 'groups' | 'shell' | 'home'>,
  account: Account
): string[] {
  const problems: string[] = []
  for (const g of spec.groups ?? []) {
    if (!account.groups.includes(g))
      problems.push(
        `${spec.name} is not in group ${g} (groups: ${account.groups.join(' ') || 'none'})`
      )
  }
  if (spec.shell !== undefined) {
    const matches = spec.shell.includes('/')
      ? account.shell === spec.shell
      : account.shell.split('/').at(-1) === spec.shell
    if (!matches)
      problems.push(`${spec.name}'s login shell is ${account.shell}, expected ${spec.shell}`)
  }
  if (
    spec.home !== undefined &&
    account.home.replace(/\/+$/, '') !== spec.home.replace(/\/+$/, '')
  ) {
    problems.push(`${spec.name}'s home is ${account.home}, expected ${spec.home}`)
  }
  return problems
}

export function accountCommand(name: string): string {
  const q = shellQuote(name)
  return `getent passwd ${q} || { echo "no such user: "${q} >&2; exit 2; }; id -nG ${q}`
}

async function checkUser(
  env: CheckEnv,
  spec: UserSpec,
  usingDefaults: boolean
): Promise<CheckOutcome> {
  const r = await run(env, accountCommand(spec.name), env.deadline.remaining())
  const [passwd = '', groups = ''] = r.stdout.split('\n')
  const account = r.code === 0 ? parseAccount(passwd, groups) : undefined
  if (account === undefined) {
    const hint =
      usingDefaults && spec.name === DEFAULT_USER
        ? `\nthe ${DEFAULTS_LABEL} assume the user ${DEFAULT_USER}; pass --checks FILE (tests/vm/checks.yml) naming this guest's users`
        : ''
    return {
      status: 'failed',
      output: `user ${spec.name}: ${describeExit(r)}\n${combined(r)}${hint}`
    }
  }
  const problems = userProblems(spec, account)
  const facts = `${account.name}: uid ${account.uid}, home ${account.home}, shell ${account.shell}, groups ${account.groups.join(' ')}`
  return problems.length === 0
    ? { status: 'passed', output: facts }
    : { status: 'failed', output: `${problems.join('\n')}\n${facts}` }
}

/** Stage `users`: accounts, groups, shells, homes. */
export async function usersStage(ctx: RunContext, checks: ChecksConfig): Promise<CheckResult[]> {
  if (checks.users.length === 0) return noSection('users', 'users section', checks)
  const usingDefaults = checks.source === undefined
  return runChecks(
    ctx,
    checks.users.map((u) => ({
      name: `user ${u.name}`,
      timeoutMs: u.timeoutMs,
      file: u.file,
      line: u.line,
      run: (env) => checkUser(env, u, usingDefaults)
    }))
  )
}

export function homeManagerUnit(user: string): string {
  return `home-manager-${user}.service`
}

/** Prints "ok PATH -> TARGET" or "missing PATH" for `path` under the user's home. */
export function homeFileCommand(user: string, path: string): string {
  const q = shellQuote(user)
  const p = shellQuote(path)
  return [
    `home=$(getent passwd ${q} | cut -d: -f6)`,
    `[ -n "$home" ] || { echo "no such user: "${q} >&2; exit 2; }`,
    `f="$home"/${p}`,
    `if [ -e "$f" ]; then echo "ok $f$( [ -L "$f" ] && printf ' -> %s' "$(readlink "$f")" )"; ` +
      `elif [ -L "$f" ]; then echo "dangling symlink $f -> $(readlink "$f")"; exit 1; ` +
      `else echo "missing $f"; exit 1; fi`
  ].join('\n')
}

async function homeFile(env: CheckEnv, user: string, path: string): Promise<CheckOutcome> {
  const r = await run(env, homeFileCommand(user, path), env.deadline.remaining())
  return {
    status: r.code === 0 ? 'passed' : 'failed',
    output: r.code === 0 || r.code === 1 ? combined(r) : `${describeExit(r)}\n${combined(r)}`
  }
}

/**
 * Stage `home-manager`: home-manager-USER.service finished successfully, then the files exist in
 * the user's home. A guest without the unit skips the entry, saying so.
 */
export async function homeManagerStage(
  ctx: RunContext,
  checks: ChecksConfig
): Promise<CheckResult[]> {
  if (checks.homeManager.length === 0) {
    return noSection('home-manager', 'homeManager section', checks)
  }
  const unitSpec = (h: HomeManagerSpec): CheckSpec => ({
    name: homeManagerUnit(h.user),
    timeoutMs: h.timeoutMs,
    file: h.file,
    line: h.line,
    unit: homeManagerUnit(h.user),
    run: async (env) => {
      const r = await unitActive(env, homeManagerUnit(h.user), undefined)
      if (r.state.LoadState === 'not-found') {
        return {
          status: 'skipped',
          output: `${homeManagerUnit(h.user)} does not exist: this guest does not use Home Manager for ${h.user}`
        }
      }
      // A oneshot activation: "active (exited)", or inactive after a successful run when the
      // unit does not RemainAfterExit.
      if (
        r.status === 'failed' &&
        r.state.ActiveState === 'inactive' &&
        r.state.Result === 'success'
      ) {
        return {
          status: 'passed',
          output: `${homeManagerUnit(h.user)}: ran and exited successfully (inactive, result success)`
        }
      }
      if (r.status === 'passed' && r.state.Result !== undefined && r.state.Result !== 'success') {
        return {
          ...r,
          status: 'failed',
          output: `${r.output}\nthe activation did not succeed (Result=${r.state.Result})`
        }
      }
      return r
    }
  })
  const units = await runChecks(ctx, checks.homeManager.map(unitSpec))
  const files: CheckSpec[] = []
  const skipped: CheckResult[] = []
  checks.homeManager.forEach((h, i) => {
    for (const f of h.files) {
      const name = `${h.user}: ~/${f.path}`
      if (units[i]?.status === 'skipped') {
        skipped.push({
          name,
          status: 'skipped',
          durationMs: 0,
          output: `not checked: ${homeManagerUnit(h.user)} does not exist`,
          ...(f.file !== undefined ? { file: f.file } : {}),
          ...(f.line !== undefined ? { line: f.line } : {})
        })
        continue
      }
      files.push({
        name,
        timeoutMs: 30_000,
        file: f.file,
        line: f.line,
        run: (env) => homeFile(env, h.user, f.path)
      })
    }
  })
  return [...units, ...(await runChecks(ctx, files)), ...skipped]
}
