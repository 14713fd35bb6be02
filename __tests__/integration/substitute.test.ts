/**
 * The network stage's package installation, proven inside real guests: each test guest has Nix
 * (Debian's nix-bin) whose substituters and trusted keys are its own configuration (taken from
 * the kernel command line at boot, tests/fixtures/guest/recipe/base.sh). The host builds two
 * small store paths with Debian's nix-bin, signs them into a binary cache — one with the key the
 * guest trusts, one with another key — and serves the cache over HTTP on loopback, which the guest
 * reaches as 10.0.2.2. Per architecture, two boots:
 *   1. the guest trusts the cache's key: the trusted path is realised and runs; the other is
 *      refused as an untrusted signature
 *   2. the guest's substituter is a port nothing listens on: unreachable
 * The CLI runs as a user runs it (`--runner`, a checks file with store paths: a run without a
 * flake). The flake path (package names evaluated from the configuration's pkgs) is in
 * flake.test.ts.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Report } from '../../src/report/model.js'
import {
  buildAttr,
  buildScript,
  closedPort,
  copyToCache,
  guestNixParams,
  narinfo,
  serveCache,
  signingKey,
  type ServedCache,
  type SigningKey
} from '../support/binary-cache.js'
import { ROOT, buildGuest, qemuLeft, runCli, scratch, type Arch, type CliRun } from './helpers.js'

const MIN = 60_000

let trusted: string
let untrusted: string
let key: SigningKey
let cache: ServedCache
const markers: string[] = []

beforeAll(async () => {
  key = await signingKey('nvv-test-cache-1')
  const other = await signingKey('nvv-other-cache-1')
  trusted = buildAttr(join(ROOT, 'tests/fixtures/flake/pkgs/default.nix'), 'hello')
  untrusted = await buildScript('hello-signed-elsewhere', 'signed elsewhere')
  const dir = mkdtempSync(join(scratch('cache'), 'binary-cache-'))
  copyToCache(dir, [trusted], key)
  copyToCache(dir, [untrusted], other)
  expect(await narinfo(dir, trusted)).toContain(`Sig: ${key.name}:`)
  expect(await narinfo(dir, untrusted)).toContain(`Sig: ${other.name}:`)
  cache = await serveCache(dir)
}, 5 * MIN)

afterAll(async () => {
  await cache?.close()
})

afterEach(() => {
  for (const marker of markers.splice(0)) expect(qemuLeft(marker)).toEqual([])
})

function checksFile(entries: string[]): string {
  const dir = mkdtempSync(join(scratch('substitute'), 'repo-'))
  const file = join(dir, 'checks.yml')
  writeFileSync(file, ['network:', '  substitute:', ...entries.map((e) => `    - ${e}`)].join('\n'))
  return file
}

async function validate(arch: Arch, checks: string, kernelParams: string): Promise<CliRun> {
  const g = buildGuest(arch, 'ok')
  const run = await runCli(
    [
      'validate',
      '--runner',
      g.runner,
      '--system',
      g.system,
      '--ssh-key',
      g.sshKey,
      '--stages',
      'network',
      '--checks',
      checks
    ],
    { env: { QEMU_KERNEL_PARAMS: kernelParams }, timeoutMs: 25 * MIN }
  )
  markers.push(run.marker)
  return run
}

function networkChecks(r: Report): { name: string; status: string; output: string }[] {
  const s = r.stages.find((x) => x.name === 'network')
  if (s === undefined) throw new Error(`no network stage: ${JSON.stringify(r.failure)}`)
  return s.checks.map((c) => ({ name: c.name, status: c.status, output: c.output ?? '' }))
}

describe.each<Arch>(['x86_64', 'aarch64'])('%s guest', (arch) => {
  it(
    'installs a package from the substituter it trusts and refuses one signed by another key',
    async () => {
      const hits = cache.hits.length
      const run = await validate(
        arch,
        checksFile([
          `{ path: ${trusted}, run: bin/hello, expect: "^Hello, world!$" }`,
          `{ path: ${untrusted}, run: bin/hello }`
        ]),
        guestNixParams([cache.guestUrl], [key.publicKey])
      )
      const r = run.report()
      const [ok, refused] = networkChecks(r)
      expect({ status: ok?.status, output: ok?.output }).toEqual({
        status: 'passed',
        output: `realised ${trusted} from the VM's substituters (${cache.guestUrl}); bin/hello: Hello, world!`
      })
      expect(refused?.status).toBe('failed')
      expect(refused?.output).toMatch(
        new RegExp(
          `^untrusted signature: ${cache.guestUrl.replace(/\./g, '\\.')} has the path, but it is not signed by a key the VM trusts \\(trusted-public-keys: ${key.name}:`
        )
      )
      expect(refused?.output).toContain(untrusted)
      // The failure is the system under test's, classified; the run exits 1.
      expect(run.code).toBe(1)
      expect(r.failure).toMatchObject({ stage: 'network', kind: 'check-failed' })
      // The guest fetched from our server: the cache info, both narinfos, the trusted NAR only.
      const fetched = cache.hits.slice(hits)
      expect(fetched).toContain('/nix-cache-info')
      expect(fetched.filter((h) => h.endsWith('.narinfo')).length).toBeGreaterThanOrEqual(2)
      expect(fetched.filter((h) => h.startsWith('/nar/')).length).toBe(1)
    },
    30 * MIN
  )

  it(
    'says the substituter is unreachable when nothing answers there',
    async () => {
      const port = await closedPort()
      const run = await validate(
        arch,
        checksFile([`{ path: ${trusted}, run: bin/hello }`]),
        guestNixParams([`http://10.0.2.2:${port}`], [key.publicKey])
      )
      const r = run.report()
      const [check] = networkChecks(r)
      expect(check?.status).toBe('failed')
      expect(check?.output.split('\n')[0]).toBe(
        `unreachable: the VM cannot reach http://10.0.2.2:${port} (substituters: http://10.0.2.2:${port})`
      )
      expect(check?.output).toMatch(/Couldn't connect to server/)
      expect(run.code).toBe(1)
    },
    30 * MIN
  )
})
