// The action's post step (action.yml `runs.post`, bundled into dist/post/index.js). Exported as
// `run` too: runners that import the entry call that name (npm run local-action).
import { runPost } from './action/post.js'
import { isEntryPoint } from './action/entry.js'

export { runPost, runPost as run }

if (isEntryPoint(import.meta.url)) void runPost()
