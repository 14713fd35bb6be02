import { describe, expect, it } from '@jest/globals'
import { attemptPacing, shellQuote } from '../../src/ssh/client.js'

describe('attemptPacing', () => {
  it('one short attempt at a time while the guest network is not up, waiting longer as it goes', () => {
    const early = attemptPacing(1, { networkSeen: false, lastEndedFast: false })
    const later = attemptPacing(20, { networkSeen: false, lastEndedFast: false })
    expect(early).toEqual({ intervalMs: 100, bannerTimeoutMs: 1250, maxLive: 1 })
    expect(later.bannerTimeoutMs).toBe(2200)
    expect(attemptPacing(400, { networkSeen: false, lastEndedFast: false }).bannerTimeoutMs).toBe(
      15_000
    )
  })

  it('probes every 200 ms while the port is refused, once a second when sshd is slow', () => {
    expect(attemptPacing(9, { networkSeen: true, lastEndedFast: true })).toEqual({
      intervalMs: 200,
      bannerTimeoutMs: 15_000,
      maxLive: 4
    })
    expect(attemptPacing(9, { networkSeen: true, lastEndedFast: false }, 30_000, 2)).toEqual({
      intervalMs: 1000,
      bannerTimeoutMs: 30_000,
      maxLive: 2
    })
  })
})

describe('shellQuote', () => {
  it('leaves plain words and quotes the rest for a POSIX shell', () => {
    expect(shellQuote('docker.service')).toBe('docker.service')
    expect(shellQuote("it's; rm -rf /")).toBe(`'it'\\''s; rm -rf /'`)
  })
})
