// The checks file model: types only, shared by the stage modules, the parser and the defaults.
import type { Declared } from '../report/model.js'

/** Where a check was declared: the checks file (repo-relative when inside the repo) and line. */
export interface Located {
  file?: string
  line?: number
  /** Set for a check derived from the NixOS configuration: the option it comes from. */
  declared?: Declared
}

export interface SystemSpec extends Located {
  timeoutMs: number
}

export interface ServiceSpec extends Located {
  unit: string
  /** A user unit of this user (`systemctl --user`). */
  user?: string
  /** A oneshot that runs and exits: it passes once it ran without failing (derived checks). */
  mayExit?: boolean
  timeoutMs: number
}

export interface DockerSpec extends Located {
  users: (Located & { name: string })[]
  timeoutMs: number
}

export interface UserSpec extends Located {
  name: string
  groups?: string[]
  /** Login shell: a basename (`bash`) or a full path. */
  shell?: string
  home?: string
  timeoutMs: number
}

export interface HomeManagerSpec extends Located {
  user: string
  /** Paths relative to the user's home. */
  files: (Located & { path: string })[]
  timeoutMs: number
}

export interface CommandSpec extends Located {
  name: string
  run: string
  /** Regular expression (multi-line) matched against stdout + stderr. */
  expect?: string
  user?: string
  timeoutMs: number
}

export interface NetworkSpec {
  resolve: (Located & { name: string })[]
  urls: (Located & { url: string })[]
  /** Store paths realised from the VM's own substituters, then run (src/checks/substitute.ts). */
  substitute?: SubstituteSpec[]
  timeoutMs: number
}

/** One package the VM installs from its substituters: `package` (evaluated) or `path`. */
export interface SubstituteSpec extends Located {
  /** Attribute path in the configuration's `pkgs` (`hello`), evaluated at build time. */
  package?: string
  /** A store path, as is (a run without a flake). */
  path?: string
  /** What to run, relative to the store path (`bin/hello`); default `bin/<package's last name>`. */
  run?: string
  /** Regular expression (multi-line) matched against the output of `run`. */
  expect?: string
  timeoutMs: number
}

/** Budgets (milliseconds, MiB); undefined = measured and recorded only. */
export interface PerformanceSpec extends Located {
  bootTimeMs?: number
  kernelMs?: number
  initrdMs?: number
  userspaceMs?: number
  sshReadyMs?: number
  memoryUsedMiB?: number
  /** How long to wait for systemd to finish the boot ("Bootup is not yet finished"). */
  timeoutMs: number
  /** Declaration line of each budget key. */
  lines: Partial<Record<PerformanceBudget, number>>
}
export type PerformanceBudget =
  'bootTime' | 'kernel' | 'initrd' | 'userspace' | 'sshReady' | 'memoryUsedMiB'

export interface E2eSpec extends Located {
  /** As written: relative to the repository root (the working directory). */
  script: string
  /** Absolute path on the host. */
  path: string
  user?: string
  timeoutMs: number
}

/** The checks file's word on the checks derived from the configuration (docs/derived-checks.md). */
export interface DerivedSpec extends Located {
  /** Check names or option paths (a prefix turns off everything under it). */
  exclude: (Located & { name: string })[]
}

/**
 * What every checks config carries besides the stages' sections: which file it came from, and
 * what it says of the derived checks. The whole config (ChecksConfig, registry.ts) is this and
 * every stage's section.
 */
export interface ChecksFile {
  /** Absolute path of the checks file; undefined for the built-in defaults. */
  source?: string
  /** How errors and annotations name the file (repo-relative when inside the repo). */
  label: string
  /** `derived: { exclude: [...] }`: checks derived from the configuration that are turned off. */
  derived?: DerivedSpec
}

// Each stage's part of the checks config (its sections), named in its unit (StageUnit).

export interface SystemSection {
  system?: SystemSpec
}

export interface ServicesSection {
  services: ServiceSpec[]
  docker?: DockerSpec
}

export interface UsersSection {
  users: UserSpec[]
}

export interface HomeManagerSection {
  homeManager: HomeManagerSpec[]
}

export interface PackagesSection {
  packages: CommandSpec[]
  commands: CommandSpec[]
}

export interface NetworkSection {
  network?: NetworkSpec
}

export interface PerformanceSection {
  performance?: PerformanceSpec
}

export interface E2eSection {
  e2e: E2eSpec[]
}
