// The action's main step (action.yml `runs.main`, bundled into dist/main/index.js). `run` is
// exported for runners that import the entry and call it (npm run local-action).
import { run } from './action/main.js'
import { isEntryPoint } from './action/entry.js'

export { run }

if (isEntryPoint(import.meta.url)) void run()
