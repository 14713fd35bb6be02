/** nix.conf contents: pure functions of the inputs and the install mode. */

/** Every nix invocation of ours passes these: Debian's nix-bin 2.8 and installs without our nix.conf. */
export const NIX_FEATURES = ['--extra-experimental-features', 'nix-command flakes']

/**
 * argv of one `nix` command of ours: the features, the subcommand and its flags, this run's
 * `--option` pairs (e.g. `build-users-group =` on a root Nix without nixbld), then the operands.
 */
export function nixArgv(
  nix: string,
  command: string[],
  options: [string, string][],
  operands: string[]
): string[] {
  return [
    nix,
    ...NIX_FEATURES,
    ...command,
    ...options.flatMap(([k, v]) => ['--option', k, v]),
    ...operands
  ]
}

export const DEFAULT_SUBSTITUTER = 'https://cache.nixos.org'
export const DEFAULT_TRUSTED_PUBLIC_KEY =
  'cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY='

export type ConfLine = [name: string, value: string]

/**
 * fresh-daemon: we install multi-user Nix (systemd present); settings go to /etc/nix/nix.conf.
 * fresh-single: we install single-user Nix (act, containers without systemd); settings go to the
 * user's nix.conf. existing: Nix was there; we add `extra-*` settings to the user's nix.conf.
 */
export type ConfMode = 'fresh-daemon' | 'fresh-single' | 'existing'

export interface CachixSettings {
  name: string
  substituter: string
  publicKeys: string[]
  /** netrc file with the token, for a private cache. */
  netrcFile?: string
}

export interface NixConfInput {
  extraSubstituters: string[]
  extraTrustedPublicKeys: string[]
  cachix?: CachixSettings
  /** Token for github.com fetches (flake inputs), written only to the user's 0600 nix.conf. */
  githubToken?: string
  /** extra-platforms / extra-sandbox-paths of an emulated build (EmulationPlan.settings). */
  emulation: ConfLine[]
  /**
   * Builds' temporary directories (under RUNNER_TEMP: /tmp can be a small tmpfs). Omitted for a
   * Nix without the `build-dir` setting (it would warn "unknown setting" on every command).
   */
  buildDir?: string
  /** The runner user, made a trusted user (it passes the local cache as a substituter). */
  user: string
  /** The existing installation runs a daemon (existing mode only). */
  daemon: boolean
}

export interface NixConf {
  /** Lines for /etc/nix/nix.conf (fresh-daemon: via the installer; existing: our managed block). */
  system: ConfLine[]
  /** Lines for the user's nix.conf (mode 0600: it may carry the GitHub token). */
  user: ConfLine[]
}

/** `build-dir` is a Nix 2.22+ setting (2.8 answers "unknown setting 'build-dir'"). */
export function supportsBuildDir(version: string | undefined): boolean {
  const m = /^(\d+)\.(\d+)/.exec(version ?? '')
  if (m === null) return false
  return Number(m[1]) > 2 || (Number(m[1]) === 2 && Number(m[2]) >= 22)
}

function unique(values: string[]): string[] {
  return [...new Set(values.map((v) => v.trim()).filter(Boolean))]
}

/** Splits a multi-value input ("a b", "a\nb", "a,b") into its values. */
export function splitList(text: string | undefined): string[] {
  return unique((text ?? '').split(/[\s,]+/))
}

export function nixConfLines(input: NixConfInput, mode: ConfMode): NixConf {
  const cachixSubs = input.cachix !== undefined ? [input.cachix.substituter] : []
  const cachixKeys = input.cachix?.publicKeys ?? []
  const netrc: ConfLine[] =
    input.cachix?.netrcFile !== undefined ? [['netrc-file', input.cachix.netrcFile]] : []
  const token: ConfLine[] =
    input.githubToken !== undefined && input.githubToken !== ''
      ? [['access-tokens', `github.com=${input.githubToken}`]]
      : []
  const buildDir: ConfLine[] = input.buildDir !== undefined ? [['build-dir', input.buildDir]] : []
  if (mode === 'existing') {
    const subs = unique([...cachixSubs, ...input.extraSubstituters])
    const keys = unique([...cachixKeys, ...input.extraTrustedPublicKeys])
    const user: ConfLine[] = [
      ['extra-experimental-features', 'nix-command flakes'],
      ...(subs.length > 0 ? ([['extra-substituters', subs.join(' ')]] as ConfLine[]) : []),
      ...(keys.length > 0 ? ([['extra-trusted-public-keys', keys.join(' ')]] as ConfLine[]) : []),
      ...netrc,
      // Without a daemon, this process is the builder: the user's file is the one that counts.
      ...(input.daemon ? [] : [...buildDir, ...input.emulation]),
      ...token
    ]
    return { system: input.daemon ? input.emulation : [], user }
  }
  const shared: ConfLine[] = [
    ['experimental-features', 'nix-command flakes'],
    [
      'substituters',
      unique([DEFAULT_SUBSTITUTER, ...cachixSubs, ...input.extraSubstituters]).join(' ')
    ],
    [
      'trusted-public-keys',
      unique([DEFAULT_TRUSTED_PUBLIC_KEY, ...cachixKeys, ...input.extraTrustedPublicKeys]).join(' ')
    ],
    ['trusted-users', unique(['root', input.user]).join(' ')],
    ['max-jobs', 'auto'],
    ...buildDir,
    ...netrc,
    ...input.emulation
  ]
  if (mode === 'fresh-daemon') return { system: shared, user: token }
  // Single-user as root (act): no nixbld group exists, builds run as the user itself.
  return { system: [], user: [...shared, ['build-users-group', ''], ...token] }
}

export function renderConf(lines: ConfLine[]): string {
  return lines.map(([k, v]) => (v === '' ? `${k} =` : `${k} = ${v}`)).join('\n') + '\n'
}

const BEGIN = '# BEGIN nixos-vm-validate (managed: replaced on every run)'
const END = '# END nixos-vm-validate'

/** `existing` with our block replaced by `lines` (or appended): the user's own settings stay. */
export function withManagedBlock(existing: string | undefined, lines: ConfLine[]): string {
  const kept = (existing ?? '')
    .replace(new RegExp(`\\n?${escapeRegExp(BEGIN)}[\\s\\S]*?${escapeRegExp(END)}\\n?`, 'g'), '\n')
    .replace(/\n+$/, '')
  const block = `${BEGIN}\n${renderConf(lines)}${END}\n`
  return kept === '' ? block : `${kept}\n${block}`
}

/** A line that sets a Nix access token (what nixConfLines writes for the GitHub token). */
const ACCESS_TOKENS = /^\s*(?:extra-)?access-tokens\s*=/

/**
 * `text` (a nix.conf holding our block) without the access-tokens lines of our block, for the
 * post step: a runner that keeps its home between jobs must not keep the job's token. Every other
 * byte stays, the user's own lines (an access-tokens of theirs too) and our other settings; a
 * block left with no setting is dropped with its markers. From a BEGIN without END to the end of
 * the text counts as our block.
 */
export function withoutAccessTokens(text: string): string {
  const out: string[] = []
  let block: string[] | undefined
  const close = (ended: boolean): void => {
    const body = (block ?? []).slice(1).filter((l) => !ACCESS_TOKENS.test(l))
    if (body.some((l) => l.trim() !== '' && !l.trimStart().startsWith('#')) || !ended)
      out.push(BEGIN, ...body, ...(ended ? [END] : []))
    block = undefined
  }
  for (const line of text.split('\n')) {
    if (block === undefined) {
      if (line === BEGIN) block = [line]
      else out.push(line)
    } else if (line === END) close(true)
    else block.push(line)
  }
  if (block !== undefined) close(false)
  return out.join('\n')
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
