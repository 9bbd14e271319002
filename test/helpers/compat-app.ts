import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { Test } from 'tap'
import {
  faultlineHttp, faultlineStream, faultlineSse, faultlineWebsocket, faultlineBackground,
  type Fault, type FaultContext
} from '../../index.js'
import { captureLogs, type LogLine } from './logs.js'

export interface CompatApp {
  app: FastifyInstance
  /** The loopback URL when the app listens, else undefined (inject only). */
  url: string
  lines: LogLine[]
  /** Log lines faultline wrote (`handled: true`). */
  faults: () => LogLine[]
  reports: Array<{ fault: Fault, context: FaultContext<unknown> }>
}

export interface CompatOptions {
  /** Registered before faultline: for plugins whose README registers them first. */
  first?: (app: FastifyInstance) => Promise<void> | void
  /** Listen on a loopback port (for tests where the socket matters). */
  listen?: boolean
  server?: FastifyServerOptions
}

/**
 * An app as a user has it: every faultline plugin registered at the root the
 * way the README shows, a captured logger and a recording reporter; `setup`
 * registers the third-party plugin and the routes after them. Closed when the
 * test ends.
 */
export async function compatApp (t: Test, setup: (app: FastifyInstance) => Promise<void> | void, options: CompatOptions = {}): Promise<CompatApp> {
  const logs = captureLogs()
  const reports: CompatApp['reports'] = []
  const app = Fastify({ logger: { level: 'debug', stream: logs.stream }, forceCloseConnections: true, ...options.server })
  t.teardown(() => app.close())
  await options.first?.(app)
  await app.register(faultlineHttp, { onFault: (fault, context) => { reports.push({ fault, context }) } })
  await app.register(faultlineStream)
  await app.register(faultlineSse)
  await app.register(faultlineWebsocket)
  await app.register(faultlineBackground)
  await setup(app)
  const url = options.listen === true ? await app.listen({ port: 0, host: '127.0.0.1' }) : (await app.ready(), '')
  return { app, url, lines: logs.lines, faults: logs.faults, reports }
}

/** Whether a content type is problem+json. */
export function isProblem (contentType: unknown): boolean {
  return typeof contentType === 'string' && contentType.startsWith('application/problem+json')
}
