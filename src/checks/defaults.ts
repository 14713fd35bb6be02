import { STAGE_UNITS, type ChecksConfig } from './registry.js'
import { DEFAULTS_LABEL } from './unit.js'

export { DEFAULTS_LABEL } from './unit.js'

/**
 * The checks of a run without a checks file, true of any NixOS VM and of nobody's VM in
 * particular: the boot reaches its target without failed units, sshd is active, the guest says
 * its hostname, and the boot is measured against generous budgets. Each stage module holds its
 * part. A flake run adds what the configuration itself declares (docs/derived-checks.md); what
 * a configuration does not say (a user's tools, Internet access) belongs in a checks file.
 */
export function defaultChecks(): ChecksConfig {
  return Object.assign(
    { label: DEFAULTS_LABEL },
    ...STAGE_UNITS.map((u) => u.defaults())
  ) as ChecksConfig
}
