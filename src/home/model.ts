/**
 * One user configuration evaluated as a standalone Home Manager configuration per platform
 * (Linux and Darwin), and what differs between the platforms (docs/home-consistency.md). Written as
 * `home-consistency.json` by `vm-automation home-consistency`; the roll-up reads it from the
 * run's artifacts. Add fields, never rename.
 */
export interface HomeEvaluation {
  /** The flake output's attribute under homeConfigurations (`alice@aarch64-darwin`). */
  name: string
  /** Its platform (`aarch64-darwin`, `x86_64-linux`). */
  system: string
  /** Files Home Manager would manage, as targets relative to the home directory. */
  files: string[]
  /** home.packages, each with whether it is available on this platform (meta.platforms, broken). */
  packages: { name: string; available: boolean; reason?: string }[]
  /** The evaluation failed: Nix's message and, when it says, the file and line. */
  error?: { message: string; file?: string; line?: number }
  /** The activation package was built on its own platform (a macOS leg), when that was tried. */
  built?: { ok: boolean; message?: string }
  /** The activation package's derivation path: the evaluation forced the whole home (nothing built). */
  activationDrv?: string
}

export type HomeDifferenceKind = 'file' | 'package' | 'unavailable' | 'error'

/** One item that differs between the platforms. */
export interface HomeDifference {
  kind: HomeDifferenceKind
  /** The file target, the package name, or the home whose evaluation failed. */
  item: string
  /** The homes (names) that have it / evaluate. */
  present: string[]
  /** The homes that lack it (or where it is unavailable, or fail). */
  absent: string[]
  detail?: string
}

export interface HomeConsistency {
  schemaVersion: 1
  /** The flake evaluated. */
  flake: string
  homes: HomeEvaluation[]
  differences: HomeDifference[]
}

/** The file the CLI writes and the roll-up looks for in each downloaded artifact. */
export const HOME_CONSISTENCY_FILE = 'home-consistency.json'
