import * as core from '@actions/core'

export async function run(): Promise<void> {
  core.setFailed('the action entry is not wired yet')
}
