// fastify.close() with streamSafe responses in flight: they get closeTimeout
// to finish, then end with a retryable ServerShutdownError (ndjson: its error
// record; raw: truncation), reported at info; close() always completes.
import t from 'tap'
import http2 from 'node:http2'
import Fastify from 'fastify'
import { guardProcess } from './helpers/guard.js'
import { streamApp, readBody, waitFor } from './helpers/stream-app.js'
import { within } from './helpers/within.js'
import { faultlineHttp, faultlineStream } from '../index.js'

guardProcess(t)

/** Yields `chunk` every `ms` until aborted: a stream that would never end on its own. */
function endless (chunk: string, ms: number, state: { stopped: boolean }) {
  return async function * (signal: AbortSignal): AsyncGenerator<string> {
    try {
      while (!signal.aborted) {
        yield chunk
        await new Promise(resolve => setTimeout(resolve, ms))
      }
    } finally {
      state.stopped = true
    }
  }
}

t.test('raw: an endless stream is truncated after closeTimeout; close() completes', async t => {
  const state = { stopped: false }
  const s = await streamApp(t, app => {
    app.get('/endless', async (request, reply) => reply.streamSafe(endless('x'.repeat(100), 5, state)))
  }, { closeTimeout: 150 })
  const response = await fetch(s.url + '/endless')
  const reading = readBody(response)
  await waitFor(() => s.reports.length === 0 && state.stopped === false, 'the stream to run')
  const started = Date.now()
  await within(t, s.app.close(), 'close() to complete')
  t.ok(Date.now() - started >= 140, 'the stream had its closeTimeout first')
  const read = await reading
  t.ok(read.error, 'the client sees truncation, never a clean end')
  t.ok(read.text.length >= 100)
  t.equal(state.stopped, true, 'the source was stopped')
  t.match(s.reports, [{ fault: { code: 'SERVER_SHUTDOWN', status: 503, retryable: true }, context: { transport: 'stream', phase: 'mid-stream', reason: 'shutdown' } }])
  t.equal(s.reports.length, 1, 'reported once')
  t.match(s.faults(), [{ level: 30, fault: { code: 'SERVER_SHUTDOWN' }, reason: 'shutdown' }], 'at info: a planned shutdown')
  t.equal(s.faults().length, 1, 'logged once')
})

t.test('ndjson: the error record says SERVER_SHUTDOWN, retryable', async t => {
  const state = { stopped: false }
  const s = await streamApp(t, app => {
    app.get('/endless', async (request, reply) => reply.streamSafe(endless('tick', 5, state), { framing: 'ndjson' }))
  }, { closeTimeout: 50 })
  const response = await fetch(s.url + '/endless')
  const reading = readBody(response)
  await new Promise(resolve => setTimeout(resolve, 30))
  await within(t, s.app.close(), 'close() to complete')
  const read = await reading
  t.equal(read.error, undefined, 'a framed stream ends cleanly after its error record')
  const last = JSON.parse(read.text.trim().split('\n').at(-1)!)
  t.match(last, { type: 'error', error: { status: 503, code: 'SERVER_SHUTDOWN', title: 'Server Shutting Down' } })
  await waitFor(() => state.stopped, 'the source to stop')
})

t.test('a stream that finishes within closeTimeout is left to finish', async t => {
  const s = await streamApp(t, app => {
    app.get('/slow', async (request, reply) => reply.streamSafe(async function * () {
      for (let i = 0; i < 10; i++) {
        yield `${i}\n`
        await new Promise(resolve => setTimeout(resolve, 20))
      }
    }))
  }, { closeTimeout: 5000 })
  const response = await fetch(s.url + '/slow')
  const reading = readBody(response)
  await new Promise(resolve => setTimeout(resolve, 30))
  await within(t, s.app.close(), 'close() to complete')
  const read = await reading
  t.equal(read.error, undefined)
  t.equal(read.text, '0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n', 'the whole body')
  t.same(s.reports, [], 'no shutdown fault')
})

t.test('a stream still opening at shutdown gets a 503 problem', async t => {
  const s = await streamApp(t, app => {
    app.get('/opening', async (request, reply) => reply.streamSafe(async signal => {
      await new Promise(resolve => { signal.addEventListener('abort', resolve) })
      return [] as never
    }))
  }, { closeTimeout: 0 })
  const pending = fetch(s.url + '/opening')
  await waitFor(() => s.lines.some(l => l.msg === 'incoming request'), 'the request to arrive')
  await within(t, s.app.close(), 'close() to complete')
  const response = await pending
  t.equal(response.status, 503)
  t.match(await response.json(), { code: 'SERVER_SHUTDOWN', status: 503 })
  t.match(s.reports, [{ fault: { code: 'SERVER_SHUTDOWN' }, context: { phase: 'before-response', reason: 'shutdown' } }])
  t.equal(s.reports.length, 1, 'reported once')
})

t.test('a client that stopped reading cannot hold close() forever', async t => {
  const s = await streamApp(t, app => {
    app.get('/big', async (request, reply) => reply.streamSafe(async function * () {
      for (;;) yield Buffer.alloc(64 * 1024)
    }))
    app.get('/big-ndjson', async (request, reply) => reply.streamSafe(async function * () {
      for (;;) yield 'y'.repeat(64 * 1024)
    }, { framing: 'ndjson' }))
  }, { closeTimeout: 50 })
  // Read the headers, then never read the body: the socket's buffers fill up.
  const raw = await fetch(s.url + '/big')
  const nd = await fetch(s.url + '/big-ndjson')
  t.equal(raw.status, 200)
  t.equal(nd.status, 200)
  await new Promise(resolve => setTimeout(resolve, 50))
  await within(t, s.app.close(), 'close() to complete despite clients that do not read', 20_000)
  t.equal(s.reports.filter(r => r.fault.code === 'SERVER_SHUTDOWN').length, 2)
  await raw.body?.cancel().catch(() => {})
  await nd.body?.cancel().catch(() => {})
})

t.test('closeTimeout is validated at registration', async t => {
  for (const [closeTimeout, message] of [
    [-1, /faultline-stream: invalid option closeTimeout: must be an integer number of milliseconds from 0 to 2147483647, got -1/],
    [Infinity, /got Infinity/],
    [1.5, /got 1\.5/],
    ['5s', /got "5s"/],
    [2 ** 31, /got 2147483648/]
  ] as const) {
    const app = Fastify()
    app.register(faultlineHttp)
    app.register(faultlineStream, { closeTimeout: closeTimeout as number })
    await t.rejects(async () => { await app.ready() }, { code: 'FST_FAULTLINE_INVALID_OPTION', message })
  }
})

t.test('HTTP/2: ndjson streams end with the shutdown record and close() completes', async t => {
  // forceCloseConnections: on Node < 24 it is what closes idle HTTP/2 sessions at all (Fastify's closeHttp2Sessions).
  const app = Fastify({ http2: true, forceCloseConnections: true })
  await app.register(faultlineHttp)
  await app.register(faultlineStream, { closeTimeout: 30 })
  const state = { stopped: false }
  app.get('/endless', async (request, reply) => reply.streamSafe(endless('tick', 5, state), { framing: 'ndjson' }))
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  const client = http2.connect(url)
  t.teardown(() => client.close())
  const stream = client.request({ ':path': '/endless' })
  let text = ''
  stream.setEncoding('utf8')
  stream.on('data', chunk => { text += chunk })
  const ended = new Promise<number>(resolve => stream.on('close', () => resolve(stream.rstCode ?? -1)))
  await new Promise(resolve => stream.once('response', resolve))
  await within(t, app.close(), 'close() to complete over HTTP/2')
  t.equal(await ended, http2.constants.NGHTTP2_NO_ERROR, 'a clean end after the record')
  t.match(JSON.parse(text.trim().split('\n').at(-1)!), { type: 'error', error: { code: 'SERVER_SHUTDOWN' } })
  await waitFor(() => state.stopped, 'the source to stop')
})
