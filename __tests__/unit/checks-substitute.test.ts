import { describe, expect, it } from '@jest/globals'
import {
  classifyRealise,
  defaultRun,
  memoResolver,
  parseRealise,
  realiseCommand
} from '../../src/checks/substitute.js'

const P = '/nix/store/nih61wfr8cgha2xwq4h9q5yv8f04m2lq-hello-2.12.1'
const CONF = [
  'nvv-substitute: substituters = http://10.0.2.2:41234',
  'nvv-substitute: trusted-public-keys = nvv-test-1:HDn/QS5xzcXRLj9Qz9hyFZgIakhbEPpTDYzfUvqxlTs='
]

/** Nix's own words, as Nix 2.8 (Debian's nix-bin) printed them for each case. */
const NIX_2_8 = {
  untrusted: [
    'this path will be fetched (0.00 MiB download, 0.00 MiB unpacked):',
    `  ${P}`,
    `warning: the substitute for '${P}' from 'http://10.0.2.2:41234' is not signed by any of the keys in 'trusted-public-keys'`,
    `error: build of '${P}' failed`
  ],
  unreachable: [
    "warning: error: unable to download 'http://10.0.2.2:41235/nix-cache-info': Couldn't connect to server (7); retrying in 281 ms",
    "warning: unable to download 'http://10.0.2.2:41235/nix-cache-info': Couldn't connect to server (7)",
    "don't know how to build these paths:",
    `  ${P}`,
    `error: build of '${P}' failed`
  ],
  absent: ["don't know how to build these paths:", `  ${P}`, `error: build of '${P}' failed`]
}

function facts(lines: string[], exit = 1): ReturnType<typeof parseRealise> {
  return parseRealise([...CONF, ...lines, `nvv-substitute: realise-exit ${exit}`].join('\n'))
}

describe('parseRealise', () => {
  it('separates the marker lines from Nix output', () => {
    const f = facts(NIX_2_8.absent)
    expect(f.substituters).toEqual(['http://10.0.2.2:41234'])
    expect(f.trustedKeys).toEqual(['nvv-test-1:HDn/QS5xzcXRLj9Qz9hyFZgIakhbEPpTDYzfUvqxlTs='])
    expect(f.exit).toBe(1)
    expect(f.log).toBe(NIX_2_8.absent.join('\n'))
    expect(parseRealise('nvv-substitute: substituters = \n').substituters).toEqual([])
    expect(parseRealise('nvv-substitute: no-nix').noNix).toBe(true)
    expect(parseRealise('nvv-substitute: valid').alreadyValid).toBe(true)
  })
})

describe('classifyRealise', () => {
  it('names an untrusted signature and the keys the VM trusts', () => {
    const c = classifyRealise(facts(NIX_2_8.untrusted))
    expect(c.kind).toBe('untrusted-signature')
    expect(c.message).toMatch(
      /^untrusted signature: http:\/\/10\.0\.2\.2:41234 has the path, but .* \(trusted-public-keys: nvv-test-1:/
    )
    // Current Nix words it differently.
    expect(
      classifyRealise(
        facts([`error: cannot add path '${P}' because it lacks a signature by a trusted key`])
      ).kind
    ).toBe('untrusted-signature')
  })

  it('names the substituter it could not reach', () => {
    const c = classifyRealise(facts(NIX_2_8.unreachable))
    expect(c).toEqual({
      kind: 'unreachable',
      message:
        'unreachable: the VM cannot reach http://10.0.2.2:41235 (substituters: http://10.0.2.2:41234)'
    })
  })

  it('tells a path no substituter has from a VM with no substituters', () => {
    expect(classifyRealise(facts(NIX_2_8.absent)).kind).toBe('not-in-cache')
    const none = parseRealise(
      ['nvv-substitute: substituters = ', ...NIX_2_8.absent, 'nvv-substitute: realise-exit 1'].join(
        '\n'
      )
    )
    expect(classifyRealise(none).message).toMatch(/^no substituters: the VM's Nix names none/)
    expect(classifyRealise(parseRealise('nvv-substitute: no-nix')).kind).toBe('no-nix')
    expect(classifyRealise(facts(['error: disk full'], 1)).message).toMatch(
      /^nix-store --realise failed \(exit 1\)/
    )
  })
})

describe('realiseCommand', () => {
  it('quotes the path and keeps the exit status of nix-store', () => {
    const c = realiseCommand(P)
    expect(c).toContain(`nix-store --realise ${P} 2>&1`)
    expect(c).toMatch(/exit \$rc$/)
    expect(realiseCommand("/nix/store/x'y")).toContain(`'/nix/store/x'\\''y'`)
  })
})

describe('defaultRun and memoResolver', () => {
  it('runs bin/<last attribute name> unless told', () => {
    expect(defaultRun({ package: 'hello' })).toBe('bin/hello')
    expect(defaultRun({ package: 'python3Packages.black' })).toBe('bin/black')
    expect(defaultRun({ package: 'hello', run: 'bin/hello -g hi' })).toBe('bin/hello -g hi')
    expect(defaultRun({})).toBeUndefined()
  })

  it('evaluates each attribute once and keeps a failure', async () => {
    const asked: string[] = []
    const r = memoResolver(async (a) => {
      asked.push(a)
      if (a === 'nope') throw new Error('no such package')
      return `/nix/store/${a}`
    })
    await Promise.all([r('hello'), r('hello')])
    await expect(r('nope')).rejects.toThrow('no such package')
    await expect(r('nope')).rejects.toThrow('no such package')
    expect(asked).toEqual(['hello', 'nope'])
  })
})
