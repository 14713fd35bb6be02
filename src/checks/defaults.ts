import type { ChecksConfig } from './config.js'
import { DEFAULT_TIMEOUTS } from './schema.js'

/** The repository's conventional user (users/baleen): the defaults check it explicitly. */
export const DEFAULT_USER = 'baleen'

export const DEFAULTS_LABEL = 'built-in default checks'

/**
 * The checks of a run without a checks file: the seed's scenarios for the conventional user
 * `baleen` — multi-user target without failed units, sshd and Docker running, baleen in the
 * docker group and able to use the daemon without sudo, Home Manager applied (skipped when the
 * guest has no home-manager-baleen.service), git / an editor / build tools / curl working for
 * baleen, Internet access to the public Nix cache, `hello` installed from the VM's own
 * substituters and run, and the boot measured against generous
 * budgets.
 *
 * Explicit on purpose: a guest without baleen fails the users stage with a message saying the
 * defaults assume that user, rather than passing with half the checks silently dropped.
 * Group `wheel` (NixOS) vs `sudo` (Debian) differs by distribution, so only docker is required.
 */
export function defaultChecks(): ChecksConfig {
  const u = DEFAULT_USER
  const cmd = (name: string, run: string, expect: string): ChecksConfig['packages'][number] => ({
    name,
    run,
    expect,
    user: u,
    timeoutMs: DEFAULT_TIMEOUTS.command
  })
  return {
    label: DEFAULTS_LABEL,
    system: { timeoutMs: DEFAULT_TIMEOUTS.system },
    services: [
      { unit: 'sshd.service', timeoutMs: DEFAULT_TIMEOUTS.service },
      { unit: 'docker.service', timeoutMs: DEFAULT_TIMEOUTS.service }
    ],
    docker: { users: [{ name: u }], timeoutMs: DEFAULT_TIMEOUTS.docker },
    users: [{ name: u, groups: ['docker'], timeoutMs: DEFAULT_TIMEOUTS.user }],
    homeManager: [{ user: u, files: [], timeoutMs: DEFAULT_TIMEOUTS.homeManager }],
    packages: [
      cmd('git', 'git --version', '^git version'),
      cmd('vim', 'vim --version', '^VIM - Vi IMproved'),
      cmd('make', 'make --version', '^GNU Make'),
      cmd('gcc', 'gcc --version', '^gcc'),
      cmd('curl', 'curl --version', '^curl ')
    ],
    commands: [],
    network: {
      resolve: [{ name: 'cache.nixos.org' }],
      urls: [{ url: 'https://cache.nixos.org/nix-cache-info' }],
      // Installing a package outside the closure from the VM's own substituters: evaluated from
      // the configuration's nixpkgs at build time (a flake run; skipped with a runner alone).
      substitute: [
        {
          package: 'hello',
          run: 'bin/hello',
          expect: '^Hello, world!$',
          timeoutMs: DEFAULT_TIMEOUTS.substitute
        }
      ],
      timeoutMs: DEFAULT_TIMEOUTS.network
    },
    // Sized for the slowest case (aarch64 under TCG): they catch a VM that got several times
    // slower, not a slow runner. Kernel/initrd/userspace are recorded without a budget.
    performance: {
      bootTimeMs: 10 * 60_000,
      sshReadyMs: 15 * 60_000,
      timeoutMs: DEFAULT_TIMEOUTS.performance,
      lines: {}
    },
    e2e: []
  }
}
