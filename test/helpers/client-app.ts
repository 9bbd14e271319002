import Fastify, { type FastifyInstance } from 'fastify'
import type { AddressInfo } from 'node:net'
import type { Test } from 'tap'
import { faultlineHttp } from '../../plugins/http.js'
import { faultlineStream } from '../../plugins/stream.js'
import { faultlineSse } from '../../plugins/sse.js'
import { faultlineWebsocket } from '../../plugins/websocket.js'
import { BadRequestError, ForbiddenError, ServiceUnavailableError } from '../../lib/fault.js'
import { OutOfStockError } from './shared-faults.js'

export interface ClientApp {
  app: FastifyInstance
  /** `http://127.0.0.1:port` */
  base: string
  /** `ws://127.0.0.1:port` */
  wsBase: string
  /** Requests per route key (`/sse/retryable` …), and the Last-Event-ID each carried. */
  hits: Map<string, Array<string | undefined>>
}

/** Every transport with the routes the client tests read, on loopback; closed at teardown. */
export async function clientApp (t: Test, extra?: (app: FastifyInstance) => void): Promise<ClientApp> {
  const hits = new Map<string, Array<string | undefined>>()
  const hit = (key: string, lastEventId?: string): number => {
    const list = hits.get(key) ?? []
    hits.set(key, list)
    list.push(lastEventId)
    return list.length
  }
  const app = Fastify({ logger: false, forceCloseConnections: true })
  await app.register(faultlineHttp)
  await app.register(faultlineStream)
  await app.register(faultlineSse, { defaultRetry: 10 })
  await app.register(faultlineWebsocket)

  app.get('/http/out-of-stock', async () => {
    throw new OutOfStockError('Only 2 left of BK-1', { details: { sku: 'BK-1', left: 2 } })
  })
  app.get<{ Querystring: { key: string, fail: string } }>('/flaky', async request => {
    const n = hit(`/flaky/${request.query.key}`)
    if (n <= Number(request.query.fail)) throw new ServiceUnavailableError('Warming up')
    return { ok: true, n }
  })
  app.get('/raw/ok', async (request, reply) => reply.streamSafe(async function * () {
    yield 'abc'
    yield 'def'
  }()))
  app.get('/raw/cut', async (request, reply) => reply.streamSafe(async function * () {
    yield 'abc'
    await new Promise(resolve => setTimeout(resolve, 20))
    throw new Error('upstream reset')
  }()))
  app.get('/ndjson/ok', async (request, reply) => reply.streamSafe((async function * () {
    yield { n: 1 }
    yield { n: 2 }
  }()), { framing: 'ndjson' }))
  app.get('/ndjson/fail', async (request, reply) => reply.streamSafe((async function * () {
    yield { n: 1 }
    yield { n: 2 }
    throw new OutOfStockError('Sold out while streaming', { details: { sku: 'BK-2', left: 0 } })
  }()), { framing: 'ndjson' }))
  app.get('/ndjson/cut', async (request, reply) => reply.type('application/x-ndjson').streamSafe(async function * () {
    yield '{"type":"data","data":1}\n'
    await new Promise(resolve => setTimeout(resolve, 20))
    throw new Error('upstream reset')
  }()))

  app.get('/sse/terminal', { sse: true }, async (request, reply) => {
    hit('/sse/terminal', request.headers['last-event-id'] as string | undefined)
    await reply.sse.send(async function * () {
      yield { id: '1', event: 'tick', data: 'one' }
      yield { id: '2', event: 'tick', data: 'two' }
      throw new ForbiddenError('Access revoked')
    }())
  })
  app.get('/sse/retryable', { sse: true }, async (request, reply) => {
    const last = request.headers['last-event-id'] as string | undefined
    hit('/sse/retryable', last)
    await reply.sse.send(async function * () {
      if (last === undefined) {
        yield { id: '1', data: 'one' }
        yield { id: '2', data: 'two' }
        throw new ServiceUnavailableError('Rebalancing', { retryAfter: 0 })
      }
      for (let n = Number(last) + 1; n <= 3; n++) yield { id: String(n), data: `#${n}` }
    }())
  })

  app.get('/ws/echo', { websocket: true }, socket => {
    socket.on('message', data => {
      if (String(data) === 'bad') throw new BadRequestError('Not a command', { details: { got: 'bad' } })
      socket.send(`echo:${String(data)}`)
    })
  })
  app.get('/ws/shutdown-once', { websocket: true }, socket => {
    if (hit('/ws/shutdown-once') === 1) {
      socket.close(1001, 'SERVER_SHUTDOWN')
      return
    }
    socket.on('message', data => { socket.send(`echo:${String(data)}`) })
  })
  app.get('/ws/forbidden', { websocket: true }, () => {
    hit('/ws/forbidden')
    throw new ForbiddenError('Not your room')
  })

  extra?.(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const port = (app.server.address() as AddressInfo).port
  return { app, base: `http://127.0.0.1:${port}`, wsBase: `ws://127.0.0.1:${port}`, hits }
}
