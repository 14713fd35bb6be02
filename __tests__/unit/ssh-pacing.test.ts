import { describe, expect, it } from '@jest/globals'
import { attemptPacing, shellQuote } from '../../src/ssh/client.js'

describe('attemptPacing', () => {
  it('drops silent attempts quickly while the guest network is not up, waiting longer as it goes', () => {
    const early = attemptPacing(1, { networkSeen: false, lastEndedFast: false })
    const later = attemptPacing(20, { networkSeen: false, lastEndedFast: false })
    expect(early).toEqual({ intervalMs: 250, bannerTimeoutMs: 2250 })
    expect(later.bannerTimeoutMs).toBe(7000)
    expect(attemptPacing(200, { networkSeen: false, lastEndedFast: false }).bannerTimeoutMs).toBe(
      15_000
    )
  })

  it('probes every 200 ms while the port is refused, once a second when sshd is slow', () => {
    expect(attemptPacing(9, { networkSeen: true, lastEndedFast: true })).toEqual({
      intervalMs: 200,
      bannerTimeoutMs: 15_000
    })
    expect(attemptPacing(9, { networkSeen: true, lastEndedFast: false }, 30_000)).toEqual({
      intervalMs: 1000,
      bannerTimeoutMs: 30_000
    })
  })
})

describe('shellQuote', () => {
  it('leaves plain words and quotes the rest for a POSIX shell', () => {
    expect(shellQuote('docker.service')).toBe('docker.service')
    expect(shellQuote("it's; rm -rf /")).toBe(`'it'\\''s; rm -rf /'`)
  })
})
