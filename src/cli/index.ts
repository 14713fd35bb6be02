#!/usr/bin/env node
import { main } from './main.js'

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
    // The run is over and its report written: nothing may keep a CI job waiting after this.
    setTimeout(() => process.exit(code), 2000).unref()
  },
  (err: unknown) => {
    process.stderr.write(`internal error: ${String(err)}\n`)
    process.exitCode = 1
  }
)
