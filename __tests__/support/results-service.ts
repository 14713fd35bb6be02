/**
 * GitHub's results service on one loopback origin, as a runner sees it: ACTIONS_RESULTS_URL
 * serves both the artifact service (@actions/artifact) and the cache service v2
 * (@actions/cache), each with its blob store. Requests go to the stand-in that owns the path.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { FakeArtifactService, runtimeToken } from './artifact-service.js'
import { FakeCacheService, cacheEnv } from './cache-service.js'
import { LoopbackServer } from './loopback.js'

export class FakeResultsService extends LoopbackServer {
  constructor(
    readonly artifacts = new FakeArtifactService(),
    readonly cache = new FakeCacheService()
  ) {
    super()
  }

  get url(): string {
    return this.base
  }

  override async start(): Promise<string> {
    const base = await super.start()
    this.artifacts.mount(base)
    this.cache.mount(base)
    return base
  }

  protected handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = req.url ?? '/'
    const cache = path.includes('.CacheService/') || path.includes('/actions-cache/')
    return (cache ? this.cache : this.artifacts).serve(req, res)
  }

  /** Environment of a step that uses both: the results URL, the runtime token, cache v2 on. */
  env(): Record<string, string> {
    return {
      ...cacheEnv(this.cache),
      ACTIONS_RESULTS_URL: `${this.base}/`,
      ACTIONS_RUNTIME_TOKEN: runtimeToken()
    }
  }
}
