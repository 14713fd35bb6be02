/**
 * A signed Nix binary cache on the host, for the network stage's substitution check: store paths
 * built by Debian's nix-bin (no nixpkgs, no network), signed with a key made for the test, copied
 * into a `file://` cache and served over HTTP on loopback — which a QEMU guest reaches as
 * 10.0.2.2 (user networking). The test guests take their substituters and trusted keys from the
 * kernel command line (tests/fixtures/guest/recipe/base.sh), so a test passes them through the
 * runner contract's QEMU_KERNEL_PARAMS.
 */
import { execFileSync } from 'node:child_process'
import { createReadStream } from 'node:fs'
import { mkdtemp, readFile, stat, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, normalize } from 'node:path'

const FEATURES = ['--extra-experimental-features', 'nix-command flakes']

/**
 * Nix for the host side: no binary cache (no network), no sandbox (the fixtures build with the
 * host's /bin/sh), root without a nixbld group.
 */
export const HOST_NIX_ENV: NodeJS.ProcessEnv = {
  ...process.env,
  NIX_CONFIG: 'substituters =\nsandbox = false\nbuild-users-group =\n'
}

function nix(args: string[], input?: string): string {
  return execFileSync('nix', [...FEATURES, ...args], {
    env: HOST_NIX_ENV,
    encoding: 'utf8',
    input,
    stdio: ['pipe', 'pipe', 'pipe'],
    timeout: 5 * 60_000
  })
}

/** Builds `attr` of a Nix file (impure: the fixtures default `system` to the current one). */
export function buildAttr(file: string, attr: string): string {
  const out = JSON.parse(
    nix(['build', '--impure', '--no-link', '--json', '--file', file, attr])
  ) as { outputs: { out: string } }[]
  return out[0].outputs.out
}

const SCRIPT_NIX = `{ name, text }:
builtins.derivation {
  inherit name text;
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" "/bin/mkdir -p $out/bin && printf '#!/bin/sh\\necho %s\\n' \\"$text\\" >$out/bin/hello && /bin/chmod 755 $out/bin/hello" ];
}
`

/** A `hello` like the fixture's under another name and words: a path only one cache has. */
export async function buildScript(name: string, text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'nvv-script-'))
  const file = join(dir, 'script.nix')
  await writeFile(file, SCRIPT_NIX)
  const out = JSON.parse(
    nix([
      'build',
      '--impure',
      '--no-link',
      '--json',
      '--file',
      file,
      '--argstr',
      'name',
      name,
      '--argstr',
      'text',
      text
    ])
  ) as { outputs: { out: string } }[]
  return out[0].outputs.out
}

export interface SigningKey {
  name: string
  secretFile: string
  publicKey: string
}

export async function signingKey(name: string): Promise<SigningKey> {
  const dir = await mkdtemp(join(tmpdir(), 'nvv-key-'))
  const secret = nix(['key', 'generate-secret', '--key-name', name])
  const secretFile = join(dir, 'secret')
  await writeFile(secretFile, secret, { mode: 0o600 })
  const publicKey = nix(['key', 'convert-secret-to-public'], secret).trim()
  return { name, secretFile, publicKey }
}

/** Copies `paths` (with their closures) into the file:// cache `dir`, signed by `key`. */
export function copyToCache(dir: string, paths: string[], key: SigningKey): void {
  nix(['copy', '--to', `file://${dir}?secret-key=${key.secretFile}&compression=xz`, ...paths])
}

export interface ServedCache {
  port: number
  /** The URL the guest uses: the host's loopback seen from QEMU user networking. */
  guestUrl: string
  /** Request paths, in order. */
  hits: string[]
  close(): Promise<void>
}

/** Serves the files of `dir` read-only on 127.0.0.1 (no directory listing, no `..`). */
export async function serveCache(dir: string): Promise<ServedCache> {
  const hits: string[] = []
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent((req.url ?? '/').split('?')[0] ?? '/')
    hits.push(path)
    const file = normalize(join(dir, path))
    if (!file.startsWith(dir + '/')) {
      res.writeHead(403).end()
      return
    }
    stat(file).then(
      (s) => {
        if (!s.isFile()) {
          res.writeHead(404).end()
          return
        }
        res.writeHead(200, { 'content-length': s.size })
        if (req.method === 'HEAD') res.end()
        else createReadStream(file).pipe(res)
      },
      () => res.writeHead(404).end()
    )
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    port,
    guestUrl: `http://10.0.2.2:${port}`,
    hits,
    close: () => new Promise<void>((resolve) => server.close(() => resolve()))
  }
}

/** The test guests' kernel parameters for their Nix (see the file comment). */
export function guestNixParams(substituters: string[], keys: string[]): string {
  return [
    ...substituters.map((s) => `nvv.nix.substituter=${s}`),
    ...keys.map((k) => `nvv.nix.trusted-key=${k}`)
  ].join(' ')
}

/** A port nothing listens on (bound, then closed). */
export async function closedPort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as AddressInfo).port
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return port
}

export async function narinfo(dir: string, path: string): Promise<string> {
  const hash = path.slice('/nix/store/'.length, '/nix/store/'.length + 32)
  return readFile(join(dir, `${hash}.narinfo`), 'utf8')
}
