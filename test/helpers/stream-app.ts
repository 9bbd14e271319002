import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { Test } from 'tap'
import { faultlineHttp, faultlineStream, type Fault, type FaultContext, type FaultlineStreamOptions } from '../../index.js'
import { captureLogs, type LogLine } from './logs.js'

export interface StreamApp {
  app: FastifyInstance
  url: string
  lines: LogLine[]
  faults: () => LogLine[]
  reports: Array<{ fault: Fault, context: FaultContext<unknown> }>
}

/**
 * A Fastify app with faultline-http and faultline-stream, a debug-level
 * captured logger and a recording reporter. `routes` adds the routes; the app
 * listens on a loopback port and closes when the test ends.
 */
export async function streamApp (t: Test, routes: (app: FastifyInstance) => void, options: FaultlineStreamOptions = {}, serverOptions: FastifyServerOptions = {}): Promise<StreamApp> {
  const logs = captureLogs()
  const reports: StreamApp['reports'] = []
  // forceCloseConnections: fetch may keep a spare connection after an aborted read (FASTIFY-NOTES).
  const app = Fastify({ logger: { level: 'debug', stream: logs.stream }, forceCloseConnections: true, ...serverOptions })
  await app.register(faultlineHttp, { onFault: (fault, context) => { reports.push({ fault, context }) } })
  await app.register(faultlineStream, options)
  routes(app)
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return { app, url: address, lines: logs.lines, faults: logs.faults, reports }
}

/** Resolves when `check()` is true; fails after `ms` (a generous bound, not a timing assertion). */
export async function waitFor (check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const start = Date.now()
  while (!check()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}

/** Reads a fetch body to the end; returns the text and, when the read failed, the error. */
export async function readBody (response: Response): Promise<{ text: string, error: unknown }> {
  const reader = response.body!.getReader()
  const decoder = new TextDecoder()
  let text = ''
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return { text, error: undefined }
      text += decoder.decode(value, { stream: true })
    }
  } catch (error) {
    return { text, error }
  }
}

/** Log lines Fastify itself wrote about a stream or a late promise: the ones faultline must prevent. */
export function foreignStreamLogs (lines: LogLine[]): LogLine[] {
  return lines.filter(l => typeof l.msg === 'string' && /stream closed prematurely|response terminated with an error|Promise errored|already sent|does not end properly/.test(l.msg))
}
