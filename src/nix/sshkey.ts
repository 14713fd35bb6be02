import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import ssh2 from 'ssh2'
import { InputError, ValidationFailure } from '../util/errors.js'

export interface EphemeralKey {
  /** OpenSSH private key file (0600), what the engine logs in with. */
  privateKeyPath: string
  /** `ssh-ed25519 AAAA… comment`, what the VM's configuration authorizes. */
  publicKey: string
}

/** An SSH wire-format string: uint32 length, then the bytes. */
function sshString(data: Buffer | string): Buffer {
  const b = typeof data === 'string' ? Buffer.from(data) : data
  const len = Buffer.alloc(4)
  len.writeUInt32BE(b.length)
  return Buffer.concat([len, b])
}

/**
 * An ed25519 pair from node:crypto, written in OpenSSH's `openssh-key-v1` format (unencrypted),
 * and its `authorized_keys` line. ssh2's own generator was not used: 5 of 3,000 of its private
 * keys were rejected by its own parser ("Malformed OpenSSH private key").
 */
export function ed25519Pair(comment: string): { private: string; public: string } {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519')
  const jwk = privateKey.export({ format: 'jwk' })
  const seed = Buffer.from(jwk.d ?? '', 'base64url')
  const pub = Buffer.from(publicKey.export({ format: 'jwk' }).x ?? '', 'base64url')
  if (seed.length !== 32 || pub.length !== 32)
    throw new ValidationFailure('tool-error', 'node:crypto returned an ed25519 key of a wrong size')
  const pubBlob = Buffer.concat([sshString('ssh-ed25519'), sshString(pub)])
  const check = randomBytes(4)
  let body = Buffer.concat([
    check,
    check,
    sshString('ssh-ed25519'),
    sshString(pub),
    sshString(Buffer.concat([seed, pub])),
    sshString(comment)
  ])
  const pad = (8 - (body.length % 8)) % 8
  body = Buffer.concat([body, Buffer.from(Array.from({ length: pad }, (_, i) => i + 1))])
  const blob = Buffer.concat([
    Buffer.from('openssh-key-v1\0'),
    sshString('none'),
    sshString('none'),
    sshString(''),
    Buffer.from([0, 0, 0, 1]),
    sshString(pubBlob),
    sshString(body)
  ])
  const lines = blob.toString('base64').match(/.{1,70}/g) ?? []
  return {
    private: `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join('\n')}\n-----END OPENSSH PRIVATE KEY-----\n`,
    public: `ssh-ed25519 ${pubBlob.toString('base64')} ${comment}`
  }
}

/**
 * Proves a pair before it is used: the private key parses, it signs, and the public line
 * verifies the signature. Throws on any failure.
 */
export function provePair(privateKey: string, publicLine: string): void {
  const priv = ssh2.utils.parseKey(privateKey)
  const pub = ssh2.utils.parseKey(publicLine)
  const p = Array.isArray(priv) ? priv[0] : priv
  const q = Array.isArray(pub) ? pub[0] : pub
  if (p === undefined || p instanceof Error) throw new Error(`private key: ${String(p)}`)
  if (q === undefined || q instanceof Error) throw new Error(`public key: ${String(q)}`)
  const data = randomBytes(32)
  const sig = p.sign(data)
  if (sig instanceof Error || q.verify(data, sig) !== true)
    throw new Error('the public key does not verify a signature of the private key')
}

/**
 * A fresh ed25519 key pair for this run, generated in-process (no ssh-keygen needed) and proven
 * (parsed back, sign and verify) before it is written. It lives in the run's work dir and only
 * this run's VM accepts it.
 */
export async function createEphemeralKey(
  dir: string,
  comment = 'nixos-vm-validate'
): Promise<EphemeralKey> {
  let pair: { private: string; public: string } | undefined
  let last: unknown
  for (let attempt = 0; attempt < 3 && pair === undefined; attempt++) {
    const candidate = ed25519Pair(comment)
    try {
      provePair(candidate.private, candidate.public)
      pair = candidate
    } catch (err) {
      last = err
    }
  }
  if (pair === undefined)
    throw new ValidationFailure(
      'tool-error',
      `cannot make a working SSH key for this run: ${(last as Error).message}`
    )
  const privateKeyPath = join(dir, 'id_ed25519')
  await writeFile(privateKeyPath, pair.private, { mode: 0o600 })
  await writeFile(`${privateKeyPath}.pub`, pair.public + '\n', { mode: 0o644 })
  return { privateKeyPath, publicKey: pair.public }
}

/** The authorized_keys line of a private key (for --ssh-key together with --flake). */
export function publicKeyOf(privateKey: Buffer | string, what = '--ssh-key'): string {
  const parsed = ssh2.utils.parseKey(privateKey)
  const key = Array.isArray(parsed) ? parsed[0] : parsed
  if (key === undefined || key instanceof Error) {
    throw new InputError(
      `${what}: not a private key ssh2 can read${key instanceof Error ? `: ${key.message}` : ''}`
    )
  }
  if (key.isPrivateKey() !== true)
    throw new InputError(
      `${what}: this is a public key; give the private key that logs into the VM`
    )
  return `${key.type} ${key.getPublicSSH().toString('base64')}${key.comment !== '' ? ` ${key.comment}` : ''}`
}

/** The private key for the guest: a file, or key text given in a setting (written to a 0600 file). */
export type SshKeySource = { kind: 'file'; path: string } | { kind: 'text'; text: string }

/** A key read and parsed once: where it comes from and its authorized_keys line. */
export interface CheckedSshKey {
  source: SshKeySource
  publicLine: string
}

/** A key as the engine and the build use it: a file, its public line, and how to remove it. */
export interface SshKey {
  path: string
  publicLine: string
  dispose(): Promise<void>
}

/** How a front end names the key in its errors. */
export interface SshKeyWording {
  unreadable(path: string): string
  what(source: SshKeySource): string
}

/** Key text as a file holds it: LF line ends and one final newline. */
export function normalizeKeyText(text: string): string {
  return text.replace(/\r\n/g, '\n').trim() + '\n'
}

/**
 * Reads the key once and parses it: an unreadable file or a public key is an InputError now
 * (worded by the front end), not an ssh-unreachable minutes later.
 */
export async function checkSshKey(
  source: SshKeySource,
  wording: SshKeyWording
): Promise<CheckedSshKey> {
  let text: Buffer
  if (source.kind === 'file') {
    try {
      text = await readFile(source.path)
    } catch {
      throw new InputError(wording.unreadable(source.path))
    }
  } else text = Buffer.from(normalizeKeyText(source.text))
  return { source, publicLine: publicKeyOf(text, wording.what(source)) }
}

/** The checked key as a file: key text goes to a fresh 0600 file under `tempRoot`. */
export async function openSshKey(key: CheckedSshKey, tempRoot: string): Promise<SshKey> {
  const { source, publicLine } = key
  if (source.kind === 'file') return { path: source.path, publicLine, dispose: async () => {} }
  const dir = await mkdtemp(join(tempRoot, 'nvv-key-'))
  const path = join(dir, 'id_key')
  await writeFile(path, normalizeKeyText(source.text), { mode: 0o600 })
  await chmod(path, 0o600)
  return {
    path,
    publicLine,
    dispose: () => rm(dir, { recursive: true, force: true }).catch(() => undefined)
  }
}
