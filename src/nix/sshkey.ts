import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import ssh2 from 'ssh2'
import { InputError } from '../util/errors.js'

export interface EphemeralKey {
  /** OpenSSH private key file (0600), what the engine logs in with. */
  privateKeyPath: string
  /** `ssh-ed25519 AAAA… comment`, what the VM's configuration authorizes. */
  publicKey: string
}

/**
 * A fresh ed25519 key pair for this run, generated in-process (no ssh-keygen needed), in
 * OpenSSH format. It lives in the run's work dir and only this run's VM accepts it.
 */
export async function createEphemeralKey(
  dir: string,
  comment = 'nixos-vm-validate'
): Promise<EphemeralKey> {
  const pair = ssh2.utils.generateKeyPairSync('ed25519', { comment })
  const privateKeyPath = join(dir, 'id_ed25519')
  await writeFile(privateKeyPath, pair.private, { mode: 0o600 })
  await writeFile(`${privateKeyPath}.pub`, pair.public + '\n', { mode: 0o644 })
  return { privateKeyPath, publicKey: pair.public.trim() }
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
  return `${key.type} ${key.getPublicSSH().toString('base64')}${key.comment !== '' ? ` ${key.comment}` : ''}`
}
