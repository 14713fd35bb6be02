import { describe, expect, it } from '@jest/globals'
import { parseChecks } from '../../src/checks/schema.js'
import { FakeSsh, ROOT, guestOf, stageCtx as ctx } from '../fixtures/guest.js'
import {
  DOCKER_API_SCRIPT,
  STATE_PROPS,
  describeDockerVersion,
  judgeUnit,
  servicesStage
} from '../../src/checks/services.js'
import { parseUnitState, parseUnitStates, systemctlShowCommand } from '../../src/ssh/guest.js'
import { servicesUnit } from '../../src/checks/services.js'
import { checksOf as parsed } from '../fixtures/guest.js'

const unitStateCommand = (unit: string, user: string | undefined, sshUser: string): string =>
  systemctlShowCommand([unit], STATE_PROPS, user, sshUser)
const unitStatesCommand = (units: string[]): string =>
  systemctlShowCommand(units, STATE_PROPS, undefined, 'root')

/** sshd and docker, and docker for baleen: the shape of tests/vm/checks.yml's first sections. */
const TWO_UNITS_AND_DOCKER = (): ReturnType<typeof parsed> =>
  parsed('services: [sshd.service, docker.service]\ndocker: { users: [baleen] }\n')

describe('services stage', () => {
  it('asks all units at once, polls the one still activating, then docker as each user', async () => {
    const block = (active: string): string =>
      `LoadState=loaded\nActiveState=${active}\nSubState=running\nResult=success\n`
    const ssh = new FakeSsh((c, n) => {
      if (c.includes('systemctl show') && c.includes('sshd.service docker.service'))
        return { stdout: `${block('active')}\n${block('activating')}SystemState=starting\n` }
      if (c.includes('systemctl show') && c.includes('docker.service'))
        return { stdout: `${block(n < 2 ? 'activating' : 'active')}SystemState=running\n` }
      if (c.includes('--unix-socket'))
        return {
          stdout: '{"Version":"20.10.24","ApiVersion":"1.41"}\n\nsocket=/var/run/docker.sock\n'
        }
      return { code: 1 }
    })
    const results = await servicesStage(ctx(ssh), TWO_UNITS_AND_DOCKER())
    expect(results.map((r) => [r.name, r.status])).toEqual([
      ['sshd.service', 'passed'],
      ['docker.service', 'passed'],
      ['docker daemon answers', 'passed'],
      ['docker as baleen (no sudo)', 'passed']
    ])
    const shows = ssh.calls.filter((c) => c.includes('systemctl show'))
    // One command for both units, then docker.service alone until it is active.
    expect(shows).toHaveLength(3)
    expect(shows.filter((c) => c.includes('sshd.service'))).toHaveLength(1)
    // baleen reached the daemon: that proves it answers, no second question.
    expect(ssh.calls.filter((c) => c.includes('--unix-socket'))).toHaveLength(1)
    expect(results[2].output).toBe(
      'server 20.10.24, API 1.41 (unix:///var/run/docker.sock) (as baleen)'
    )
  })

  it('asks the daemon as the SSH user when a listed user cannot reach it', async () => {
    const ssh = new FakeSsh((c) => {
      if (c.includes('--unix-socket') && c.includes('runuser'))
        return {
          code: 1,
          stderr: 'permission denied: baleen cannot open /var/run/docker.sock (root:docker 660)'
        }
      if (c.includes('--unix-socket')) return { stdout: 'server 20.10.24, API 1.41 (docker CLI)\n' }
      return { code: 1 }
    })
    const checks = parseChecks('docker: { users: [baleen] }\n', { label: 'c.yml', root: ROOT })
    const results = await servicesStage(ctx(ssh), checks)
    expect(results.map((r) => [r.name, r.status])).toEqual([
      ['docker daemon answers', 'passed'],
      ['docker as baleen (no sudo)', 'failed']
    ])
    expect(results[0].output).toBe('server 20.10.24, API 1.41 (docker CLI)')
    expect(results[1].output).toMatch(
      /^docker daemon as baleen: exit 1\n[\s\S]*is baleen in the docker group\?/
    )
    expect(ssh.calls.filter((c) => c.includes('--unix-socket'))).toHaveLength(2)
  })

  it('a failed unit fails with its state and journal, naming the unit', async () => {
    const ssh = new FakeSsh((c) => {
      if (c.includes('systemctl show'))
        return {
          stdout:
            'LoadState=loaded\nActiveState=failed\nSubState=failed\nResult=exit-code\nSystemState=degraded\n'
        }
      if (c.startsWith('journalctl'))
        return { stdout: 'dockerd: failed to start daemon: error initializing graphdriver\n' }
      if (c.includes('--unix-socket'))
        return {
          code: 1,
          stderr: 'permission denied: baleen cannot open /var/run/docker.sock (root:docker 660)'
        }
      return { code: 1 }
    })
    const results = await servicesStage(ctx(ssh), TWO_UNITS_AND_DOCKER())
    const docker = results.find((r) => r.name === 'docker.service')
    expect(docker).toMatchObject({ status: 'failed', unit: 'docker.service' })
    expect(docker?.output).toMatch(
      /^docker\.service: failed \(failed\), load loaded, result exit-code\n/
    )
    expect(docker?.output).toContain('error initializing graphdriver')
    expect(results.find((r) => r.name === 'docker as baleen (no sudo)')?.output).toMatch(
      /baleen cannot reach the Docker socket without sudo/
    )
  })
})

describe('services: systemd units', () => {
  it('parses systemctl show output and judges "must be active"', () => {
    const s = parseUnitState(
      'Result=success\nLoadState=loaded\nActiveState=active\nSubState=running\nSystemState=running\n'
    )
    expect(s).toEqual({
      Result: 'success',
      LoadState: 'loaded',
      ActiveState: 'active',
      SubState: 'running',
      SystemState: 'running'
    })
    expect(judgeUnit(s)).toBe('active')
    expect(judgeUnit({ ...s, ActiveState: 'activating' })).toBe('wait')
    expect(judgeUnit({ ...s, ActiveState: 'inactive', SystemState: 'starting' })).toBe('wait')
    expect(judgeUnit({ ...s, ActiveState: 'inactive', SystemState: 'running' })).toBe('failed')
    expect(judgeUnit({ ...s, ActiveState: 'failed' })).toBe('failed')
    expect(judgeUnit({ LoadState: 'not-found', ActiveState: 'inactive' })).toBe('not-found')
  })
})

describe('services: systemd units', () => {
  it('asks a user manager through runuser with its runtime dir', () => {
    expect(unitStateCommand('docker.service', undefined, 'root')).toBe(
      `systemctl show -p LoadState -p ActiveState -p SubState -p Result docker.service; echo "SystemState=$(systemctl is-system-running 2>/dev/null)"`
    )
    const user = unitStateCommand("it's.service", 'baleen', 'root')
    expect(user).toMatch(
      /^uid=\$\(id -u baleen\) \|\| exit 3\nsystemctl start "user@\$uid.service"/
    )
    expect(user).toMatch(/runuser -u baleen -- sh -lc /)
    expect(user).toContain('systemctl --user show')
  })
})

describe('services: systemd units', () => {
  it('asks the docker daemon as the user, not through sudo: curl on the socket, else the CLI', () => {
    const c = guestOf().asUser('baleen').command(DOCKER_API_SCRIPT)
    expect(c).toMatch(/runuser -u baleen -- sh -lc [\s\S]*curl -sS --max-time 30 --unix-socket/)
    expect(c).toMatch(/docker version --format/)
    expect(c).not.toMatch(/sudo/)
  })
})

describe('services: systemd units', () => {
  it('describes the daemon from its /version JSON or the CLI line', () => {
    expect(
      describeDockerVersion(
        '{"Version":"20.10.24+dfsg1","ApiVersion":"1.41","Os":"linux"}\n\nsocket=/var/run/docker.sock\n'
      )
    ).toBe('server 20.10.24+dfsg1, API 1.41 (unix:///var/run/docker.sock)')
    expect(describeDockerVersion('server 24.0.5, API 1.43 (docker CLI)\n')).toBe(
      'server 24.0.5, API 1.43 (docker CLI)'
    )
  })
})

describe('services: systemd units', () => {
  it('asks the states of several system units in one command, block by block in order', () => {
    const units = ['sshd.service', 'nope.service']
    expect(unitStatesCommand(units)).toBe(
      `systemctl show -p LoadState -p ActiveState -p SubState -p Result sshd.service nope.service; echo "SystemState=$(systemctl is-system-running 2>/dev/null)"`
    )
    const text =
      'Result=success\nLoadState=loaded\nActiveState=active\nSubState=running\n\n' +
      'Result=success\nLoadState=not-found\nActiveState=inactive\nSubState=dead\nSystemState=running\n'
    const states = parseUnitStates(units, text)
    expect(states.get('sshd.service')).toEqual({
      Result: 'success',
      LoadState: 'loaded',
      ActiveState: 'active',
      SubState: 'running',
      SystemState: 'running'
    })
    expect(states.get('nope.service')?.LoadState).toBe('not-found')
    // A block count that does not match the units: nothing is guessed.
    expect(parseUnitStates(units, 'LoadState=loaded\nSystemState=running\n').size).toBe(0)
  })
})

describe('services unit', () => {
  it('owns services and docker, starts after the boot, defaults to sshd alone', () => {
    expect(Object.keys(servicesUnit.sections)).toEqual(['services', 'docker'])
    expect(servicesUnit.timeouts).toEqual({ service: 60_000, docker: 60_000 })
    expect(servicesUnit.afterBootEnd).toBe(true)
    expect(servicesUnit.defaults()).toEqual({
      services: [{ unit: 'sshd.service', timeoutMs: 60_000 }]
    })
  })

  it('reads a unit name or {unit, user, timeout}, and docker users', () => {
    const c = parsed(
      'services:\n  - sshd.service\n  - { unit: app.service, user: bob, timeout: 5s }\ndocker:\n  users: [bob]\n'
    )
    expect(c.services).toEqual([
      { file: 'c.yml', line: 2, unit: 'sshd.service', timeoutMs: 60_000 },
      { file: 'c.yml', line: 3, unit: 'app.service', user: 'bob', timeoutMs: 5000 }
    ])
    expect(c.docker).toEqual({
      file: 'c.yml',
      line: 4,
      users: [{ name: 'bob', file: 'c.yml', line: 5 }],
      timeoutMs: 60_000
    })
    expect(parsed('users: []\n').services).toEqual([])
    expect(() => parsed('services: [{ user: bob }]\n')).toThrow(
      'c.yml:1: services[0]: missing required key "unit" (allowed keys: unit, user, timeout)'
    )
  })
})

describe('a oneshot that may exit (derived from the configuration)', () => {
  it('passes once it ended without failing, and only then', () => {
    const exited = {
      LoadState: 'loaded',
      ActiveState: 'inactive',
      SubState: 'dead',
      Result: 'success'
    }
    expect(judgeUnit(exited, true)).toBe('exited')
    expect(judgeUnit(exited, false)).toBe('failed')
    expect(judgeUnit({ ...exited, Result: 'exit-code', ActiveState: 'failed' }, true)).toBe(
      'failed'
    )
    expect(judgeUnit({ ...exited, SystemState: 'starting' }, true)).toBe('wait')
  })
})
