import { describe, expect, it } from '@jest/globals'
import { homeFileCommand, homeManagerStageUnit } from '../../src/checks/home-manager.js'
import { checksOf as parsed } from '../fixtures/guest.js'

describe('home-manager unit', () => {
  it('owns the homeManager section, starts after the boot, defaults to nobody', () => {
    expect(Object.keys(homeManagerStageUnit.sections)).toEqual(['homeManager'])
    expect(homeManagerStageUnit.timeouts).toEqual({ homeManager: 2 * 60_000 })
    expect(homeManagerStageUnit.afterBootEnd).toBe(true)
    expect(homeManagerStageUnit.defaults()).toEqual({ homeManager: [] })
  })

  it('reads {user, files} with files relative to the home, never leaving it', () => {
    expect(parsed('homeManager:\n  - user: bob\n    files: [.gitconfig]\n').homeManager).toEqual([
      {
        file: 'c.yml',
        line: 2,
        user: 'bob',
        files: [{ path: '.gitconfig', file: 'c.yml', line: 3 }],
        timeoutMs: 2 * 60_000
      }
    ])
    expect(() => parsed('homeManager: [{ user: bob, files: [../x] }]\n')).toThrow(
      'c.yml:1: homeManager[0].files[0]: "../x" is not a path relative to the home directory'
    )
  })

  it('checks a home file, quoted, symlinks shown', () => {
    const c = homeFileCommand('baleen', ".config/it's file")
    expect(c).toContain(`f="$home"/'.config/it'\\''s file'`)
    expect(c).toContain('dangling symlink')
  })
})
