import { jest } from '@jest/globals'

/**
 * What the code under test writes to stdout (workflow commands such as `::warning::`), kept
 * instead of printed. `restore()` (or `jest.restoreAllMocks()`) gives stdout back.
 */
export function captureStdout(): { written: string[]; restore: () => void } {
  const written: string[] = []
  const spy = jest
    .spyOn(process.stdout, 'write')
    .mockImplementation((chunk: string | Uint8Array) => {
      written.push(String(chunk))
      return true
    })
  return { written, restore: () => spy.mockRestore() }
}
