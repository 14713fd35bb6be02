import { existsSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { isAbsolute, join, resolve } from 'node:path'
import { consistent, homeConsistency } from '../home/compare.js'
import { evaluateHomes } from '../home/evaluate.js'
import { HOME_NAME, homeMapContext, parseHomeFlake, type HomeFlake } from '../home/flake.js'
import { HOME_CONSISTENCY_FILE, type HomeEvaluation } from '../home/model.js'
import { renderHomeConsistency } from '../home/render.js'
import { nixErrorLines } from '../nix/build.js'
import { nixArgv } from '../nix/conf.js'
import { spawnExecutor, type Executor } from '../nix/exec.js'
import { DAEMON_SOCKET, findOnPath, nixRunOptions, readBuildUsers } from '../nix/facts.js'
import { RUN_DEFAULTS } from '../pipeline/request.js'
import { InputError } from '../util/errors.js'
import { InputErrorCollector } from '../util/input-errors.js'

export const HOME_USAGE = `usage: vm-automation home-consistency --flake REF --home NAME [--home NAME ...] [options]

Evaluates each homeConfigurations.NAME of the flake on its own (no build) and reports what
differs between them: managed files, packages, packages unavailable on a platform, failures.

  --flake REF            the flake: ., ./dir, /dir, path:./dir, github:owner/repo (no #fragment)
  --home NAME            a homeConfigurations entry, e.g. alice@aarch64-darwin (repeat: two or more
                         to compare)
  --build NAME           also build that home's activationPackage (one of the --home values; on
                         its own platform, e.g. a macOS runner for a Darwin home)
  --out DIR              writes ${HOME_CONSISTENCY_FILE} and home-consistency.md, default ./${RUN_DEFAULTS.out}
Exit codes: 0 every home evaluates and nothing differs, 1 something differs or fails, 2 bad input.`

export interface HomeOptions {
  flake: HomeFlake
  homes: string[]
  build: string[]
  outDir: string
}

const FLAGS = ['flake', 'home', 'build', 'out'] as const

/** The arguments after `home-consistency`; every bad one is reported at once (InputErrors). */
export function parseHomeArgs(rest: string[], cwd: string): HomeOptions | 'help' {
  const errors = new InputErrorCollector()
  const values = new Map<string, string[]>(FLAGS.map((f) => [f, []]))
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]
    if (arg === '--help' || arg === '-h') return 'help'
    const m = /^--([\w-]+)(?:=(.*))?$/s.exec(arg)
    if (m === null) {
      errors.add('argument', `unexpected argument "${arg}"`)
      continue
    }
    const list = values.get(m[1])
    if (list === undefined) {
      const allowed = [...FLAGS, 'help'].map((f) => `--${f}`).join(', ')
      errors.add(m[1], `unknown option --${m[1]}; allowed: ${allowed}`)
      continue
    }
    const value = m[2] ?? rest[++i]
    if (value === undefined) errors.add(m[1], `--${m[1]} needs a value`)
    else list.push(value)
  }
  return checkHomeOptions(values, cwd, errors)
}

function checkHomeOptions(
  values: Map<string, string[]>,
  cwd: string,
  errors: InputErrorCollector
): HomeOptions {
  const [flakeText, ...moreFlakes] = values.get('flake') ?? []
  const homes = values.get('home') ?? []
  const build = values.get('build') ?? []
  const outs = values.get('out') ?? []
  if (flakeText === undefined) errors.add('flake', 'home-consistency needs --flake REF')
  if (moreFlakes.length > 0) errors.add('flake', '--flake is given more than once')
  if (outs.length > 1) errors.add('out', '--out is given more than once')
  if (homes.length === 0 && !errors.failed('home'))
    errors.add(
      'home',
      'home-consistency needs --home NAME (a homeConfigurations entry), once per home'
    )
  for (const h of homes)
    if (!HOME_NAME.test(h))
      errors.add(
        'home',
        `--home "${h}" is not a homeConfigurations name (letters, digits, _ . + @ ' -)`
      )
  if (new Set(homes).size !== homes.length) errors.add('home', '--home names a home twice')
  for (const b of build)
    if (!homes.includes(b))
      errors.add(
        'build',
        `--build "${b}" is not one of the --home values; allowed: ${homes.join(', ') || 'none given'}`
      )
  const flake =
    flakeText !== undefined
      ? errors.check('flake', () => parseHomeFlake(flakeText, cwd))
      : undefined
  errors.throwIfAny()
  const out = outs[0] ?? RUN_DEFAULTS.out
  return {
    flake: flake as HomeFlake,
    homes,
    build,
    outDir: isAbsolute(out) ? out : resolve(cwd, out)
  }
}

/** `nix build` of a home's activation package; ok, or the last lines of Nix's error. */
async function buildHome(
  o: { nix: string; flake: HomeFlake; options: [string, string][]; exec: Executor },
  home: string
): Promise<NonNullable<HomeEvaluation['built']>> {
  const installable = `${o.flake.flakeRef}#homeConfigurations."${home}".activationPackage`
  const argv = nixArgv(o.nix, ['build', '--no-link', '--print-build-logs'], o.options, [
    installable
  ])
  const r = await o.exec.run({ argv, why: `build homeConfigurations.${home}.activationPackage` })
  if (r.code === 0) return { ok: true }
  return { ok: false, message: nixErrorLines(r.stderr, 5) || `exit ${r.code ?? r.signal ?? '?'}` }
}

/** Runs `home-consistency`: the files written, the markdown printed; the exit code (0 or 1). */
export async function runHomeConsistency(
  opts: HomeOptions,
  out: (s: string) => void,
  exec: Executor = spawnExecutor()
): Promise<number> {
  const nix = findOnPath('nix')
  if (nix === undefined) throw new InputError('home-consistency needs Nix, and nix is not on PATH')
  const uid = process.getuid?.() ?? 1000
  const buildUsers = await readBuildUsers(exec, nix, { uid, daemon: daemonRunning() })
  const options = nixRunOptions({ buildUsers })
  const homes = await evaluateHomes({
    flakeRef: opts.flake.flakeRef,
    homes: opts.homes,
    mapContext: homeMapContext(opts.flake),
    options,
    nix,
    exec
  })
  for (const name of opts.build) {
    const h = homes.find((e) => e.name === name)
    if (h !== undefined) h.built = await buildHome({ nix, flake: opts.flake, options, exec }, name)
  }
  const result = homeConsistency(opts.flake.display, homes)
  const md = renderHomeConsistency(result)
  await mkdir(opts.outDir, { recursive: true })
  await writeFile(join(opts.outDir, HOME_CONSISTENCY_FILE), JSON.stringify(result, null, 2) + '\n')
  await writeFile(join(opts.outDir, 'home-consistency.md'), md)
  out(md)
  out(`written: ${join(opts.outDir, HOME_CONSISTENCY_FILE)}\n`)
  return consistent(result) ? 0 : 1
}

function daemonRunning(): boolean {
  return existsSync(DAEMON_SOCKET)
}
