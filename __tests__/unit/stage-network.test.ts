import { describe, expect, it } from '@jest/globals'
import { execFileSync } from 'node:child_process'
import { fetchCommand, resolveCommand } from '../../src/checks/network.js'
import { STATE_PROPS } from '../../src/checks/services.js'
import { homeFileCommand } from '../../src/checks/home-manager.js'
import { systemctlShowCommand } from '../../src/ssh/guest.js'
import { networkUnit } from '../../src/checks/network.js'
import { checksOf as parsed } from '../fixtures/guest.js'

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
      systemctlShowCommand(['a.service'], STATE_PROPS, 'baleen', 'root'),
      homeFileCommand('baleen', 'x')
    ]) {
      expect(() => execFileSync('/bin/sh', ['-n', '-c', c])).not.toThrow()
    }
  })
})

describe('network unit', () => {
  it('owns the network section, starts after the boot, and is asked for by a checks file only', () => {
    expect(Object.keys(networkUnit.sections)).toEqual(['network'])
    expect(networkUnit.timeouts).toEqual({ network: 30_000, substitute: 3 * 60_000 })
    expect(networkUnit.afterBootEnd).toBe(true)
    expect(networkUnit.defaults()).toEqual({})
    expect(parsed('users: []\n').network).toBeUndefined()
  })

  it('reads resolve, urls and timeout', () => {
    expect(
      parsed('network:\n  resolve: [example.org]\n  urls: [https://example.org/]\n  timeout: 10s\n')
        .network
    ).toEqual({
      resolve: [{ name: 'example.org', file: 'c.yml', line: 2 }],
      urls: [{ url: 'https://example.org/', file: 'c.yml', line: 3 }],
      timeoutMs: 10_000
    })
    expect(() => parsed('network: { urls: [ftp://x] }\n')).toThrow(
      'c.yml:1: network.urls[0]: "ftp://x" is not an http:// or https:// URL'
    )
  })
})
