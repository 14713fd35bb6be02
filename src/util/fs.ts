import { access, constants, stat } from 'node:fs/promises'

/** A regular file (symlinks followed) this process may execute: not a directory, not empty text. */
export async function isExecutableFile(path: string): Promise<boolean> {
  if (path.trim() === '') return false
  try {
    if (!(await stat(path)).isFile()) return false
    await access(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}
