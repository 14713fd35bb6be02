// One user's homes on Linux and Darwin (tests/fixtures/home-consistency: homeConfigurations in
// Home Manager's output shape) evaluated by real Nix, compared, rendered, and the CLI's
// `home-consistency` command writing home-consistency.json (docs/home-consistency.md).
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals'
import { spawnSync } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { compareHomes, consistent, homeConsistency } from '../../src/home/compare.js'
import { evaluateHomes, homeError, systemFromName } from '../../src/home/evaluate.js'
import { parseHomeFlake } from '../../src/home/flake.js'
import type { HomeConsistency, HomeEvaluation } from '../../src/home/model.js'
import { renderHomeConsistency } from '../../src/home/render.js'
import { parseHomeArgs, runHomeConsistency } from '../../src/cli/home.js'
import type { Command, ExecResult, Executor } from '../../src/nix/exec.js'
import { main as cliMain } from '../../src/cli/main.js'

const LINUX = 'alice@x86_64-linux'
const DARWIN = 'alice@aarch64-darwin'
const BROKEN = 'alice@aarch64-linux'
const HOMES = [LINUX, DARWIN, BROKEN]

const hasNix = spawnSync('sh', ['-c', 'command -v nix-instantiate']).status === 0
if (!hasNix && process.env.CI)
  throw new Error('nix-instantiate is not on PATH (apt-get install nix-bin)')
const describeWithNix = hasNix ? describe : describe.skip

let dir: string
let savedHome: string | undefined
/** Root without nixbld (Debian's nix-bin here): builds and evaluations need this option. */
const options: [string, string][] = process.getuid?.() === 0 ? [['build-users-group', '']] : []

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nvv-home-'))
  cpSync(resolve('tests/fixtures/home-consistency'), dir, { recursive: true })
  savedHome = process.env.HOME
  process.env.HOME = dir
})

afterAll(() => {
  process.env.HOME = savedHome
  rmSync(dir, { recursive: true, force: true })
})

describeWithNix('homes evaluated by Nix', () => {
  let homes: HomeEvaluation[]
  const byName = (name: string): HomeEvaluation => homes.find((h) => h.name === name)!

  beforeAll(async () => {
    homes = await evaluateHomes({
      flakeRef: `path:${dir}`,
      homes: HOMES,
      mapContext: { roots: [dir], repoRoot: dir },
      options
    })
  }, 120_000)

  it('evaluates each home on its own: the failing one hides neither other', () => {
    expect(homes.map((h) => h.name)).toEqual(HOMES)
    expect(byName(LINUX).error).toBeUndefined()
    expect(byName(DARWIN).error).toBeUndefined()
  })

  it('reads the system, the enabled file targets and the activation derivation', () => {
    expect(byName(LINUX)).toMatchObject({
      system: 'x86_64-linux',
      files: ['.bashrc', '.config/foot/foot.ini', '.config/git/config'],
      activationDrv: expect.stringMatching(
        /home-manager-generation-x86_64-linux\.drv$/
      ) as unknown as string
    })
    expect(byName(DARWIN).system).toBe('aarch64-darwin')
    expect(byName(DARWIN).files).toEqual([
      '.bashrc',
      '.config/git/config',
      'Library/Preferences/alice.plist'
    ])
    expect(byName(DARWIN).files).not.toContain('.oldrc')
  })

  it("decides availability as lib.meta.availableOn does, with the home's lib or without", () => {
    expect(byName(LINUX).packages).toEqual([
      { name: 'git', available: true },
      { name: 'strace', available: true },
      { name: 'foot', available: true },
      { name: 'gcc', available: true }
    ])
    expect(byName(DARWIN).packages).toEqual([
      { name: 'git', available: true },
      {
        name: 'strace',
        available: false,
        reason: 'meta.platforms does not include aarch64-darwin'
      },
      { name: 'gcc', available: true },
      { name: 'm-cli', available: true },
      { name: 'broken-tool', available: false, reason: 'meta.broken' }
    ])
  })

  it("keeps Nix's message, file and line of a failing home", () => {
    expect(byName(BROKEN)).toMatchObject({
      system: 'aarch64-linux',
      files: [],
      packages: [],
      error: { message: "attribute 'nvim-config' missing", file: 'broken.nix', line: 9 }
    })
  })

  it('lists every difference: failures, files, packages, unavailable packages', () => {
    expect(compareHomes(homes)).toEqual([
      {
        kind: 'error',
        item: BROKEN,
        present: [LINUX, DARWIN],
        absent: [BROKEN],
        detail: "attribute 'nvim-config' missing (broken.nix:9)"
      },
      { kind: 'file', item: '.config/foot/foot.ini', present: [LINUX], absent: [DARWIN] },
      { kind: 'file', item: 'Library/Preferences/alice.plist', present: [DARWIN], absent: [LINUX] },
      { kind: 'package', item: 'broken-tool', present: [DARWIN], absent: [LINUX] },
      { kind: 'package', item: 'foot', present: [LINUX], absent: [DARWIN] },
      { kind: 'package', item: 'm-cli', present: [DARWIN], absent: [LINUX] },
      {
        kind: 'unavailable',
        item: 'broken-tool',
        present: [],
        absent: [DARWIN],
        detail: `${DARWIN}: meta.broken`
      },
      {
        kind: 'unavailable',
        item: 'strace',
        present: [LINUX],
        absent: [DARWIN],
        detail: `${DARWIN}: meta.platforms does not include aarch64-darwin`
      }
    ])
  })

  it('renders the differences grouped by kind', () => {
    const md = renderHomeConsistency(homeConsistency('.', homes))
    expect(md).toContain('### Homes that fail (1)')
    expect(md).toContain('### Files managed on some homes only (2)')
    expect(md).toContain(
      '- `.config/foot/foot.ini` — missing on `alice@aarch64-darwin`; present on `alice@x86_64-linux`'
    )
    expect(md).toContain('### Packages unavailable on a platform (2)')
    expect(md).toMatch(
      /`strace` — unavailable on `alice@aarch64-darwin`: .*meta.platforms does not include/
    )
  })

  it('finds nothing between a home and itself', () => {
    const same = homeConsistency('.', [byName(LINUX), { ...byName(LINUX), name: 'alice@copy' }])
    expect(same.differences).toEqual([])
    expect(consistent(same)).toBe(true)
    expect(renderHomeConsistency(same)).toContain('Every home evaluates')
  })
})

describe('comparison without Nix', () => {
  const home = (name: string, extra: Partial<HomeEvaluation> = {}): HomeEvaluation => ({
    name,
    system: systemFromName(name),
    files: ['.bashrc'],
    packages: [{ name: 'git', available: true }],
    ...extra
  })

  it('a failed build of the activation package is an error of that home', () => {
    const d = compareHomes([
      home('a@x86_64-linux'),
      home('a@aarch64-darwin', { built: { ok: false, message: 'builder failed' } })
    ])
    expect(d).toEqual([
      {
        kind: 'error',
        item: 'a@aarch64-darwin',
        present: [],
        absent: ['a@aarch64-darwin'],
        detail: 'activationPackage did not build: builder failed'
      }
    ])
  })

  it('a store position outside any local flake keeps the path inside its source tree', () => {
    const stderr =
      "error: attribute 'x' missing\n\n       at /nix/store/n11jq3vkln0rmpbgjbpi4cymmbzja61a-source/users/a/home.nix:12:5:\n"
    expect(homeError(stderr, undefined)).toEqual({
      message: "attribute 'x' missing",
      file: 'users/a/home.nix',
      line: 12
    })
    expect(homeError('error: boom\n', undefined)).toEqual({ message: 'boom' })
  })

  it('the system of a failed home comes from its name', () => {
    expect(systemFromName('alice@aarch64-darwin')).toBe('aarch64-darwin')
    expect(systemFromName('alice')).toBe('unknown')
  })
})

describe('home-consistency command line', () => {
  it.each([
    [[], /needs --flake REF[\s\S]*needs --home NAME/],
    [['--flake', '.', '--home', 'a b'], /--home "a b" is not a homeConfigurations name/],
    [['--flake', '.#x', '--home', 'a'], /without a fragment/],
    [['--flake', 'nonsense', '--home', 'a'], /neither a path .* nor a flake URL/],
    [
      ['--flake', 'github:o/r', '--home', 'a', '--build', 'b'],
      /--build "b" is not one of the --home values; allowed: a/
    ],
    [
      ['--flake', 'github:o/r', '--home', 'a', '--system', 'x'],
      /unknown option --system; allowed: --flake, --home, --build, --out, --help/
    ]
  ])('rejects %j', (argv, message) => {
    expect(() => parseHomeArgs(argv, '/repo')).toThrow(message)
  })

  it('takes a URL as is and a local path as an absolute one', () => {
    expect(
      parseHomeArgs(['--flake', 'github:o/r', '--home', 'a@x', '--home=b@y', '--out', 'o'], '/repo')
    ).toEqual({
      flake: { flakeRef: 'github:o/r', display: 'github:o/r' },
      homes: ['a@x', 'b@y'],
      build: [],
      outDir: '/repo/o'
    })
    expect(parseHomeFlake('path:.', '/r', (p) => p === '/r/flake.nix')).toEqual({
      flakeRef: 'path:/r',
      localDir: '/r',
      display: 'path:.'
    })
  })

  it('exits 2 on bad input, naming the option', async () => {
    const err = jest.spyOn(process.stderr, 'write').mockImplementation(() => true)
    try {
      expect(await cliMain(['home-consistency', '--home', 'a'], () => undefined)).toBe(2)
      expect(err.mock.calls.map((c) => String(c[0])).join('')).toContain('needs --flake REF')
    } finally {
      err.mockRestore()
    }
  })

  const itWithNix = hasNix ? it : it.skip
  itWithNix(
    'writes home-consistency.json and .md, prints the markdown, exits 1 on differences',
    async () => {
      const out = join(dir, 'out')
      let printed = ''
      const code = await cliMain(
        [
          'home-consistency',
          '--flake',
          `path:${dir}`,
          ...HOMES.flatMap((h) => ['--home', h]),
          '--out',
          out
        ],
        (s) => (printed += s)
      )
      expect(code).toBe(1)
      const json = JSON.parse(
        readFileSync(join(out, 'home-consistency.json'), 'utf8')
      ) as HomeConsistency
      expect(json).toMatchObject({ schemaVersion: 1, flake: `path:${dir}` })
      expect(json.homes.map((h) => h.name)).toEqual(HOMES)
      expect(json.homes[2]!.error).toMatchObject({ file: 'broken.nix', line: 9 })
      expect(json.differences.map((d) => `${d.kind} ${d.item}`)).toContain('unavailable strace')
      expect(readFileSync(join(out, 'home-consistency.md'), 'utf8')).toBe(
        printed.split('written:')[0]
      )
      expect(printed).toContain('## Home consistency')
    },
    120_000
  )

  itWithNix(
    'exits 0 when the homes agree',
    async () => {
      const code = await cliMain(
        ['home-consistency', '--flake', dir, '--home', LINUX, '--out', join(dir, 'one')],
        () => undefined
      )
      expect(code).toBe(0)
    },
    60_000
  )
})

describe('home-consistency --build', () => {
  const itWithNix = hasNix ? it : it.skip
  itWithNix("builds the home's activation package and records a failed build", async () => {
    const commands: string[][] = []
    const result = (code: number, stdout: string, stderr = ''): ExecResult => ({
      code,
      signal: null,
      stdout,
      stderr,
      durationMs: 1
    })
    const exec: Executor = {
      run: (cmd: Command) => {
        commands.push(cmd.argv)
        const home = cmd.argv[cmd.argv.indexOf('home') + 1]
        if (cmd.argv.includes('--eval'))
          return Promise.resolve(
            result(
              0,
              JSON.stringify({ name: home, system: 'aarch64-darwin', files: [], packages: [] })
            )
          )
        if (cmd.argv.includes('build'))
          return Promise.resolve(
            result(1, '', 'error: builder for gcc-14.drv failed with exit code 1')
          )
        return Promise.resolve(result(1, ''))
      }
    }
    const outDir = join(dir, 'built')
    const code = await runHomeConsistency(
      {
        flake: { flakeRef: '/f', display: '.' },
        homes: ['a@aarch64-darwin'],
        build: ['a@aarch64-darwin'],
        outDir
      },
      () => undefined,
      exec
    )
    expect(code).toBe(1)
    expect(commands.find((c) => c.includes('build'))).toEqual(
      expect.arrayContaining(['/f#homeConfigurations."a@aarch64-darwin".activationPackage'])
    )
    const json = JSON.parse(
      readFileSync(join(outDir, 'home-consistency.json'), 'utf8')
    ) as HomeConsistency
    expect(json.homes[0]!.built).toEqual({
      ok: false,
      message: 'error: builder for gcc-14.drv failed with exit code 1'
    })
    expect(json.differences).toEqual([
      expect.objectContaining({ kind: 'error', item: 'a@aarch64-darwin' })
    ])
  })
})
