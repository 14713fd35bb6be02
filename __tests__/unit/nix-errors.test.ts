import { describe, expect, it } from '@jest/globals'
import {
  findPositions,
  mapPosition,
  summarizeNixError,
  type MapContext
} from '../../src/nix/errors.js'

/*
 * Real outputs of Debian's nix-bin 2.8.0 (`nix build --impure --expr <BUILD_EXPRESSION> …`) on
 * broken copies of tests/fixtures/flake, captured on the development machine. Store hashes are
 * the real ones; the repository is /work/repo below.
 */
const SYNTAX = `error: syntax error, unexpected '=', expecting ';'

       at /nix/store/wi7mcjay25hxmr36qdp95snalz2h7kpz-source/configuration.nix:6:45:

            5|   networking.hostName = "fixture"
            6|   services.openssh.settings.PermitRootLogin = "no";
             |                                             ^
            7|   users.users.root.openssh.authorizedKeys.keys = [ ];
(use '--show-trace' to show detailed location information)
`

const UNDEFINED = `error: undefined variable 'hostname'

       at /nix/store/s57slw169i532cqi76alb7sc66nh5247-source/configuration.nix:5:25:

            4| {
            5|   networking.hostName = hostname;
             |                         ^
            6|   services.openssh.settings.PermitRootLogin = "no";
(use '--show-trace' to show detailed location information)
`

const FLAKE_SYNTAX = `error: syntax error, unexpected '='

       at /nix/store/5lnq072yp24iysvpikyjrnax5y379b53-source/flake.nix:8:13:

            7|
            8|   outputs = =
             |             ^
            9|     { self }:
`

const MISSING = `error: nixos-vm-validate: /tmp/nvx/fl has no nixosConfigurations.nope (it has: fixture, fixture-aarch64)
`

const CONFLICT = `error: The option \`networking.hostName' has conflicting definition values.
(use '--show-trace' to show detailed location information)
`

/** --show-trace: 2.8 prints the innermost frame first; the user's line, then the module system's. */
const THROW_TRACE = `error: custom failure in config

       … while evaluating the attribute 'enable'

       at /nix/store/xh0wfzhsza4l5k042ijg0djvnvv7693x-source/configuration.nix:7:3:

            6|   services.openssh.settings.PermitRootLogin = "no";
            7|   services.openssh.enable = builtins.throw "custom failure in config";
             |   ^
            8|   users.users.root.openssh.authorizedKeys.keys = [ ];

       … while evaluating 'typeOf'

       at /nix/store/xh0wfzhsza4l5k042ijg0djvnvv7693x-source/lib/lib.nix:10:12:

            9|
           10|   typeOf = v: if builtins.isAttrs v then v._type or null else null;
             |            ^
           11|
`

/** --print-build-logs: the builder's output comes before the error. */
const BUILDER_L = `building '/nix/store/97kjn2wyids4c6jyjx58vqpi7f5bmkd0-nixos-vm.drv'...
nixos-vm> /nix/store/vk4yxfrs9r8kbwvzal3chfjpsxj1m3p6-build-vm.sh: 36: cannot create /nix/store/88kjiviyxlk6m1xvjchnnipc578vv94h-nixos-vm/bin/run-a/b-vm: Directory nonexistent
error: builder for '/nix/store/97kjn2wyids4c6jyjx58vqpi7f5bmkd0-nixos-vm.drv' failed with exit code 2
`

const BUILDER = `building '/nix/store/97kjn2wyids4c6jyjx58vqpi7f5bmkd0-nixos-vm.drv'...
error: builder for '/nix/store/97kjn2wyids4c6jyjx58vqpi7f5bmkd0-nixos-vm.drv' failed with exit code 2;
       last 1 log lines:
       > /nix/store/vk4yxfrs9r8kbwvzal3chfjpsxj1m3p6-build-vm.sh: 36: cannot create /nix/store/88kjiviyxlk6m1xvjchnnipc578vv94h-nixos-vm/bin/run-a/b-vm: Directory nonexistent
       For full logs, run 'nix log /nix/store/97kjn2wyids4c6jyjx58vqpi7f5bmkd0-nixos-vm.drv'.
`

/**
 * Layout of current Nix (2.20+: trace first, the innermost error and its position last), written
 * after that format for the parser's second branch — not captured here (no such Nix on this machine).
 */
const CURRENT_LAYOUT = `error:
       … while calling the 'head' builtin
         at /nix/store/0000000000000000000000000000000n-source/lib/attrsets.nix:1575:11:
         1574|         || pred here (elemAt values 1) (head values) then
         1575|           head values
             |           ^

       … while evaluating the attribute 'value'
         at /nix/store/0000000000000000000000000000000n-source/lib/modules.nix:816:9:

       (stack trace truncated; use '--show-trace' to show the full, detailed trace)

       error: The option \`services.nginx.enabled' does not exist. Definition values:
       - In \`/nix/store/1111111111111111111111111111111r-source/machines/nixos-vm.nix'
`

const repo = '/work/repo'
/** The repository's files, and the store copies Nix read (same text: the error is in them). */
function ctx(files: Record<string, string>, roots = [repo]): MapContext {
  return { roots, repoRoot: repo, readFile: (p) => files[p] }
}
const fixture = {
  '/work/repo/configuration.nix': 'conf',
  '/nix/store/wi7mcjay25hxmr36qdp95snalz2h7kpz-source/configuration.nix': 'conf',
  '/nix/store/s57slw169i532cqi76alb7sc66nh5247-source/configuration.nix': 'conf',
  '/work/repo/flake.nix': 'flake',
  '/nix/store/5lnq072yp24iysvpikyjrnax5y379b53-source/flake.nix': 'flake',
  '/nix/store/xh0wfzhsza4l5k042ijg0djvnvv7693x-source/configuration.nix': 'conf',
  '/work/repo/lib/lib.nix': 'lib',
  '/nix/store/xh0wfzhsza4l5k042ijg0djvnvv7693x-source/lib/lib.nix': 'lib'
}

describe('summarizeNixError with Nix 2.8 texts', () => {
  it('syntax error: message, repository file and line', () => {
    const s = summarizeNixError(SYNTAX, ctx(fixture))
    expect(s).toMatchObject({
      message: "syntax error, unexpected '=', expecting ';'",
      file: 'configuration.nix',
      line: 6,
      column: 45,
      where: 'repo'
    })
    expect(s.excerpt).toContain('6|   services.openssh.settings.PermitRootLogin = "no";')
    expect(s.excerpt).not.toContain('--show-trace')
  })

  it('undefined variable', () => {
    expect(summarizeNixError(UNDEFINED, ctx(fixture))).toMatchObject({
      message: "undefined variable 'hostname'",
      file: 'configuration.nix',
      line: 5
    })
  })

  it('an error in flake.nix itself', () => {
    expect(summarizeNixError(FLAKE_SYNTAX, ctx(fixture))).toMatchObject({
      file: 'flake.nix',
      line: 8,
      column: 13
    })
  })

  it('a flake in a subdirectory of the repository: the path is relative to the repository', () => {
    const sub = {
      '/work/repo/nix/configuration.nix': 'conf',
      '/nix/store/s57slw169i532cqi76alb7sc66nh5247-source/configuration.nix': 'conf'
    }
    const s = summarizeNixError(UNDEFINED, {
      roots: ['/work/repo/nix', repo],
      repoRoot: repo,
      readFile: (p) => (sub as Record<string, string>)[p]
    })
    expect(s.file).toBe('nix/configuration.nix')
  })

  it('with --show-trace: the user’s own line, not the module system’s', () => {
    expect(summarizeNixError(THROW_TRACE, ctx(fixture))).toMatchObject({
      message: 'custom failure in config',
      file: 'configuration.nix',
      line: 7,
      column: 3
    })
  })

  it('messages without a position (our wrapper’s throw, a conflict) have no file', () => {
    const m = summarizeNixError(MISSING, ctx(fixture))
    expect(m.message).toBe(
      'nixos-vm-validate: /tmp/nvx/fl has no nixosConfigurations.nope (it has: fixture, fixture-aarch64)'
    )
    expect(m.file).toBeUndefined()
    expect(summarizeNixError(CONFLICT, ctx(fixture))).toMatchObject({
      message: "The option `networking.hostName' has conflicting definition values."
    })
  })

  it('a builder failure keeps the builder’s last lines, with and without --print-build-logs', () => {
    for (const text of [BUILDER_L, BUILDER]) {
      const s = summarizeNixError(text, ctx(fixture))
      expect(s.message).toMatch(
        /^builder for '\/nix\/store\/97kjn2wyids4c6jyjx58vqpi7f5bmkd0-nixos-vm\.drv' failed with exit code 2/
      )
      expect(s.excerpt).toContain('Directory nonexistent')
      expect(s.file).toBeUndefined()
    }
  })

  it('a file of another -source tree (nixpkgs) is not mistaken for the repository’s', () => {
    // the repository has a lib/lib.nix too, but with other content than the store file Nix read
    const s = summarizeNixError(
      THROW_TRACE.replace(/configuration\.nix:7:3/, 'other.nix:7:3'),
      ctx({ ...fixture, '/work/repo/lib/lib.nix': 'different' })
    )
    expect(s.file).toBeUndefined()
  })

  it('strips colours', () => {
    expect(
      summarizeNixError(
        '\x1b[31;1merror:\x1b[0m ' + UNDEFINED.slice('error: '.length),
        ctx(fixture)
      ).line
    ).toBe(5)
  })
})

describe('summarizeNixError with the current layout', () => {
  it('takes the last (innermost) error and its file without a line', () => {
    const files = {
      '/work/repo/machines/nixos-vm.nix': 'vm',
      '/nix/store/1111111111111111111111111111111r-source/machines/nixos-vm.nix': 'vm'
    }
    const s = summarizeNixError(CURRENT_LAYOUT, ctx(files))
    expect(s.message).toBe("The option `services.nginx.enabled' does not exist. Definition values:")
    expect(s.file).toBe('machines/nixos-vm.nix')
    expect(s.line).toBeUndefined()
  })
})

describe('positions', () => {
  it('finds store, absolute and «string» positions in order', () => {
    const text =
      'at /nix/store/wi7mcjay25hxmr36qdp95snalz2h7kpz-source/a/b.nix:3:30: then /work/repo/c.nix:4:1 and «string»:12:5 and (string):1:2'
    expect(findPositions(text).map((p) => [p.subpath, p.line, p.column])).toEqual([
      ['a/b.nix', 3, 30],
      ['/work/repo/c.nix', 4, 1],
      ['«string»', 12, 5],
      ['«string»', 1, 2]
    ])
  })

  it('maps absolute paths under the repository, and nothing else', () => {
    const [abs] = findPositions('at /work/repo/machines/vm.nix:3:30:')
    expect(mapPosition(abs, ctx({}))).toBe('machines/vm.nix')
    const [outside] = findPositions('at /etc/nixos/configuration.nix:3:30:')
    expect(mapPosition(outside, ctx({}))).toBeUndefined()
    const [str] = findPositions('at «string»:12:5:')
    expect(mapPosition(str, ctx({}))).toBeUndefined()
    expect(
      summarizeNixError("error: attribute 'x' missing\n\n       at «string»:12:5:\n", ctx({}))
    ).toMatchObject({ where: 'wrapper', line: 12 })
  })

  it('without the store copy (collected), an existing repository file is taken', () => {
    const [p] = findPositions(
      'at /nix/store/wi7mcjay25hxmr36qdp95snalz2h7kpz-source/configuration.nix:6:45:'
    )
    expect(mapPosition(p, ctx({ '/work/repo/configuration.nix': 'x' }))).toBe('configuration.nix')
  })
})
