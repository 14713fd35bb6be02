/**
 * The runner gives the action its inputs as INPUT_* (the GitHub token, the Cachix token, the SSH
 * key's text) and its service credentials as ACTIONS_* (ACTIONS_RUNTIME_TOKEN,
 * ACTIONS_ID_TOKEN_REQUEST_TOKEN, …). None of that is for the processes we start (Nix, whose
 * `--impure` evaluation reads the environment; the VM runner; QEMU): a child that needs a secret
 * gets it explicitly, in its own environment (CACHIX_AUTH_TOKEN for `cachix push`).
 */
const SECRET_PREFIXES = ['INPUT_', 'ACTIONS_']
const SECRET_NAMES = ['GITHUB_TOKEN']

/** Whether a variable is one of the action's inputs or runner credentials (any case: Windows-style names too). */
export function isActionSecret(name: string): boolean {
  const upper = name.toUpperCase()
  return SECRET_PREFIXES.some((p) => upper.startsWith(p)) || SECRET_NAMES.includes(upper)
}

/** The environment for a child process: `env` without INPUT_*, ACTIONS_* and GITHUB_TOKEN. */
export function childEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined && !isActionSecret(name)) out[name] = value
  }
  return out
}
