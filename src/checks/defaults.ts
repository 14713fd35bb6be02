import { STAGE_UNITS, type ChecksConfig } from './registry.js'
import { DEFAULTS_LABEL } from './unit.js'

export { DEFAULTS_LABEL, DEFAULT_USER } from './unit.js'

/**
 * The checks of a run without a checks file: the seed's scenarios for the conventional user
 * `baleen` — multi-user target without failed units, sshd and Docker running, baleen in the
 * docker group and able to use the daemon without sudo, Home Manager applied (skipped when the
 * guest has no home-manager-baleen.service), git / an editor / build tools / curl working for
 * baleen, Internet access to the public Nix cache, `hello` installed from the VM's own
 * substituters and run, and the boot measured against generous budgets. Each stage module holds
 * its part.
 *
 * Explicit on purpose: a guest without baleen fails the users stage with a message saying the
 * defaults assume that user, rather than passing with half the checks silently dropped.
 */
export function defaultChecks(): ChecksConfig {
  return Object.assign(
    { label: DEFAULTS_LABEL },
    ...STAGE_UNITS.map((u) => u.defaults())
  ) as ChecksConfig
}
