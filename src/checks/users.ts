import type { Node } from 'yaml'
import type { CheckResult } from '../report/model.js'
import { shellQuote } from '../ssh/client.js'
import { combined, describeExit } from '../ssh/guest.js'
import type { ChecksFile, UsersSection, UserSpec } from './model.js'
import { USER_NAME, type SectionContext, type SectionParser } from './reader.js'
import {
  noSection,
  origin,
  runChecks,
  type CheckEnv,
  type CheckOutcome,
  type RunContext
} from './run.js'
import { runContext, type StageUnit } from './unit.js'

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

async function checkUser(env: CheckEnv, spec: UserSpec): Promise<CheckOutcome> {
  const r = await env.guest.run(accountCommand(spec.name), { timeoutMs: env.deadline.remaining() })
  const [passwd = '', groups = ''] = r.stdout.split('\n')
  const account = r.code === 0 ? parseAccount(passwd, groups) : undefined
  if (account === undefined) {
    return {
      status: 'failed',
      output: `user ${spec.name}: ${describeExit(r)}\n${combined(r)}`
    }
  }
  const problems = userProblems(spec, account)
  const facts = `${account.name}: uid ${account.uid}, home ${account.home}, shell ${account.shell}, groups ${account.groups.join(' ')}`
  return problems.length === 0
    ? { status: 'passed', output: facts }
    : { status: 'failed', output: `${problems.join('\n')}\n${facts}` }
}

/** Stage `users`: accounts, groups, shells, homes. */
export async function usersStage(
  ctx: RunContext,
  checks: ChecksFile & UsersSection
): Promise<CheckResult[]> {
  if (checks.users.length === 0) return noSection('users', 'users section', checks)
  return runChecks(
    ctx,
    checks.users.map((u) => ({
      name: `user ${u.name}`,
      timeoutMs: u.timeoutMs,
      ...origin(u),
      run: (env) => checkUser(env, u)
    }))
  )
}

/** Per-check timeouts of this stage when the file gives none. */
export const USERS_TIMEOUTS = { user: 30_000 } as const

const USER_KEYS = ['name', 'groups', 'shell', 'home', 'timeout']

/** One `users` entry: {name, groups, shell, home, timeout}. */
function parseUser(s: SectionContext, item: Node, path: string): UserSpec | undefined {
  const r = s.r
  const m = r.map(item, path, USER_KEYS, ['name'])
  if (m === undefined) return undefined
  const name = m.has('name')
    ? r.str(s.value(m, 'name'), `${path}.name`, USER_NAME, 'a user name')
    : undefined
  if (name === undefined) return undefined
  const spec: UserSpec = {
    ...s.at(item),
    name,
    timeoutMs: s.timeoutOf(m, path, USERS_TIMEOUTS.user)
  }
  if (m.has('groups'))
    spec.groups = r
      .strList(s.value(m, 'groups'), `${path}.groups`, USER_NAME, 'a group name')
      .map((g) => g.value)
  if (m.has('shell'))
    spec.shell = r.str(
      s.value(m, 'shell'),
      `${path}.shell`,
      /^[^\s]+$/,
      'a shell (bash or /path/to/bash)'
    )
  if (m.has('home'))
    spec.home = r.str(s.value(m, 'home'), `${path}.home`, /^\/\S*$/, 'an absolute path')
  return spec
}

/** `users: [{name, groups, shell, home, timeout}]` */
const parseUsers: SectionParser<UsersSection> = (s, { value }, config) => {
  s.r.seq(value, 'users', 'users ({name, groups, shell, home})')?.forEach((item, i) => {
    const spec = parseUser(s, item, `users[${i}]`)
    if (spec !== undefined) config.users.push(spec)
  })
}

export const usersUnit: StageUnit<'users', UsersSection, typeof USERS_TIMEOUTS> = {
  name: 'users',
  sections: { users: parseUsers },
  fileBase: () => ({ users: [] }),
  // Group wheel (NixOS) vs sudo (Debian) differs by distribution, so only docker is required.
  defaults: () => ({
    users: []
  }),
  timeouts: USERS_TIMEOUTS,
  afterBootEnd: false,
  run: (ctx) => usersStage(runContext(ctx, 'users'), ctx.checks)
}
