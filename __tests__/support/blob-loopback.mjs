/**
 * Preloaded (`node --import`) into a process that talks to FakeCacheService in its 'azure' mode:
 * every name under .blob.core.windows.net resolves to 127.0.0.1, so @actions/cache, which takes
 * the Azure SDK download path (HEAD, then parallel ranged GETs) only for such hosts, takes it
 * against the loopback blob store. Other names resolve as usual.
 */
import dns from 'node:dns'

const AZURE_BLOB = /\.blob\.core\.windows\.net\.?$/i
const lookup = dns.lookup

dns.lookup = function (hostname, options, callback) {
  if (typeof options === 'function') {
    callback = options
    options = {}
  }
  if (typeof hostname === 'string' && AZURE_BLOB.test(hostname)) {
    const o = typeof options === 'number' ? { family: options } : (options ?? {})
    process.nextTick(() =>
      o.all ? callback(null, [{ address: '127.0.0.1', family: 4 }]) : callback(null, '127.0.0.1', 4)
    )
    return {}
  }
  return lookup.call(this, hostname, options, callback)
}
