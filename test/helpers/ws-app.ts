import Fastify, { type FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { faultlineHttp, type FaultlineHttpOptions } from '../../plugins/http.js'
import { faultlineWebsocket, type FaultlineWebsocketOptions } from '../../plugins/websocket.js'
import type { Fault } from '../../lib/fault.js'
import { captureLogs, type LogLine } from './logs.js'
import { listen, WAIT_MS } from './ws-client.js'

export interface Reported {
  fault: Fault
  code: string
  transport: string
  phase: string
  requestId: string | undefined
}

export interface WsApp {
  app: FastifyInstance
  url: string
  logs: ReturnType<typeof captureLogs>
  /** Every `onFault` call so far. */
  reported: Reported[]
  /** Resolves with the first `onFault` call for `code` (or any), made already or to come; bounded. */
  reportOf: (code?: string) => Promise<Reported>
  /** Log lines at error level or above. */
  errorLines: () => LogLine[]
}

/** A listening app with faultlineHttp + faultlineWebsocket, closed at teardown. */
export async function wsApp (
  t: Test,
  routes: (app: FastifyInstance) => void,
  options: FaultlineWebsocketOptions = {},
  // `logLevel` is left out: its type collides with Fastify's own register option of that name.
  httpOptions: Omit<FaultlineHttpOptions, 'onFault' | 'logLevel'> = {}
): Promise<WsApp> {
  const logs = captureLogs()
  const reported: Reported[] = []
  const waiters: Array<{ code: string | undefined, resolve: (r: Reported) => void }> = []
  const app = Fastify({ logger: { level: 'debug', stream: logs.stream } })
  await app.register(faultlineHttp, {
    ...httpOptions,
    onFault (fault, ctx) {
      const entry = { fault, code: fault.code, transport: ctx.transport, phase: ctx.phase, requestId: ctx.request?.id }
      reported.push(entry)
      for (let i = 0; i < waiters.length; i++) {
        const w = waiters[i]!
        if (w.code === undefined || w.code === entry.code) {
          waiters.splice(i, 1)
          w.resolve(entry)
          break
        }
      }
    }
  })
  await app.register(faultlineWebsocket, options)
  routes(app)
  const url = await listen(app)
  t.teardown(() => app.close())
  return {
    app,
    url,
    logs,
    reported,
    reportOf (code) {
      const seen = reported.find(r => code === undefined || r.code === code)
      if (seen !== undefined) return Promise.resolve(seen)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for a report of ${code ?? 'any fault'}`)), WAIT_MS)
        waiters.push({ code, resolve: r => { clearTimeout(timer); resolve(r) } })
      })
    },
    errorLines: () => logs.lines.filter(l => l.level >= 50)
  }
}
