// The client half against a real server over loopback: global fetch
// (undici), and ws as the WebSocket implementation (Node 20 has none).
import t from 'tap'
import { WebSocket } from 'ws'
import {
  readBody, readNdjson, readEvents, connectSocket, faultFromResponse,
  StreamTruncatedError, ForbiddenError, BadRequestError, ServerShutdownError, ServiceUnavailableError, BadGatewayError,
  type Fault, type SseMessage, type WebSocketConstructor
} from '../client/index.js'
import { NotFoundError as RootNotFoundError, ServerShutdownError as RootShutdown } from '../index.js'
import { NotFoundError } from '../client/index.js'
import { OutOfStockError } from './helpers/shared-faults.js'
import { clientApp } from './helpers/client-app.js'
import { guardProcess } from './helpers/guard.js'
import { within } from './helpers/within.js'
import { collect, rejection } from './helpers/iterate.js'

guardProcess(t)
const { base, wsBase, hits } = await clientApp(t)
const WS = WebSocket as unknown as WebSocketConstructor
const FAST = { baseDelay: 1, maxDelay: 50 }

const text = (chunks: Uint8Array[]): string => Buffer.concat(chunks).toString()

t.test('the classes are the root export\'s own', async t => {
  t.equal(NotFoundError, RootNotFoundError)
  t.equal(ServerShutdownError, RootShutdown)
})

t.test('HTTP: a thrown defineFault class arrives as that class, with its details', async t => {
  const res = await fetch(`${base}/http/out-of-stock`)
  t.equal(res.headers.get('x-request-id') !== null, true, 'the problem response carries the request id header')
  const fault = await faultFromResponse(res)
  t.ok(fault instanceof OutOfStockError)
  t.match(fault, { code: 'OUT_OF_STOCK', status: 409, message: 'Only 2 left of BK-1', details: { sku: 'BK-1', left: 2 } })
  t.equal(fault!.problem!.requestId, res.headers.get('x-request-id'))
  // readBody of a URL throws the same, after one request (409 is not retryable).
  const thrown = await rejection(collect(readBody(`${base}/http/out-of-stock`)))
  t.ok(thrown instanceof OutOfStockError)
  t.equal(await faultFromResponse(await fetch(`${base}/raw/ok`)), undefined, 'ok responses are no fault')
})

t.test('HTTP: a retryable fault is retried until the route answers', async t => {
  const chunks = await collect(readBody(`${base}/flaky?key=a&fail=2`, { retry: FAST }))
  t.same(JSON.parse(text(chunks)), { ok: true, n: 3 })
  t.equal(hits.get('/flaky/a')!.length, 3)
  const fault = await rejection(collect(readBody(`${base}/flaky?key=b&fail=9`, { retry: { attempts: 2, baseDelay: 1 } })))
  t.ok(fault instanceof ServiceUnavailableError)
  t.equal(hits.get('/flaky/b')!.length, 3, 'the first try and two retries')
  await rejection(collect(readBody(`${base}/flaky?key=c&fail=9`, { retry: false })))
  t.equal(hits.get('/flaky/c')!.length, 1, 'retry: false tries once')
})

t.test('raw: a body cut mid-way throws StreamTruncatedError with the request id', async t => {
  t.equal(text(await collect(readBody(`${base}/raw/ok`))), 'abcdef')
  const res = await fetch(`${base}/raw/cut`)
  const requestId = res.headers.get('x-request-id')
  t.ok(requestId, 'the streamed response carries the request id header')
  const seen: Uint8Array[] = []
  const fault = await rejection((async () => { for await (const c of readBody(res)) seen.push(c) })())
  t.ok(fault instanceof StreamTruncatedError)
  t.match(fault, { code: 'STREAM_TRUNCATED', retryable: true, details: { requestId } })
  t.equal(text(seen), 'abc', 'the bytes before the cut arrived')
  // A URL source is not retried once bytes were given out: they cannot be taken back.
  const again = await rejection(collect(readBody(`${base}/raw/cut`, { retry: FAST })))
  t.ok(again instanceof StreamTruncatedError)
})

t.test('ndjson: data, a clean end, an error record, a missing end record', async t => {
  t.same(await collect(readNdjson(`${base}/ndjson/ok`)), [{ n: 1 }, { n: 2 }])
  const items: unknown[] = []
  const fault = await rejection((async () => { for await (const item of readNdjson(`${base}/ndjson/fail`)) items.push(item) })())
  t.same(items, [{ n: 1 }, { n: 2 }])
  t.ok(fault instanceof OutOfStockError, 'the error record throws the thrown class')
  t.match(fault, { message: 'Sold out while streaming', details: { sku: 'BK-2', left: 0 } })
  const cut = await rejection(collect(readNdjson(`${base}/ndjson/cut`)))
  t.ok(cut instanceof StreamTruncatedError)
})

t.test('SSE: a terminal fault is thrown with exactly one request made', async t => {
  const messages: SseMessage[] = []
  const fault = await rejection((async () => { for await (const m of readEvents(`${base}/sse/terminal`)) messages.push(m) })())
  t.ok(fault instanceof ForbiddenError)
  t.equal(fault.message, 'Access revoked')
  // @fastify/sse sends data as JSON; the reader gives the raw string, as EventSource does.
  t.same(messages, [{ event: 'tick', data: '"one"', id: '1' }, { event: 'tick', data: '"two"', id: '2' }])
  t.same(hits.get('/sse/terminal'), [undefined], 'one request, no reconnect')
})

t.test('SSE: a retryable fault reconnects with Last-Event-ID and resumes', async t => {
  const messages = await collect(readEvents(`${base}/sse/retryable`, { retry: FAST }))
  t.same(messages.map(m => `${m.id}=${JSON.parse(m.data)}`), ['1=one', '2=two', '3=#3'])
  t.same(hits.get('/sse/retryable'), [undefined, '2'], 'the reconnect carried the last event id')
})

t.test('WebSocket: a 4xx error frame reaches onFault while the socket stays open', async t => {
  const faults: Fault[] = []
  const messages: unknown[] = []
  let opened = 0
  const socket = connectSocket(`${wsBase}/ws/echo`, {
    WebSocket: WS,
    onOpen: () => { opened++ },
    onFault: f => { faults.push(f) },
    onMessage: data => {
      messages.push(data)
      if (data === 'echo:after') socket.close()
    }
  })
  socket.send('bad') // queued until open
  socket.send('after')
  t.equal(await within(t, socket.closed, 'closed'), undefined, 'a user close resolves undefined')
  t.equal(opened, 1)
  t.equal(faults.length, 1)
  t.ok(faults[0] instanceof BadRequestError)
  t.match(faults[0], { message: 'Not a command', details: { got: 'bad' } })
  t.same(messages, ['echo:after'], 'the socket stayed open after the error frame')
  t.throws(() => socket.send('late'), { code: 'CONNECTION_LOST' }, 'sending after the end is a clear error')
})

t.test('WebSocket: a 1001 close reconnects', async t => {
  const faults: Fault[] = []
  let opened = 0
  const socket = connectSocket(`${wsBase}/ws/shutdown-once`, {
    WebSocket: WS,
    retry: FAST,
    onOpen: ws => {
      opened++
      if (opened === 2) ws.send('back')
    },
    onFault: f => { faults.push(f) },
    onMessage: data => { if (data === 'echo:back') socket.close() }
  })
  t.equal(await within(t, socket.closed, 'closed'), undefined)
  t.equal(opened, 2, 'opened again after the shutdown close')
  t.equal(faults.length, 1)
  t.ok(faults[0] instanceof ServerShutdownError, 'onFault was told why')
  t.ok(faults[0] instanceof ServiceUnavailableError)
})

t.test('WebSocket: a 4403 close resolves closed with a ForbiddenError and never reconnects', async t => {
  const faults: Fault[] = []
  const socket = connectSocket(`${wsBase}/ws/forbidden`, { WebSocket: WS, retry: FAST, onFault: f => { faults.push(f) } })
  const fault = await within(t, socket.closed, 'closed')
  t.ok(fault instanceof ForbiddenError)
  t.equal(fault!.message, 'Not your room', 'the error frame\'s fault, with its message')
  t.equal(faults.length, 1, 'the error frame went to onFault')
  await new Promise(resolve => setTimeout(resolve, 100))
  t.same(hits.get('/ws/forbidden')!.length, 1, 'no reconnect')
})

t.test('WebSocket: retryable closes are retried until the policy gives up', async t => {
  // Nothing listens on this port: each attempt closes with 1006.
  const faults: Fault[] = []
  const socket = connectSocket('ws://127.0.0.1:1/', { WebSocket: WS, retry: { attempts: 2, baseDelay: 1 }, onFault: f => { faults.push(f) } })
  const fault = await within(t, socket.closed, 'closed')
  t.match(fault, { code: 'CONNECTION_LOST', retryable: true })
  t.equal(faults.length, 2, 'two retries, each told to onFault')
})

t.test('a cancelled signal stops waits and reads at once', async t => {
  // A wait between retries: a retryable fault with a minute-long backoff.
  const reason = new Error('user left')
  const waitCtl = new AbortController()
  const waiting = rejection(collect(readBody(`${base}/flaky?key=d&fail=9`, { signal: waitCtl.signal, retry: { baseDelay: 60_000, maxDelay: 60_000 } })))
  await new Promise(resolve => setTimeout(resolve, 50))
  waitCtl.abort(reason)
  t.equal(await within(t, waiting, 'the wait'), reason, 'the wait ended with the signal\'s reason')
  // A read of a body that never ends.
  const res = await fetch(`${base}/raw/ok`)
  const never = new Response(new ReadableStream({ start (c) { c.enqueue(new Uint8Array([1])) } }), { headers: res.headers })
  const readCtl = new AbortController()
  const chunks: Uint8Array[] = []
  const read = rejection((async () => {
    for await (const c of readBody(never, { signal: readCtl.signal })) {
      chunks.push(c)
      setTimeout(() => readCtl.abort(reason), 10)
    }
  })())
  t.equal(await within(t, read, 'the read'), reason)
  t.equal(chunks.length, 1)
  // A socket waiting to reconnect.
  const socketCtl = new AbortController()
  const socket = connectSocket('ws://127.0.0.1:1/', { WebSocket: WS, signal: socketCtl.signal, retry: { baseDelay: 60_000, maxDelay: 60_000 } })
  await new Promise(resolve => setTimeout(resolve, 100))
  socketCtl.abort()
  t.equal(await within(t, socket.closed, 'the socket'), undefined)
})

t.test('malformed wire data is a clear fault, never a SyntaxError', async t => {
  const lines = new Response('{"type":"data","data":1}\nnot json\n')
  const fault = await rejection(collect(readNdjson(lines)))
  t.ok(fault instanceof BadGatewayError)
  t.match(fault, { retryable: false, message: /ndjson line 2 is not JSON/ })
  const event = new Response('event: error\ndata: <html>\nretry: 5\n\n', { headers: { 'content-type': 'text/event-stream' } })
  const sse = await rejection(collect(readEvents(event)))
  t.ok(sse instanceof BadGatewayError)
  t.match(sse.message, /SSE error event's data is not JSON/)
})
