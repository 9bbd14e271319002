import type { Test } from 'tap'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { faultlineHttp, faultlineSse, type Fault, type FaultContext, type FaultlineSseOptions } from '../../index.js'
import { captureLogs } from './logs.js'

export type Seen = Array<{ fault: Fault, context: FaultContext }>

export interface SseApp {
  app: FastifyInstance
  /** Every reporter call, in order. */
  seen: Seen
  logs: ReturnType<typeof captureLogs>
}

/** An app with faultlineHttp (recording every reported fault) and faultlineSse; closed at teardown. */
export async function buildSseApp (t: Test, opts: FaultlineSseOptions = {}, server: FastifyServerOptions = {}): Promise<SseApp> {
  const logs = captureLogs()
  const seen: Seen = []
  const app = Fastify({ logger: { level: 'debug', stream: logs.stream }, forceCloseConnections: true, ...server })
  await app.register(faultlineHttp, { onFault: (fault, context) => { seen.push({ fault, context }) } })
  await app.register(faultlineSse, opts)
  t.teardown(() => app.close())
  return { app, seen, logs }
}
