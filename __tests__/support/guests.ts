/**
 * The one way tests get a real guest: the project's fixture builder (tests/fixtures/guest/build.sh,
 * cached outside the repository), which prints the guest's directory last.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')

export type Arch = 'x86_64' | 'aarch64'
export type Variant = 'ok' | 'panic' | 'hang' | 'emergency' | 'no-sshd' | 'failed-unit' | 'slow'

export interface Guest {
  dir: string
  runner: string
  sshKey: string
  system: 'x86_64-linux' | 'aarch64-linux'
}

const guests = new Map<string, Guest>()

/** Builds (or takes from the cache) a test guest; one build per arch and variant per process. */
export function buildGuest(arch: Arch, variant: Variant = 'ok'): Guest {
  const key = `${arch}-${variant}`
  const known = guests.get(key)
  if (known !== undefined) return known
  const out = execFileSync(
    'bash',
    [join(ROOT, 'tests/fixtures/guest/build.sh'), '--arch', arch, '--variant', variant],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 40 * 60_000 }
  )
  const dir = out.trim().split('\n').at(-1) ?? ''
  const meta = JSON.parse(readFileSync(join(dir, 'guest.json'), 'utf8')) as {
    runner: string
    sshKey: string
  }
  const guest: Guest = {
    dir,
    runner: join(dir, meta.runner),
    sshKey: join(dir, meta.sshKey),
    system: arch === 'x86_64' ? 'x86_64-linux' : 'aarch64-linux'
  }
  guests.set(key, guest)
  return guest
}

/**
 * Holds a shared lock on a guest's build key until released: build.sh prunes a stale guest only
 * when it can take that lock exclusively, so another run rebuilding guests cannot delete this one
 * under a test that uses it for long (a Nix build points at it). The lock is held by
 * `flock … cat`, which ends when its stdin closes — on release, or when this process dies.
 */
export function holdGuest(guest: Guest): () => void {
  const lockFile = join(
    dirname(guest.dir),
    '.locks',
    `${basename(guest.dir).replace(/.*-/, '')}.lock`
  )
  const holder: ChildProcess = spawn('flock', ['-s', lockFile, 'cat'], {
    stdio: ['pipe', 'ignore', 'ignore']
  })
  return () => holder.stdin?.end()
}
