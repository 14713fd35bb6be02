/**
 * An HTTP server on 127.0.0.1 at a free port, for the stand-ins of GitHub's services. Subclasses
 * answer requests; starting, the base URL and stopping (with open keep-alive connections) are here.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export abstract class LoopbackServer {
  private server: Server | undefined
  protected base = ''

  async start(): Promise<string> {
    const server = createServer((req, res) => void this.handle(req, res))
    this.server = server
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    this.base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    return this.base
  }

  async stop(): Promise<void> {
    const s = this.server
    if (s === undefined) return
    s.closeAllConnections()
    await new Promise<void>((resolve) => s.close(() => resolve()))
  }

  /**
   * Serve behind another server (one origin for several services, as GitHub's results service
   * is for artifacts and caches): URLs this one hands out use `base`.
   */
  mount(base: string): void {
    this.base = base
  }

  /** A request routed here by the server this one is mounted on. */
  serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    return this.handle(req, res)
  }

  protected abstract handle(req: IncomingMessage, res: ServerResponse): Promise<void>
}
