import { readFileSync } from 'node:fs'
import { createHash, randomInt, randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import {
  faultlineHttp, faultlineStream, faultlineSse, faultlineWebsocket, faultlineBackground,
  BadGatewayError, BadRequestError, ForbiddenError, InternalError, NotFoundError, ServiceUnavailableError,
  SHUTDOWN_CLOSE_CODE, SHUTDOWN_REASON
} from '../../index.js'
import { createRecentFaults } from './recent-faults.js'
import { enableTracing } from './tracing.js'
import { clientModule } from './client-modules.js'

export interface DemoOptions {
  /** Fastify's `logger` option. Default: info level to stdout. */
  logger?: FastifyServerOptions['logger']
  /** Trace with OpenTelemetry (@fastify/otel + otelReporter) and print each span on stderr. */
  tracing?: boolean
}

// The page is three small files, read once and served as they are, plus the
// client module (client-modules.ts): no build step, no static plugin.
const PUBLIC = new URL('./public/', import.meta.url)
const ASSETS: Record<string, { type: string, body: string }> = {
  '/': { type: 'text/html; charset=utf-8', body: readFileSync(new URL('index.html', PUBLIC), 'utf8') },
  '/app.js': { type: 'text/javascript; charset=utf-8', body: readFileSync(new URL('app.js', PUBLIC), 'utf8') },
  '/style.css': { type: 'text/css; charset=utf-8', body: readFileSync(new URL('style.css', PUBLIC), 'utf8') }
}

const BOOKS = new Map([['1', { id: '1', title: 'The Mythical Man-Month', year: 1975 }]])

// The resumable download: a few MB, the same bytes every time, and an ETag
// from their hash (it names the content, not this process).
const DOWNLOAD = Buffer.alloc(4 * 1024 * 1024)
for (let i = 0, x = 2463534242; i < DOWNLOAD.length; i++) {
  x ^= x << 13; x ^= x >>> 17; x ^= x << 5
  DOWNLOAD[i] = x & 0xff
}
const DOWNLOAD_SHA256 = createHash('sha256').update(DOWNLOAD).digest('hex')

/** The demo: every faultline plugin registered, one route per way to fail, and the page that triggers them. */
export async function buildDemo (options: DemoOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: options.logger ?? { level: 'info' },
    // EventSource and aborted fetches leave keep-alive sockets behind; close() should not wait for them.
    forceCloseConnections: true
  })
  const recent = createRecentFaults()
  const reporters = options.tracing === true ? [recent.reporter, await enableTracing(app)] : [recent.reporter]
  await app.register(faultlineHttp, { onFault: reporters })
  await app.register(faultlineStream)
  await app.register(faultlineSse)
  await app.register(faultlineWebsocket)
  await app.register(faultlineBackground, { shutdownTimeout: 2000 })

  for (const [path, asset] of Object.entries(ASSETS)) {
    app.get(path, async (request, reply) => reply.type(asset.type).send(asset.body))
  }

  for (const prefix of ['/client/*', '/lib/*', '/vendor/*']) {
    app.get(prefix, async (request, reply) => {
      const module = clientModule(request.url.split('?')[0]!)
      if (module === undefined) throw new NotFoundError(`No module ${request.url}`)
      return reply.type(module.type).send(module.body)
    })
  }

  app.get<{ Querystring: { after?: number } }>('/api/faults', {
    schema: { querystring: { type: 'object', properties: { after: { type: 'integer', minimum: 0 } } } }
  }, async request => ({ faults: recent.list(request.query.after) }))

  // HTTP: an exposed 4xx. The message is meant for the client.
  app.get<{ Params: { id: string } }>('/api/books/:id', async request => {
    const book = BOOKS.get(request.params.id)
    if (book === undefined) throw new NotFoundError(`No book with id ${request.params.id}`)
    return book
  })

  // HTTP: a 5xx whose message must never reach the client; reporters and logs still get it.
  app.get('/api/report', async () => {
    const cause = new Error('password authentication failed for user "billing" at 10.0.3.7:5432')
    throw new InternalError('Could not build the sales report: ledger database refused the connection', { cause })
  })

  // HTTP: Fastify's own schema validation, adopted as a ValidationError with the issues as details.
  app.post('/api/books', {
    schema: {
      body: {
        type: 'object',
        required: ['title', 'year'],
        properties: {
          title: { type: 'string', minLength: 1 },
          year: { type: 'integer', minimum: 1450 }
        }
      }
    }
  }, async (request, reply) => reply.code(201).send(request.body))

  // Stream, raw: a few lines, then the upstream breaks. The 200 is long gone, so the body is cut.
  app.get('/api/stream/raw', async (request, reply) => reply.type('text/csv; charset=utf-8').streamSafe(async function * (signal) {
    for (let row = 1; row <= 3; row++) {
      yield `${row},order-${1000 + row},${(row * 42).toFixed(2)} EUR\n`
      await sleep(150, undefined, { signal })
    }
    throw new BadGatewayError('Export upstream reset the connection after row 3 of 10')
  }))

  // Resumable stream: etag + length make Range requests work. Each download
  // (one session id) breaks twice at random offsets; the client resumes
  // with Range + If-Range and gets 206s from exactly where it stopped.
  const downloads = new Map<string, number[]>()
  app.get<{ Querystring: { session?: string } }>('/api/download', async (request, reply) => {
    const session = String(request.query.session ?? '')
    let breaks = downloads.get(session)
    if (breaks === undefined) {
      if (downloads.size > 1000) downloads.clear()
      const third = Math.floor(DOWNLOAD.length / 3)
      breaks = [randomInt(1, third), randomInt(third, 2 * third)]
      downloads.set(session, breaks)
    }
    const plan = breaks
    return reply.type('application/octet-stream').streamSafe(async function * (signal, { offset }) {
      while (plan.length > 0 && plan[0]! <= offset) plan.shift()
      const failAt = plan.shift()
      for (let at = offset; at < DOWNLOAD.length;) {
        const end = Math.min(at + 64 * 1024, DOWNLOAD.length, failAt ?? Infinity)
        yield DOWNLOAD.subarray(at, end)
        at = end
        if (at === failAt) throw new BadGatewayError(`Storage node dropped the connection at byte ${at}`)
        await sleep(5, undefined, { signal })
      }
    }, { etag: DOWNLOAD_SHA256.slice(0, 32), length: DOWNLOAD.length })
  })
  app.get('/api/download/sha256', async () => ({ sha256: DOWNLOAD_SHA256, length: DOWNLOAD.length }))

  // Stream, ndjson: framed records, so the failure can still be said in-band as a last record.
  app.get('/api/stream/ndjson', async (request, reply) => reply.streamSafe(async function * (signal) {
    for (const sku of ['BK-001', 'BK-002', 'BK-003']) {
      yield { sku, inStock: sku.length }
      await sleep(150, undefined, { signal })
    }
    throw new ServiceUnavailableError('Inventory shard 3 is rebalancing; try again shortly', { expose: true, retryAfter: 5 })
  }, { framing: 'ndjson' }))

  // SSE: three ticks, then access is revoked. A 403 is terminal: the error event's id makes the
  // browser's automatic reconnect come back with Last-Event-ID and get 204, so it stops for good.
  app.get('/api/events', { sse: true }, async (request, reply) => {
    await reply.sse.send(async function * () {
      for (let n = 1; n <= 3; n++) {
        // retry: a short reconnect delay, so the demo shows the 204 quickly.
        yield { id: `tick-${n}`, event: 'tick', data: { n, at: new Date().toISOString() }, ...(n === 1 ? { retry: 500 } : {}) }
        await sleep(150)
      }
      throw new ForbiddenError('Your subscription to ticks was revoked')
    }())
  })

  // WebSocket: JSON echo. Garbage is the peer's fault (4xx: error frame, socket stays open);
  // a server failure closes the socket with a code and reason.
  app.get('/ws/chat', { websocket: true }, socket => {
    socket.on('message', data => {
      let message: { op?: unknown, text?: unknown }
      try {
        message = JSON.parse(String(data))
      } catch (cause) {
        throw new BadRequestError('Messages must be JSON, e.g. {"op":"echo","text":"hi"}', { cause })
      }
      if (message.op === 'crash') throw new InternalError('Chat store lost its connection to redis-2:6379')
      if (message.op !== 'echo') throw new BadRequestError('Unknown op; use "echo" or "crash"')
      socket.send(JSON.stringify({ type: 'echo', text: message.text }))
    })
  })

  // WebSocket reconnection: the first connection of each session is closed
  // the way fastify.close() closes every socket in a rolling deploy (1001,
  // SERVER_SHUTDOWN) right after its first pong; the client reconnects.
  const sessions = new Set<string>()
  app.get<{ Querystring: { session?: string } }>('/ws/ticker', { websocket: true }, (socket, request) => {
    const session = String(request.query.session ?? '')
    const first = !sessions.has(session)
    if (sessions.size > 1000) sessions.clear()
    sessions.add(session)
    socket.on('message', () => {
      socket.send(JSON.stringify({ type: 'pong', connection: first ? 'first' : 'again' }))
      if (first) socket.close(SHUTDOWN_CLOSE_CODE, SHUTDOWN_REASON)
    })
  })

  // Background: the order is accepted (202), then the receipt e-mail fails. Nobody is waiting
  // for it any more: it is reported once, with the request id, and the process carries on.
  app.post('/api/orders', async (request, reply) => {
    const orderId = randomUUID()
    reply.background(async signal => {
      await sleep(100, undefined, { signal })
      throw new BadGatewayError(`Mail relay refused the receipt for order ${orderId}`)
    }, { name: 'receipt-email' })
    return reply.code(202).send({ orderId, status: 'accepted', requestId: request.id })
  })

  return app
}
