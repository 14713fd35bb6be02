import { describe, expect, it } from '@jest/globals'
import { FakeSsh, stageCtx as ctx } from '../fixtures/guest.js'
import { accountCommand, parseAccount, userProblems, usersStage } from '../../src/checks/users.js'
import { usersUnit } from '../../src/checks/users.js'
import { checksOf as parsed } from '../fixtures/guest.js'

describe('users stage', () => {
  it('a missing user fails naming the user and what the guest said', async () => {
    const ssh = new FakeSsh(() => ({ code: 2, stderr: 'no such user: alice' }))
    const [r] = await usersStage(ctx(ssh), parsed('users: [{ name: alice }]\n'))
    expect(r.status).toBe('failed')
    expect(r.output).toBe('user alice: exit 2\nno such user: alice')
  })
})

describe('users', () => {
  const account = parseAccount(
    'baleen:x:1000:1000::/home/baleen:/run/current-system/sw/bin/bash',
    'baleen wheel docker'
  )
  it('parses getent passwd + id -nG', () => {
    expect(account).toEqual({
      name: 'baleen',
      uid: 1000,
      home: '/home/baleen',
      shell: '/run/current-system/sw/bin/bash',
      groups: ['baleen', 'wheel', 'docker']
    })
    expect(parseAccount('', '')).toBeUndefined()
  })

  it('matches the shell by basename or full path, groups and home', () => {
    const a = account as NonNullable<typeof account>
    expect(
      userProblems(
        { name: 'baleen', groups: ['wheel', 'docker'], shell: 'bash', home: '/home/baleen/' },
        a
      )
    ).toEqual([])
    expect(userProblems({ name: 'baleen', shell: '/run/current-system/sw/bin/bash' }, a)).toEqual(
      []
    )
    expect(
      userProblems({ name: 'baleen', groups: ['sudo'], shell: 'zsh', home: '/srv/baleen' }, a)
    ).toEqual([
      'baleen is not in group sudo (groups: baleen wheel docker)',
      "baleen's login shell is /run/current-system/sw/bin/bash, expected zsh",
      "baleen's home is /home/baleen, expected /srv/baleen"
    ])
    expect(userProblems({ name: 'baleen', shell: '/bin/bash' }, a)).toHaveLength(1)
  })

  it('builds quoted a quoted account command', () => {
    expect(accountCommand('baleen')).toBe(
      `getent passwd baleen || { echo "no such user: "baleen >&2; exit 2; }; id -nG baleen`
    )
  })
})

describe('users unit', () => {
  it('owns the users section and defaults to nobody', () => {
    expect(Object.keys(usersUnit.sections)).toEqual(['users'])
    expect(usersUnit.timeouts).toEqual({ user: 30_000 })
    expect(usersUnit.afterBootEnd).toBe(false)
    expect(usersUnit.defaults()).toEqual({ users: [] })
  })

  it('reads {name, groups, shell, home, timeout}', () => {
    expect(
      parsed(
        'users:\n  - { name: bob, groups: [wheel], shell: zsh, home: /home/bob, timeout: 3s }\n'
      ).users
    ).toEqual([
      {
        file: 'c.yml',
        line: 2,
        name: 'bob',
        groups: ['wheel'],
        shell: 'zsh',
        home: '/home/bob',
        timeoutMs: 3000
      }
    ])
    expect(() => parsed('users: [{ name: bob, home: rel }]\n')).toThrow(
      'c.yml:1: users[0].home: "rel" is not an absolute path'
    )
  })
})
