import { describe, expect, it } from '@jest/globals'
import { execFileSync } from 'node:child_process'
import { judgeCommand } from '../../src/checks/packages.js'
import { DEFAULT_USER, defaultChecks } from '../../src/checks/defaults.js'
import { e2eCommand, e2eLogName, scriptErrorLine } from '../../src/checks/e2e.js'
import { fetchCommand, resolveCommand } from '../../src/checks/network.js'
import { trimOutput } from '../../src/checks/run.js'
import {
  DOCKER_API_SCRIPT,
  STATE_PROPS,
  describeDockerVersion,
  judgeUnit
} from '../../src/checks/services.js'
import {
  Guest,
  asUserCommand as asUser,
  describeExit,
  parseUnitState,
  parseUnitStates,
  systemctlShowCommand
} from '../../src/ssh/guest.js'
import type { SshSession } from '../../src/ssh/client.js'
import { parseFailedUnits, unitJournalCommand } from '../../src/checks/system.js'
import { accountCommand, parseAccount, userProblems } from '../../src/checks/users.js'
import { homeFileCommand } from '../../src/checks/home-manager.js'
import { STAGES } from '../../src/report/model.js'

const unitStateCommand = (unit: string, user: string | undefined, sshUser: string): string =>
  systemctlShowCommand([unit], STATE_PROPS, user, sshUser)
const unitStatesCommand = (units: string[]): string =>
  systemctlShowCommand(units, STATE_PROPS, undefined, 'root')
/** A guest whose commands are only looked at. */
const guest = (sshUser: string): Guest =>
  new Guest({} as SshSession, new AbortController().signal, sshUser)

/** Runs a guest command line with the host's /bin/sh: proves the quoting, not just its text. */
function sh(command: string): string {
  return execFileSync('/bin/sh', ['-c', command], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH, HOME: '/tmp' }
  })
}

describe('asUser', () => {
  it('runs as the SSH user in a login shell from its home', () => {
    expect(asUser('git --version', undefined, 'root')).toBe(
      `sh -lc 'cd "$HOME" 2>/dev/null || cd /\ngit --version'`
    )
    expect(asUser('id -un', 'root', 'root')).toBe(asUser('id -un', undefined, 'root'))
  })

  it('uses runuser as root, falling back to su, with the user and command quoted', () => {
    const c = asUser('echo hi', 'baleen', 'root')
    expect(c).toMatch(
      /^if command -v runuser >\/dev\/null 2>&1; then exec runuser -u baleen -- sh -lc '/
    )
    expect(c).toMatch(/else exec su -s \/bin\/sh baleen -c '/)
  })

  it('uses sudo -n when the SSH user is not root', () => {
    expect(asUser('id', 'baleen', 'deploy')).toBe(
      `sudo -n -H -u baleen -- sh -lc 'cd "$HOME" 2>/dev/null || cd /\nid'`
    )
  })

  it('survives quotes, $ and newlines in the command (executed)', () => {
    const cmd = `printf '%s|' "it's" '$HOME' "$(echo a b)"; echo\necho second`
    expect(sh(asUser(cmd, undefined, 'root'))).toBe(`it's|$HOME|a b|\nsecond\n`)
  })

  const root = process.getuid?.() === 0
  ;(root ? it : it.skip)('really switches user with runuser (host is root)', () => {
    let out: string
    try {
      out = sh(asUser(`id -un; echo "$HOME"; pwd; echo "it's"`, 'nobody', 'root'))
    } catch {
      return // no runuser/su usable on this host
    }
    const [who, , cwd, quoted] = out.trim().split('\n')
    expect(who).toBe('nobody')
    expect(cwd).toBe('/') // nobody's home does not exist: falls back to /
    expect(quoted).toBe("it's")
  })
})

describe('judgeCommand', () => {
  it('needs exit 0 and, when given, a multi-line match', () => {
    expect(judgeCommand({}, 0, 'anything').ok).toBe(true)
    expect(judgeCommand({ expect: '^git version' }, 0, 'warning: x\ngit version 2.39.5').ok).toBe(
      true
    )
    expect(judgeCommand({ expect: '^NVIM v' }, 0, 'VIM - Vi IMproved')).toEqual({
      ok: false,
      why: 'output does not match /^NVIM v/'
    })
    expect(judgeCommand({ expect: '.' }, 127, 'sh: nvim: not found').ok).toBe(false)
  })
})

describe('describeExit', () => {
  const base = {
    command: 'x',
    stdout: '',
    stderr: '',
    durationMs: 5,
    signal: undefined,
    timedOut: false
  }
  it('names how the command ended', () => {
    expect(describeExit({ ...base, code: 127 })).toBe('exit 127 (command not found)')
    expect(describeExit({ ...base, code: 1 })).toBe('exit 1')
    expect(describeExit({ ...base, code: null, timedOut: true, signal: 'timeout' }, 30_000)).toBe(
      'timed out after 30.0s'
    )
    expect(describeExit({ ...base, code: null, signal: 'KILL' })).toBe('killed by SIGKILL')
  })
})

describe('trimOutput', () => {
  it('keeps the end of a failure and the start of a success, marking the cut', () => {
    const text = Array.from({ length: 1000 }, (_, i) => `line ${i}`).join('\n')
    const tail = trimOutput(text, 100)
    expect(tail).toMatch(/^… \(\d+ characters cut\)\n/)
    expect(tail.endsWith('line 999')).toBe(true)
    expect(tail.length).toBeLessThanOrEqual(130)
    const head = trimOutput(text, 100, 'head')
    expect(head.startsWith('line 0\n')).toBe(true)
    expect(head).toMatch(/\n… \(\d+ characters cut\)$/)
    expect(trimOutput('short\n\n')).toBe('short')
  })
})

describe('systemd units', () => {
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

  it('lists failed units from list-units --failed, with or without the bullet', () => {
    expect(
      parseFailedUnits(
        'broken-demo.service loaded failed failed Broken demo service\n● other.mount loaded failed failed /srv\n\n'
      )
    ).toEqual(['broken-demo.service', 'other.mount'])
    expect(parseFailedUnits('0 loaded units listed.\n')).toEqual([])
  })

  it('reads the last journal lines of a unit, quoted', () => {
    expect(unitJournalCommand('broken-demo.service')).toBe(
      'journalctl -b -u broken-demo.service -n 20 --no-pager -o short-monotonic 2>&1'
    )
    expect(unitJournalCommand('a\\x2db.mount')).toBe(
      `journalctl -b -u 'a\\x2db.mount' -n 20 --no-pager -o short-monotonic 2>&1`
    )
  })

  it('asks the docker daemon as the user, not through sudo: curl on the socket, else the CLI', () => {
    const c = guest('root').asUser('baleen').command(DOCKER_API_SCRIPT)
    expect(c).toMatch(/runuser -u baleen -- sh -lc [\s\S]*curl -sS --max-time 30 --unix-socket/)
    expect(c).toMatch(/docker version --format/)
    expect(c).not.toMatch(/sudo/)
  })

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

  it('builds quoted account and home-file commands', () => {
    expect(accountCommand('baleen')).toBe(
      `getent passwd baleen || { echo "no such user: "baleen >&2; exit 2; }; id -nG baleen`
    )
    expect(homeFileCommand('baleen', ".config/it's file")).toContain(
      `f="$home"/'.config/it'\\''s file'`
    )
  })
})

describe('network', () => {
  it('resolves with getent and fetches with curl, wget or busybox wget', () => {
    expect(resolveCommand('cache.nixos.org')).toBe('getent hosts cache.nixos.org')
    const f = fetchCommand('https://cache.nixos.org/nix-cache-info?a=1&b=2', 30_000)
    expect(f).toContain(`curl -fsS -o /dev/null --max-time 28 `)
    expect(f).toContain(`'https://cache.nixos.org/nix-cache-info?a=1&b=2'`)
    expect(f).toMatch(/elif command -v wget .*\n\s+wget -q -O \/dev\/null -T 28 /)
    expect(f).toMatch(/busybox wget -q -O \/dev\/null -T 28 /)
  })

  it('builds valid shell (sh -n)', () => {
    for (const c of [
      fetchCommand('http://10.0.2.2:8080/x', 10_000),
      unitStateCommand('a.service', 'baleen', 'root'),
      homeFileCommand('baleen', 'x')
    ]) {
      expect(() => execFileSync('/bin/sh', ['-n', '-c', c])).not.toThrow()
    }
  })
})

describe('e2e', () => {
  it('runs the copied script as the user, bounded by timeout(1), stderr merged', () => {
    const c = e2eCommand('/tmp/nvv-e2e.abc/dev-env.sh', 300_000, guest('root').asUser('baleen'))
    expect(c).toMatch(/runuser -u baleen -- sh -lc /)
    expect(c).toContain('exec timeout -k 5 300 /tmp/nvv-e2e.abc/dev-env.sh 2>&1')
  })

  it('finds the failing line in dash and bash messages', () => {
    expect(
      scriptErrorLine('/tmp/nvv-e2e.x/e2e-fail.sh: 7: no-such-tool: not found', 'e2e-fail.sh')
    ).toBe(7)
    expect(
      scriptErrorLine(
        '/tmp/x/t.sh: line 12: foo: command not found\n/tmp/x/t.sh: line 14: bar: x',
        't.sh'
      )
    ).toBe(14)
    expect(scriptErrorLine('dev-env: FAIL: make failed', 'dev-env.sh')).toBeUndefined()
    expect(scriptErrorLine('/tmp/x/other.sh: 3: x: not found', 'e2e-fail.sh')).toBeUndefined()
  })

  it('names the log artifact after the script', () => {
    expect(e2eLogName('tests/e2e/dev-env.sh')).toBe('e2e-tests_e2e_dev-env.sh.log')
    expect(e2eLogName('./run me.sh')).toBe('e2e-run_me.sh.log')
  })
})

describe('defaultChecks', () => {
  const d = defaultChecks()
  it('covers the seed scenarios for the conventional user', () => {
    expect(DEFAULT_USER).toBe('baleen')
    expect(d.source).toBeUndefined()
    expect(d.system).toBeDefined()
    expect(d.services.map((s) => s.unit)).toEqual(['sshd.service', 'docker.service'])
    expect(d.docker?.users.map((u) => u.name)).toEqual(['baleen'])
    // wheel (NixOS) vs sudo (Debian) differs by distribution: only docker is required.
    expect(d.users).toEqual([{ name: 'baleen', groups: ['docker'], timeoutMs: 30_000 }])
    expect(d.homeManager.map((h) => h.user)).toEqual(['baleen'])
    expect(d.packages.map((p) => p.name)).toEqual(['git', 'vim', 'make', 'gcc', 'curl'])
    expect(d.packages.every((p) => p.user === 'baleen' && p.expect !== undefined)).toBe(true)
    expect(d.network?.urls.map((u) => u.url)).toEqual(['https://cache.nixos.org/nix-cache-info'])
    expect(d.performance?.bootTimeMs).toBe(10 * 60_000)
    expect(d.e2e).toEqual([])
  })

  it('has every expectation compile and every stage a section', () => {
    for (const p of d.packages) expect(() => new RegExp(p.expect ?? '', 'm')).not.toThrow()
    expect(STAGES.filter((s) => s !== 'boot' && s !== 'ssh')).toEqual([
      'system',
      'services',
      'users',
      'home-manager',
      'packages',
      'network',
      'performance',
      'e2e'
    ])
  })
})
