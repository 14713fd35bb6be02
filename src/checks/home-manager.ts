import type { Node } from 'yaml'
import type { CheckResult } from '../report/model.js'
import { shellQuote } from '../ssh/client.js'
import { combined, describeExit } from '../ssh/guest.js'
import type { ChecksFile, HomeManagerSection, HomeManagerSpec } from './model.js'
import { USER_NAME, type SectionContext, type SectionParser } from './reader.js'
import {
  noSection,
  origin,
  runChecks,
  type CheckEnv,
  type CheckOutcome,
  type CheckSpec,
  type RunContext
} from './run.js'
import { unitActive } from './services.js'
import { runContext, type StageUnit } from './unit.js'

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
  const r = await env.guest.run(homeFileCommand(user, path), {
    timeoutMs: env.deadline.remaining()
  })
  return {
    status: r.code === 0 ? 'passed' : 'failed',
    output: r.code === 0 || r.code === 1 ? combined(r) : `${describeExit(r)}\n${combined(r)}`
  }
}

/**
 * Stage `home-manager`: home-manager-USER.service finished successfully, then the files exist in
 * the user's home. A guest without the unit skips the entry, saying so (unless the configuration
 * declared Home Manager for that user: then it fails).
 */
export async function homeManagerStage(
  ctx: RunContext,
  checks: ChecksFile & HomeManagerSection
): Promise<CheckResult[]> {
  if (checks.homeManager.length === 0) {
    return noSection('home-manager', 'homeManager section', checks)
  }
  const unitSpec = (h: HomeManagerSpec): CheckSpec => ({
    name: homeManagerUnit(h.user),
    timeoutMs: h.timeoutMs,
    ...origin(h),
    unit: homeManagerUnit(h.user),
    run: async (env) => {
      const r = await unitActive(env, homeManagerUnit(h.user), undefined)
      // A configuration that declares Home Manager for the user promises the unit: missing fails.
      if (r.state.LoadState === 'not-found' && h.declared === undefined) {
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
          ...origin(f)
        })
        continue
      }
      files.push({
        name,
        timeoutMs: 30_000,
        ...origin(f),
        run: (env) => homeFile(env, h.user, f.path)
      })
    }
  })
  return [...units, ...(await runChecks(ctx, files)), ...skipped]
}

/** Per-check timeouts of this stage when the file gives none. */
export const HOME_MANAGER_TIMEOUTS = { homeManager: 2 * 60_000 } as const

/** One `homeManager` entry: {user, files, timeout}. */
function parseEntry(s: SectionContext, item: Node, path: string): HomeManagerSpec | undefined {
  const m = s.r.map(item, path, ['user', 'files', 'timeout'], ['user'])
  if (m === undefined) return undefined
  const user = m.has('user')
    ? s.r.str(s.value(m, 'user'), `${path}.user`, USER_NAME, 'a user name')
    : undefined
  const files = m.has('files')
    ? s.r.strList(
        s.value(m, 'files'),
        `${path}.files`,
        /^(?!\/)(?!.*(^|\/)\.\.(\/|$)).+$/,
        'a path relative to the home directory'
      )
    : []
  if (user === undefined) return undefined
  return {
    ...s.at(item),
    user,
    files: files.map((f) => ({ path: f.value, file: s.file, line: f.line })),
    timeoutMs: s.timeoutOf(m, path, HOME_MANAGER_TIMEOUTS.homeManager)
  }
}

/** `homeManager: [{user, files, timeout}]` */
const parseHomeManager: SectionParser<HomeManagerSection> = (s, { value }, config) => {
  s.r.seq(value, 'homeManager', 'entries ({user, files})')?.forEach((item, i) => {
    const spec = parseEntry(s, item, `homeManager[${i}]`)
    if (spec !== undefined) config.homeManager.push(spec)
  })
}

export const homeManagerStageUnit: StageUnit<
  'home-manager',
  HomeManagerSection,
  typeof HOME_MANAGER_TIMEOUTS
> = {
  name: 'home-manager',
  sections: { homeManager: parseHomeManager },
  fileBase: () => ({ homeManager: [] }),
  defaults: () => ({ homeManager: [] }),
  timeouts: HOME_MANAGER_TIMEOUTS,
  afterBootEnd: true,
  run: (ctx) => homeManagerStage(runContext(ctx, 'home-manager'), ctx.checks)
}
