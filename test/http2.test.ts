// Every transport HTTP/2 carries, over h2c and over TLS (with allowHTTP1),
// with Node's http2 client and with undici: problem+json, raw (a failure
// mid-way is RST_STREAM INTERNAL_ERROR, never a clean end), ndjson and SSE
// (their error record / event), background work, and client resets (a
// cancel stops the producer and is a client abort). No UnsupportedWarning,
// and fastify.close() never waits on a stream that is over.
import t, { type Test } from 'tap'
import http2, { type Http2ServerRequest, type ServerHttp2Stream } from 'node:http2'
import { Readable } from 'node:stream'
import { fetch, type Dispatcher } from 'undici'
import { once } from 'node:events'
import Fastify, { type FastifyInstance } from 'fastify'
import WebSocket from 'ws'
import { NotFoundError, ServiceUnavailableError, faultlineHttp, faultlineWebsocket } from '../index.js'
import { truncateResponse } from '../lib/truncate.js'
import { guardProcess } from './helpers/guard.js'
import { readBody, waitFor } from './helpers/stream-app.js'
import { errorEventProblem, ndjsonErrorProblem, problemResponseProblem } from './helpers/chaos-checks.js'
import {
  H2_MODES, collectWarnings, h2App, h2Dispatcher, h2Request, h2Session, selfSigned, type H2App, type H2Mode
} from './helpers/h2.js'

guardProcess(t)
const warnings = collectWarnings(t)

const CONNECTION_SPECIFIC = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']
const tick = async (ms = 5): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

/**
 * How many bytes the HTTP/2 session under `stream` has handed to its TCP
 * socket so far (a Node internal: the socket handle's count, which Node's
 * http2 writes bypass the public `socket.bytesWritten` for).
 */
function socketBytesWritten (stream: ServerHttp2Stream): () => number {
  const socket = stream.session?.socket as unknown as { _handle: { bytesWritten: number } }
  return () => socket._handle.bytesWritten
}

/** Producers that run until stopped, counted per route. */
interface Producers { started: number, stopped: number }

async function app (t: Test, mode: H2Mode): Promise<H2App & { producers: Producers, tasks: string[] }> {
  const producers: Producers = { started: 0, stopped: 0 }
  const tasks: string[] = []
  async function * endless<T> (signal: AbortSignal | undefined, item: () => T): AsyncGenerator<T> {
    producers.started++
    try {
      while (signal?.aborted !== true) {
        yield item()
        await tick(2)
      }
    } finally {
      producers.stopped++
    }
  }
  const h = await h2App(t, mode, app => {
    app.get('/problem', async () => { throw new NotFoundError('No such order') })
    app.get('/raw/ok', async (_req, reply) => reply.streamSafe(Readable.from(['hello ', 'world'])))
    app.get('/raw/fail', async (_req, reply) => reply.streamSafe(async function * () {
      yield 'hello '
      yield 'world'
      await tick()
      throw new Error('upstream broke')
    }()))
    app.get('/raw/big-fail', async (_req, reply) => reply.streamSafe(async function * () {
      // More than a flow-control window, written in a burst: every byte still arrives before the reset.
      for (let i = 0; i < 128; i++) yield 'z'.repeat(1024)
      throw new Error('upstream broke')
    }()))
    app.get('/late-problem', async (_req, reply) => {
      reply.hijack()
      reply.raw.writeHead(200, { 'content-type': 'text/plain' })
      reply.raw.write('partial')
      await tick()
      app.faultline.sendProblem(reply, new ServiceUnavailableError('Lost the upstream'))
    })
    app.get('/ndjson/fail', async (_req, reply) => reply.streamSafe((async function * () {
      yield 'first'
      await tick()
      throw new Error('upstream broke')
    }()), { framing: 'ndjson' }))
    app.get('/sse/fail', { sse: true }, async (_req, reply) => {
      await reply.sse.send({ data: 'first' })
      throw new Error('upstream broke')
    })
    app.get('/raw/endless', async (_req, reply) => reply.streamSafe(signal => endless(signal, () => 'x'.repeat(512))))
    app.get('/ndjson/endless', async (_req, reply) => reply.streamSafe(signal => endless(signal, () => ({ n: 1 })), { framing: 'ndjson' }))
    app.get('/sse/endless', { sse: true }, async (_req, reply) => {
      reply.header('keep-alive', 'timeout=5') // a forbidden header a route may set: dropped on HTTP/2
      await reply.sse.send(endless(undefined, () => ({ data: 'tick' })))
    })
    app.get('/background', async (_req, reply) => {
      reply.background(async () => { tasks.push('after /background') })
      reply.background(async () => { throw new Error('task broke') }, { name: 'failing' })
      return 'sent'
    })
    app.get('/background/cut', async (_req, reply) => {
      reply.background(async () => { tasks.push('after /background/cut') })
      return reply.streamSafe(signal => endless(signal, () => 'y'.repeat(512)))
    })
  })
  return { ...h, producers, tasks }
}

/** The reports since `from`, as "code status transport phase". */
function reported (h: H2App, from = 0): string[] {
  return h.reports.slice(from).map(r => `${r.fault.code} ${r.fault.status} ${r.context.transport} ${r.context.phase}`)
}

function noConnectionHeaders (t: Test, headers: Record<string, unknown>): void {
  t.same(CONNECTION_SPECIFIC.filter(name => headers[name] !== undefined), [], 'no connection-specific header')
}

for (const mode of H2_MODES) {
  t.test(`${mode}, Node's http2 client`, async t => {
    const h = await app(t, mode)
    const session = await h2Session(t, h)

    t.test('a thrown fault is problem+json', async t => {
      const res = await h2Request(session, '/problem')
      t.equal(problemResponseProblem(res.status!, res.headers['content-type'], res.body), undefined)
      t.match(JSON.parse(res.body), { status: 404, code: 'NOT_FOUND', detail: 'No such order' })
    })

    t.test('a raw stream that ends well ends with END_STREAM', async t => {
      const res = await h2Request(session, '/raw/ok')
      t.same([res.body, res.rstCode, res.error], ['hello world', 0, undefined])
    })

    t.test('a raw stream that fails mid-way is reset with INTERNAL_ERROR after the bytes already sent', async t => {
      const from = h.reports.length
      const res = await h2Request(session, '/raw/fail')
      t.equal(res.status, 200)
      t.equal(res.body, 'hello world', 'the bytes sent before the failure arrive')
      t.equal(res.rstCode, http2.constants.NGHTTP2_INTERNAL_ERROR, 'RST_STREAM INTERNAL_ERROR, never a clean end')
      t.match(res.error, { code: 'ERR_HTTP2_STREAM_ERROR' })
      t.same(reported(h, from), ['INTERNAL 500 stream mid-stream'], 'reported once, as a mid-stream fault')

      const big = await h2Request(session, '/raw/big-fail')
      t.equal(big.body.length, 128 * 1024, 'a burst larger than the flow-control window still arrives whole')
      t.equal(big.rstCode, http2.constants.NGHTTP2_INTERNAL_ERROR)
    })

    t.test('sendProblem() after the headers resets the stream', async t => {
      const from = h.reports.length
      const res = await h2Request(session, '/late-problem')
      t.same([res.status, res.body, res.rstCode], [200, 'partial', http2.constants.NGHTTP2_INTERNAL_ERROR])
      t.same(reported(h, from), ['SERVICE_UNAVAILABLE 503 http mid-stream'])
    })

    t.test('ndjson ends with its error record, then a clean end', async t => {
      const res = await h2Request(session, '/ndjson/fail')
      t.equal(ndjsonErrorProblem(res.body), undefined)
      t.equal(res.rstCode, 0)
    })

    t.test('SSE ends with its error event; no connection-specific header', async t => {
      const res = await h2Request(session, '/sse/fail', { headers: { accept: 'text/event-stream' } })
      t.equal(res.headers['content-type'], 'text/event-stream')
      noConnectionHeaders(t, res.headers)
      t.equal(errorEventProblem(res.body), undefined)
    })

    t.test('a client reset stops the producer and is reported once as a client abort, at debug', async t => {
      for (const [path, headers] of [['/raw/endless', {}], ['/ndjson/endless', {}], ['/sse/endless', { accept: 'text/event-stream' }]] as const) {
        const from = h.reports.length
        const stopped = h.producers.stopped
        const res = await h2Request(session, path, { headers, cancelAfter: 2048 })
        t.equal(res.rstCode, http2.constants.NGHTTP2_CANCEL)
        noConnectionHeaders(t, res.headers)
        await waitFor(() => h.producers.stopped === stopped + 1 && h.reports.length > from, `${path}: the producer to stop`)
        await tick(20)
        t.same(reported(h, from), [`CLIENT_CLOSED 499 ${path.startsWith('/sse') ? 'sse' : 'stream'} mid-stream`], `${path}: one client abort`)
        t.match(h.lines.filter(l => l.handled === true).at(-1), { level: 20, fault: { status: 499 } }, 'logged at debug')
      }
      t.equal(h.producers.stopped, h.producers.started, 'every producer stopped')
    })

    t.test('background work runs after a whole response, and not after a reset one', async t => {
      const from = h.reports.length
      const res = await h2Request(session, '/background')
      t.same([res.status, res.body, res.rstCode], [200, 'sent', 0])
      await h.app.faultline.background.idle()
      t.same(h.tasks, ['after /background'])
      t.same(reported(h, from), ['INTERNAL 500 background after-response'], 'the failing task is reported once')

      const stopped = h.producers.stopped
      await h2Request(session, '/background/cut', { cancelAfter: 1024 })
      await waitFor(() => h.producers.stopped === stopped + 1, 'the producer to stop')
      await h.app.faultline.background.idle()
      t.same(h.tasks, ['after /background'], 'the task of a reset response is skipped')
    })

    t.test('fastify.close() does not wait on streams that are over, and ends an open SSE stream', async t => {
      // The session stays open: its reset and truncated streams must not hold the server.
      const open = h2Request(session, '/sse/endless', { headers: { accept: 'text/event-stream' } })
      await waitFor(() => h.app.faultline.sse.open === 1, 'the SSE stream to open')
      await h.app.close()
      const res = await open
      t.equal(res.rstCode, 0, 'the open SSE stream ended cleanly')
      t.match(res.body, /event: error\n/, 'with its shutdown event')
      t.equal(h.producers.stopped, h.producers.started, 'every producer stopped')
    })
  })

  t.test(`${mode}, undici`, async t => {
    const h = await app(t, mode)
    let dispatcher = h2Dispatcher(t, h)
    const get = async (path: string, init: { headers?: Record<string, string>, signal?: AbortSignal } = {}): Promise<Awaited<ReturnType<typeof fetch>>> =>
      await fetch(h.url + path, { dispatcher: dispatcher as Dispatcher, ...init })

    t.test('problem+json', async t => {
      const res = await get('/problem')
      const body = await res.text()
      t.equal(problemResponseProblem(res.status, res.headers.get('content-type'), body), undefined)
    })

    t.test('a raw failure rejects the body read (a stream error, never a clean end)', async t => {
      const from = h.reports.length
      const res = await get('/raw/fail')
      t.equal(res.status, 200)
      const { text, error } = await readBody(res as unknown as Response)
      t.equal(text, 'hello world')
      t.match(error, { name: 'TypeError', cause: { code: 'ERR_HTTP2_STREAM_ERROR', message: /NGHTTP2_INTERNAL_ERROR/ } })
      t.same(reported(h, from), ['INTERNAL 500 stream mid-stream'])
    })

    t.test('ndjson and SSE end with their error record and event', async t => {
      t.equal(ndjsonErrorProblem(await (await get('/ndjson/fail')).text()), undefined)
      const sse = await get('/sse/fail', { headers: { accept: 'text/event-stream' } })
      t.same(CONNECTION_SPECIFIC.filter(name => sse.headers.has(name)), [], 'no connection-specific header')
      t.equal(errorEventProblem(await sse.text()), undefined)
    })

    t.test('background work runs after the response', async t => {
      t.equal(await (await get('/background')).text(), 'sent')
      await h.app.faultline.background.idle()
      t.same(h.tasks, ['after /background'])
    })

    t.test('a client that drops its connection mid-body: the producer stops, one client abort', async t => {
      // Not an aborted fetch: undici 7 over HTTP/2 does not reliably reset the stream when a
      // fetch is aborted (seen here: the stream stays open until its session closes), so the
      // server cannot know. Node's client, which sends RST_STREAM CANCEL, is tested above.
      for (const [path, headers] of [['/raw/endless', {}], ['/ndjson/endless', {}], ['/sse/endless', { accept: 'text/event-stream' }]] as const) {
        const from = h.reports.length
        const stopped = h.producers.stopped
        const res = await get(path, { headers })
        const reader = res.body!.getReader()
        await reader.read()
        await dispatcher.destroy()
        await t.rejects(reader.read())
        await waitFor(() => h.producers.stopped === stopped + 1 && h.reports.length > from, `${path}: the producer to stop`)
        await tick(20)
        t.same(reported(h, from).map(r => r.split(' ')[1]), ['499'], `${path}: one client abort`)
        dispatcher = h2Dispatcher(t, h)
      }
      t.equal(h.producers.stopped, h.producers.started, 'every producer stopped')
    })
  })
}

t.test('an HTTP/1.1 client of the TLS server (allowHTTP1) still sees truncation', async t => {
  const h = await app(t, 'tls')
  const { Agent } = await import('undici')
  const dispatcher = new Agent({ connect: { ca: h.ca } })
  t.teardown(() => dispatcher.destroy())
  const res = await fetch(h.url + '/raw/fail', { dispatcher })
  await t.rejects(res.text(), { name: 'TypeError', message: 'terminated' })
  const sse = await fetch(h.url + '/sse/fail', { dispatcher, headers: { accept: 'text/event-stream' } })
  t.equal(sse.headers.get('connection'), 'keep-alive', '@fastify/sse keeps its header on HTTP/1.1')
  t.equal(errorEventProblem(await sse.text()), undefined)
})

t.test('truncateResponse() over HTTP/2: queued bytes first, a stuck client after the grace, closed streams left alone', async t => {
  const gone: Array<number | undefined> = []
  // Bytes the session had handed to its socket when /queued was reset, counted from its writeHead.
  const sentAtReset: number[] = []
  const h = await h2App(t, 'h2c', app => {
    app.get('/queued', (req, reply) => {
      reply.hijack()
      reply.raw.writeHead(200)
      const stream = (req.raw as unknown as Http2ServerRequest).stream
      const written = socketBytesWritten(stream)
      const before = written()
      const close = stream.close.bind(stream)
      stream.close = (code?: number) => {
        sentAtReset.push(written() - before)
        close(code)
      }
      for (let i = 0; i < 32; i++) reply.raw.write('q'.repeat(1024)) // still queued when the fault comes
      app.faultline.sendProblem(reply, new Error('broke with writes in flight'))
    })
    app.get('/stuck', (_req, reply) => {
      reply.hijack()
      reply.raw.writeHead(200)
      for (let i = 0; i < 256; i++) reply.raw.write('s'.repeat(1024)) // more than the client's window
      truncateResponse(reply.raw, 50)
    })
    app.get('/gone', (req, reply) => {
      reply.hijack()
      reply.raw.writeHead(200)
      reply.raw.write('first')
      req.raw.once('close', () => {
        truncateResponse(reply.raw)
        gone.push((req.raw as unknown as Http2ServerRequest).stream.rstCode)
      })
    })
    app.get('/ended', (_req, reply) => {
      reply.hijack()
      reply.raw.writeHead(200)
      reply.raw.end('done')
      truncateResponse(reply.raw)
    })
  })
  const session = await h2Session(t, h)

  const queued = await h2Request(session, '/queued')
  // The content too: a reset that came too early once let the client read freed memory in place of 32 of the bytes.
  t.same([queued.body.length, queued.body.replaceAll('q', '').length, queued.rstCode],
    [32 * 1024, 0, http2.constants.NGHTTP2_INTERNAL_ERROR], 'every queued byte, intact, then the reset')
  // Deterministic, where the corruption is not: the socket had every byte of the body before the reset was decided.
  t.equal(sentAtReset.length, 1)
  t.ok(sentAtReset[0] >= 32 * 1024, `reset after ${sentAtReset[0]} bytes reached the socket, not before all ${32 * 1024}`)

  // A client that reads nothing: the server cannot flush, and resets after the grace.
  const stuck = session.request({ ':path': '/stuck' })
  stuck.on('error', () => {})
  await new Promise(resolve => stuck.once('close', resolve))
  t.equal(stuck.rstCode, http2.constants.NGHTTP2_INTERNAL_ERROR)

  const res = await h2Request(session, '/gone', { cancelAfter: 1 })
  t.equal(res.rstCode, http2.constants.NGHTTP2_CANCEL)
  await waitFor(() => gone.length === 1, 'the server to see the reset')
  t.same(gone, [http2.constants.NGHTTP2_CANCEL], 'a stream the client reset is left as it is')

  const ended = await h2Request(session, '/ended')
  t.equal(ended.rstCode, http2.constants.NGHTTP2_INTERNAL_ERROR, 'a response still ending is reset, not written to again')
})

t.test('WebSockets stay on HTTP/1.1: they work on the TLS server through allowHTTP1', async t => {
  const cert = await selfSigned()
  const server = Fastify({ http2: true, https: { ...cert, allowHTTP1: true }, forceCloseConnections: true })
  const ws = server as unknown as FastifyInstance
  await ws.register(faultlineHttp)
  await ws.register(faultlineWebsocket)
  ws.get('/ws', { websocket: true }, socket => {
    socket.on('message', () => { throw new NotFoundError('No such room') })
  })
  const url = await ws.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => ws.close())
  const client = new WebSocket(url.replace('https', 'wss') + '/ws', { ca: cert.cert })
  client.on('open', () => client.send('join'))
  const [frame] = await once(client, 'message') as [Buffer]
  t.match(JSON.parse(String(frame)), { type: 'error', error: { status: 404, code: 'NOT_FOUND' } }, 'the error frame, over an HTTP/1.1 upgrade')
  client.close()
})

t.test('no UnsupportedWarning was emitted', async t => {
  t.same(warnings.map(w => `${w.name}: ${w.message}`), [])
})
