import type { StageName } from '../report/model.js'

/** The checks file model (tests/vm/checks.yml). Filled in by the checks stages. */
export interface ChecksConfig {
  source?: string
}

export async function loadChecks(file: string | undefined, _stages: StageName[]): Promise<ChecksConfig> {
  return { source: file }
}
