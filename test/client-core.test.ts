// The client's pure parts and its readers on hand-made responses: every
// branch a hostile or broken server can reach.
import t from 'tap'
import {
  faultFromProblem, faultFromClose, faultFromResponse, parseRetryAfter, shouldRetry, retryDelay,
  readBody, readNdjson, readEvents, connectSocket, defineFault,
  NotFoundError, InternalError, BadRequestError, ServiceUnavailableError, ServerShutdownError, ConnectionLostError,
  PayloadTooLargeError, BadGatewayError, ForbiddenError, StreamTruncatedError, Fault,
  type WebSocketConstructor, type WebSocketLike
} from '../client/index.js'
import { faultForStatus } from '../lib/fault.js'
import { toProblem } from '../lib/problem.js'
import { resolveRetry, wait } from '../client/retry.js'
import { requestIdOf } from '../client/response.js'
import { collect, rejection } from './helpers/iterate.js'

/** A body that gives one chunk, then fails (an erroring stream drops what is queued: so, on the second pull). */
function cutAfterChunk (text: string): ReadableStream<Uint8Array> {
  let pulls = 0
  return new ReadableStream({
    pull (c) {
      if (pulls++ === 0) c.enqueue(new TextEncoder().encode(text))
      else c.error(new Error('cut'))
    }
  })
}

const sse = (body: string, status = 200): Response => new Response(body, { status, headers: { 'content-type': 'text/event-stream' } })

t.test('faultFromProblem: the registered class, else a generic fault, else the status\'s class', async t => {
  const nf = faultFromProblem({ type: 'about:blank', title: 'Not Found', status: 404, detail: 'No book 42', code: 'NOT_FOUND', requestId: 'r1', retryAfter: 3, extra: 1 })
  t.ok(nf instanceof NotFoundError)
  t.match(nf, { message: 'No book 42', retryAfter: 3, details: { extra: 1 }, problem: { requestId: 'r1' } })
  const teapot = faultFromProblem({ code: 'BREWING', status: 418, title: 'Busy Brewing', detail: 'Tea' }, { status: 418 })
  t.equal(teapot.constructor, Fault)
  t.match(teapot, { code: 'BREWING', status: 418, title: 'Busy Brewing', message: 'Tea', expose: true, retryable: false })
  t.equal(teapot.details, undefined, 'no extension members, no details')
  t.match(faultFromProblem({ status: 503, title: 'Down' }), { code: 'SERVICE_UNAVAILABLE', message: 'Down', retryable: true })
  t.match(faultFromProblem({ status: 507 }), { code: 'INSUFFICIENT_STORAGE', status: 507, expose: false })
  t.match(faultFromProblem({ code: 'NEW_THING' }), { code: 'NEW_THING', status: 500, title: 'Internal Server Error' }, 'an unknown code without a status is a 500')
  t.match(faultFromProblem({ status: 404 }, { status: 410 }), { code: 'GONE' }, 'the response status wins over the body\'s')
  t.match(faultFromProblem({ status: 404 }, { status: 302 }), { code: 'NOT_FOUND' }, 'a response status outside 400-599 is ignored')
  t.match(faultFromProblem({ retryAfter: 9 }, { status: 429, retryAfter: '2' }), { retryAfter: 2 }, 'the header wins over the body')
  t.ok(faultFromProblem({ code: 'NOT_FOUND', __proto__: { polluted: true } }) instanceof NotFoundError)
  const proto = faultFromProblem(JSON.parse('{"code":"X_PROTO","__proto__":{"polluted":true},"constructor":1,"ok":2}'))
  t.same(proto.details, { ok: 2 }, '__proto__ and constructor are never copied')
  t.equal(({} as any).polluted, undefined)
})

t.test('faultFromProblem never throws, whatever it is given', async t => {
  for (const junk of [undefined, null, 'text', 42, true, [], ['a'], { status: 'x' }, { status: 200 }, { status: 700, code: '' }, { code: 'x'.repeat(201) }, { detail: 5, title: 7 }]) {
    const f = faultFromProblem(junk)
    t.ok(f instanceof Fault, JSON.stringify(junk) ?? 'undefined')
    t.ok(f.status >= 400 && f.status <= 599)
  }
  const hostile = new Proxy({}, { get () { throw new Error('trap') }, ownKeys () { throw new Error('trap') } })
  t.match(faultFromProblem(hostile, { status: 502 }), { code: 'BAD_GATEWAY' })
  t.match(faultFromProblem(hostile), { code: 'INTERNAL' })
})

t.test('toProblem carries retryAfter in the body, and a details member cannot overwrite it', async t => {
  const fault = new ServiceUnavailableError('busy', { retryAfter: 7, expose: true, details: { retryAfter: 99, other: 1 } as Record<string, unknown> })
  t.match(toProblem(fault), { retryAfter: 7, other: 1 })
  t.notOk('retryAfter' in toProblem(new ServiceUnavailableError('busy')))
})

t.test('parseRetryAfter: delay-seconds and HTTP-dates, nothing else', async t => {
  const now = Date.parse('Wed, 21 Oct 2015 07:28:00 GMT')
  t.equal(parseRetryAfter('120', now), 120)
  t.equal(parseRetryAfter(' 5 ', now), 5)
  t.equal(parseRetryAfter(1.2, now), 2)
  t.equal(parseRetryAfter('Wed, 21 Oct 2015 07:28:30 GMT', now), 30)
  t.equal(parseRetryAfter('Wed, 21 Oct 2015 07:00:00 GMT', now), 0, 'a date in the past is now')
  for (const bad of ['-1', '1.5', 'soon', '1', 'Xyz, 99 Foo 2015 GMT', -1, Infinity, Number.NaN, null, {}, 2 ** 60]) {
    t.equal(parseRetryAfter(bad === '1' ? 'Wed' : bad, now), undefined, String(bad))
  }
  t.ok(parseRetryAfter(new Date(Date.now() + 10_000).toUTCString())! >= 9, 'relative to the real clock by default')
})

t.test('faultFromClose: the inverse of the close-code map', async t => {
  t.equal(faultFromClose(1000, ''), undefined)
  t.equal(faultFromClose(1005, ''), undefined)
  t.ok(faultFromClose(4403, '') instanceof ForbiddenError)
  t.match(faultFromClose(4418, ''), { status: 418, code: 'IM_A_TEAPOT' })
  t.ok(faultFromClose(1009, '') instanceof PayloadTooLargeError)
  t.ok(faultFromClose(1011, '') instanceof InternalError)
  t.ok(faultFromClose(1013, '') instanceof ServiceUnavailableError)
  t.ok(faultFromClose(1014, '') instanceof BadGatewayError)
  t.ok(faultFromClose(1001, '') instanceof ServerShutdownError)
  t.ok(faultFromClose(1006, '') instanceof ConnectionLostError)
  t.ok(faultFromClose(1002, '') instanceof BadRequestError)
  t.ok(faultFromClose(3999, 'whatever') instanceof InternalError)
  const Custom = defineFault({ code: 'ROOM_FULL', status: 409, closeCode: 4100 })
  t.ok(faultFromClose(4100, 'ROOM_FULL') instanceof Custom, 'a reason naming a known code wins')
  t.ok(faultFromClose(1011, 'NOT_FOUND') instanceof NotFoundError)
  t.match(faultFromClose(4404, 'gone away'), { code: 'NOT_FOUND', message: 'WebSocket closed with 4404 gone away' })
  for (const junk of [undefined, null, 'x', 1000.5, {}]) t.ok(faultFromClose(junk, 42) instanceof ConnectionLostError, String(junk))
})

t.test('faultForStatus: the built-in, or a plain Fault carrying the status', async t => {
  t.ok(faultForStatus(404, 'x') instanceof NotFoundError)
  t.match(faultForStatus(418, ''), { status: 418, code: 'IM_A_TEAPOT', message: "I'm a Teapot", expose: true, exposeDetails: true, retryable: false })
  t.match(faultForStatus(404, 'x', { code: 'MINE', title: 'Mine' }), { status: 404, code: 'MINE', title: 'Mine', message: 'x' })
  t.match(faultForStatus(599, '', { expose: true, exposeDetails: false, retryable: true }), { expose: true, exposeDetails: false, retryable: true })
})

t.test('the retry policy', async t => {
  const retryable = new ServiceUnavailableError()
  t.ok(shouldRetry(retryable, 0))
  t.ok(shouldRetry(retryable, 4))
  t.notOk(shouldRetry(retryable, 5), 'five retries by default')
  t.notOk(shouldRetry(new NotFoundError(), 0), 'only retryable faults')
  t.notOk(shouldRetry(new Error('x') as Fault, 0), 'only faults')
  t.notOk(shouldRetry(retryable, 0, false), 'retry: false')
  t.ok(shouldRetry(retryable, 0, true))
  t.notOk(shouldRetry(retryable, 1, { attempts: 1 }))
  t.ok(shouldRetry(new ServiceUnavailableError('x', { retryAfter: 30 }), 0))
  t.notOk(shouldRetry(new ServiceUnavailableError('x', { retryAfter: 31 }), 0), 'a retryAfter beyond maxDelay is not waited for')
  for (let attempt = 0; attempt < 12; attempt++) {
    const d = retryDelay(retryable, attempt)
    t.ok(d >= 0 && d <= Math.min(30_000, 250 * 2 ** attempt), `attempt ${attempt}: ${d} ms within the window`)
  }
  t.equal(retryDelay(new ServiceUnavailableError('x', { retryAfter: 2 }), 0), 2000, 'never sooner than retryAfter')
  t.equal(retryDelay(retryable, 3, { baseDelay: 0 }), 0)
  t.ok(retryDelay(retryable, 0, false) <= 250, 'the default window even when retries are off')
  const seen = new Set(Array.from({ length: 50 }, () => retryDelay(retryable, 6)))
  t.ok(seen.size > 10, 'full jitter: delays spread over the window')
  for (const [bad, option] of [['x', 'retry'], [{ attempts: -1 }, 'retry.attempts'], [{ attempts: 1.5 }, 'retry.attempts'], [{ baseDelay: -1 }, 'retry.baseDelay'], [{ maxDelay: Infinity }, 'retry.maxDelay'], [null, 'retry']] as const) {
    t.throws(() => resolveRetry(bad as any), { code: 'FST_FAULTLINE_INVALID_OPTION', message: new RegExp(option.replace('.', '\\.')) })
  }
})

t.test('wait: resolves after the delay, rejects at once on abort', async t => {
  await wait(1)
  const aborted = AbortSignal.abort(new Error('already'))
  t.match(await rejection(wait(10, aborted)), { message: 'already' })
  const c = new AbortController()
  const p = wait(60_000, c.signal)
  c.abort(new Error('now'))
  t.match(await rejection(p), { message: 'now' })
})

t.test('faultFromResponse: any body still gives a fault, never a throw', async t => {
  t.equal(await faultFromResponse(new Response('ok')), undefined)
  const html = await faultFromResponse(new Response('<html>Bad gateway</html>', { status: 502, headers: { 'retry-after': 'Wed, 21 Oct 2015 07:28:00 GMT' } }))
  t.match(html, { code: 'BAD_GATEWAY', message: 'Bad Gateway', retryAfter: 0 })
  t.match(await faultFromResponse(new Response(null, { status: 404 })), { code: 'NOT_FOUND' })
  t.match(await faultFromResponse(new Response('{"error":"nope"}', { status: 400 })), { code: 'BAD_REQUEST', details: { error: 'nope' } })
  t.match(await faultFromResponse(new Response('', { status: 503, headers: { 'retry-after': '4' } })), { code: 'SERVICE_UNAVAILABLE', retryAfter: 4 })
  const huge = new Response(new ReadableStream({ pull (c) { c.enqueue(new TextEncoder().encode('x'.repeat(65536))) } }), { status: 500 })
  t.match(await faultFromResponse(huge), { code: 'INTERNAL' }, 'an endless error page is not read to its end')
  const broken = new Response(cutAfterChunk('{"code":'), { status: 409 })
  t.match(await faultFromResponse(broken), { code: 'CONFLICT' }, 'a body cut short: the status decides')
  const cutEarly = new Response(new ReadableStream({ start (c) { c.error(new Error('cut')) } }), { status: 410 })
  t.match(await faultFromResponse(cutEarly), { code: 'GONE' })
  t.match(await faultFromResponse(null as any), { code: 'INTERNAL' })
  t.match(await faultFromResponse({ ok: false, status: 404, headers: { get () { throw new Error('x') } } } as any), { code: 'INTERNAL' })
})

// A body whose reads fail at a chosen point, without a ReadableStream's own
// scheduling deciding whether a chunk was queued before the error.
function failingBody (chunks: string[]): { ok: false, status: number, headers: Headers, body: { getReader: () => unknown } } {
  const cancelled: unknown[] = []
  const reader = {
    async read () {
      const next = chunks.shift()
      if (next === undefined) throw new Error('connection cut')
      return { done: false, value: new TextEncoder().encode(next) }
    },
    async cancel (reason: unknown) { cancelled.push(reason); throw new Error('already errored') }
  }
  return { ok: false, status: 409, headers: new Headers(), body: { getReader: () => reader } }
}

t.test('faultFromResponse: a body read that fails keeps what arrived, and never throws', async t => {
  t.match(await faultFromResponse(failingBody([]) as any), { code: 'CONFLICT', message: 'Conflict' }, 'nothing arrived: the status decides')
  t.match(await faultFromResponse(failingBody(['{"code":']) as any), { code: 'CONFLICT', message: 'Conflict' }, 'half a problem: the status decides')
  const whole = JSON.stringify({ type: 'about:blank', title: 'Conflict', status: 409, code: 'CONFLICT', detail: 'Version 3 is stale' })
  t.match(await faultFromResponse(failingBody([whole]) as any), { code: 'CONFLICT', message: 'Version 3 is stale' }, 'the whole problem arrived before the cut: it is used')
})

t.test('requestIdOf: a header name the platform refuses gives no id, never a throw', async t => {
  const response = new Response('x', { headers: { 'x-request-id': 'r-1' } })
  t.equal(requestIdOf(response, 'x-request-id'), 'r-1')
  t.equal(requestIdOf(response, 'bad header name'), undefined)
  t.equal(requestIdOf(undefined, 'x-request-id'), undefined)
  t.equal(requestIdOf(response, undefined), undefined)
})

t.test('readers: options are checked at the call', async t => {
  t.throws(() => readBody(new Response('x'), null as any), { code: 'FST_FAULTLINE_INVALID_OPTION' })
  t.throws(() => readBody(new Response('x'), { fetch: 1 as any }), { message: /fetch/ })
  t.throws(() => readBody(new Response('x'), { requestIdHeader: '' }), { message: /requestIdHeader/ })
  t.throws(() => readBody(42 as any), { message: /source/ })
  t.throws(() => readBody(null as any), { message: /source/ })
  t.throws(() => readEvents('http://x/', { errorEvent: '' }), { message: /errorEvent/ })
  t.throws(() => readEvents('http://x/', { terminalIdPrefix: 7 as any }), { message: /terminalIdPrefix/ })
  t.throws(() => readNdjson('http://x/', { retry: { attempts: -1 } }), { message: /retry\.attempts/ })
  const noFetch = await rejection(collect(readBody('http://127.0.0.1:1/', { fetch: undefined, retry: false, init: {} })).then(() => {}, err => { throw err }))
  t.ok(noFetch instanceof ConnectionLostError, 'nothing listening: connection lost')
  const saved = globalThis.fetch
  // @ts-expect-error: a runtime without fetch
  delete globalThis.fetch
  try {
    t.match(await rejection(collect(readBody('http://x/'))), { message: /no global fetch/ })
  } finally {
    globalThis.fetch = saved
  }
})

t.test('readers: a custom fetch, headers kept, init.signal honoured, request id header off', async t => {
  const seen: Headers[] = []
  const fetch = async (_url: string | URL, init?: RequestInit): Promise<Response> => {
    seen.push(new Headers(init?.headers))
    return new Response('abc', { headers: { 'x-request-id': 'r-1' } })
  }
  t.same(await collect(readBody('http://x/', { fetch, init: { headers: { 'x-mine': '1' } } })), [new TextEncoder().encode('abc')])
  t.equal(seen[0]!.get('x-mine'), '1')
  await collect(readEvents('http://x/', { fetch: async (u, init) => { seen.push(new Headers(init?.headers)); return sse('') }, init: { headers: { accept: 'text/plain' } } }))
  t.equal(seen[1]!.get('accept'), 'text/plain', 'the caller\'s accept is kept')
  const c = new AbortController()
  c.abort(new Error('stop'))
  t.match(await rejection(collect(readBody('http://x/', { fetch, init: { signal: c.signal } }))), { message: 'stop' })
  const failing = async (): Promise<Response> => { throw new Error('down') }
  const c2 = new AbortController()
  const stopFetch = async (): Promise<Response> => { c2.abort(new Error('mid-fetch')); throw new Error('aborted') }
  t.match(await rejection(collect(readBody('http://x/', { fetch: stopFetch, signal: c2.signal }))), { message: 'mid-fetch' })
  t.match(await rejection(collect(readBody('http://x/', { fetch: failing, retry: false }))), { code: 'CONNECTION_LOST', message: 'No response: down' })
  t.match(await rejection(collect(readBody('http://x/', { fetch: async () => { throw 'str' }, retry: false }))), { message: 'No response' }) // eslint-disable-line no-throw-literal
  const cut = new Response(cutAfterChunk('a'), { headers: { 'x-request-id': 'r-2' } })
  const err = await rejection(collect(readBody(cut, { requestIdHeader: false })))
  t.ok(err instanceof StreamTruncatedError)
  t.equal(err.details, undefined, 'no request id header asked for')
  t.same(await collect(readBody(new Response(null))), [], 'a body-less response is empty')
})

t.test('readBody: a bug in the reader is not retried or dressed up', async t => {
  const weird = { ok: true, status: 200, headers: new Headers(), body: { getReader () { return { read: async () => ({ done: false, value: new Uint8Array([1]) }), cancel: async () => { throw new Error('cancel') } } } } }
  const it = readBody(weird as any)
  t.same((await it.next()).value, new Uint8Array([1]))
  await it.return()
  t.pass('leaving early cancels the body, and a failing cancel is ignored')
})

t.test('readNdjson: blank lines, records that are not records, an endless line', async t => {
  t.same(await collect(readNdjson(new Response('\n{"type":"data","data":1}\n\n{"type":"end"}\n{"type":"data","data":2}\n'))), [1], 'nothing after the end record')
  t.match(await rejection(collect(readNdjson(new Response('{"type":"nope"}\n')))), { code: 'BAD_GATEWAY', message: /line 1 is not a faultline record/ })
  t.match(await rejection(collect(readNdjson(new Response('null\n')))), { message: /not a faultline record/ })
  const long = '{"type":"data","data":"' + 'x'.repeat(100) + '"}\n'
  t.match(await rejection(collect(readNdjson(new Response('x'.repeat(17 * 1024 * 1024))))), { message: /longer than/ })
  t.same(await collect(readNdjson(new Response(long + '{"type":"end"}\n'))), ['x'.repeat(100)])
  t.match(await rejection(collect(readNdjson(new Response('{"type":"error","error":"junk"}\n')))), { code: 'INTERNAL' })
  t.match(await rejection(collect(readNdjson(new Response('{"type":"data","data":1}')))), { code: 'STREAM_TRUNCATED' }, 'a last line without its newline')
})

t.test('readEvents: 204, wrong content type, non-fatal error events, a cut after an error event', async t => {
  t.same(await collect(readEvents(new Response(null, { status: 204 }))), [])
  t.match(await rejection(collect(readEvents(new Response('data: x\n\n', { headers: { 'content-type': 'text/html' } })))), { code: 'BAD_GATEWAY', retryable: false, message: /text\/html/ })
  t.match(await rejection(collect(readEvents(new Response(new Uint8Array(0), { headers: {} })))), { message: /no content type/ })
  const problem = JSON.stringify({ status: 409, code: 'CONFLICT', detail: 'soft' })
  const nonFatal = await collect(readEvents(sse(`event: error\ndata: ${problem}\n\ndata: after\nid: 7\n\n: comment\nbogus: field\nretry: x\n\n`)))
  t.same(nonFatal, [{ event: 'error', data: problem, id: '' }, { event: 'message', data: 'after', id: '7' }], 'an error event the stream goes on after is a message')
  const last = await rejection(collect(readEvents(sse(`event: error\ndata: ${JSON.stringify({ status: 500, code: 'INTERNAL' })}\n\n`))))
  t.ok(last instanceof InternalError, 'an error event that ends the stream throws')
  const cutAfter = new Response(cutAfterChunk(`event: error\ndata: ${JSON.stringify({ status: 500, code: 'INTERNAL' })}\n\n`), { headers: { 'content-type': 'text/event-stream' } })
  t.ok(await rejection(collect(readEvents(cutAfter))) instanceof InternalError, 'cut right after an error event: that event was the last word')
  const cutBefore = new Response(cutAfterChunk('data: 1\n\n'), { headers: { 'content-type': 'text/event-stream' } })
  t.ok(await rejection(collect(readEvents(cutBefore))) instanceof StreamTruncatedError)
  t.match(await rejection(collect(readEvents(sse('data: ' + 'x'.repeat(17 * 1024 * 1024))))), { message: /larger than/ })
  t.match(await rejection(collect(readEvents(sse(`event: oops\nid: faultline-terminal:FORBIDDEN\ndata: ${JSON.stringify({ code: 'FORBIDDEN' })}\n\n`), { errorEvent: 'oops' }))), { code: 'FORBIDDEN' })
})

/** A scripted WebSocket: each instance plays the next script. */
function fakeSockets (scripts: Array<(ws: FakeSocket) => void>): { Impl: WebSocketConstructor, made: FakeSocket[] } {
  const made: FakeSocket[] = []
  class FakeSocket implements WebSocketLike {
    readyState = 0
    sent: unknown[] = []
    listeners = new Map<string, Array<(e: any) => void>>()
    constructor () {
      made.push(this)
      const script = scripts[made.length - 1]
      queueMicrotask(() => script?.(this))
    }

    addEventListener (type: string, l: (e: any) => void): void { this.listeners.set(type, [...(this.listeners.get(type) ?? []), l]) }
    emit (type: string, e: any = {}): void { for (const l of this.listeners.get(type) ?? []) l(e) }
    open (): void { this.readyState = 1; this.emit('open') }
    send (d: unknown): void { this.sent.push(d) }
    close (code = 1005, reason = ''): void { this.readyState = 3; queueMicrotask(() => this.emit('close', { code, reason })) }
  }
  return { Impl: FakeSocket as unknown as WebSocketConstructor, made: made as any }
}
type FakeSocket = WebSocketLike & { open: () => void, emit: (type: string, e?: any) => void, sent: unknown[], readyState: number }

t.test('connectSocket: options, binary and malformed frames, closes in every state', async t => {
  t.throws(() => connectSocket('ws://x/', null as any), { message: /options/ })
  t.throws(() => connectSocket('ws://x/', { onFault: 1 as any, WebSocket: class {} as any }), { message: /onFault/ })
  const saved = (globalThis as any).WebSocket
  delete (globalThis as any).WebSocket
  try {
    t.throws(() => connectSocket('ws://x/'), { message: /no global WebSocket/ })
  } finally {
    if (saved !== undefined) (globalThis as any).WebSocket = saved
  }
  const pre = connectSocket('ws://x/', { WebSocket: fakeSockets([]).Impl, signal: AbortSignal.abort() })
  t.equal(await pre.closed, undefined, 'an aborted signal: never connects')

  const faults: Fault[] = []
  const messages: unknown[] = []
  const { Impl, made } = fakeSockets([ws => {
    ws.open()
    ws.emit('message', { data: new Uint8Array([1]) })
    ws.emit('message', { data: '{"type":"error" oops' })
    ws.emit('message', { data: 'plain' })
    ws.emit('error')
    ws.emit('close', { code: 1000, reason: '' })
  }])
  const s = connectSocket('ws://x/', { WebSocket: Impl, onFault: f => faults.push(f), onMessage: d => messages.push(d) })
  t.equal(await s.closed, undefined, 'a 1000 close from the server: normal')
  t.same(messages, [new Uint8Array([1]), 'plain'])
  t.match(faults, [{ code: 'BAD_GATEWAY', message: /not JSON/ }])
  t.equal(faults.length, 1, 'only the malformed frame is a fault')
  s.close()
  t.equal(made.length, 1)

  // close() while connecting; close() while waiting to reconnect.
  const connecting = fakeSockets([() => {}])
  const c1 = connectSocket('ws://x/', { WebSocket: connecting.Impl })
  c1.send('queued')
  c1.close(4000, 'bye')
  t.equal(await c1.closed, undefined)
  const dropping = fakeSockets([ws => { ws.open(); ws.emit('close', { code: 1006, reason: '' }) }])
  const c2 = connectSocket('ws://x/', { WebSocket: dropping.Impl, retry: { baseDelay: 60_000, maxDelay: 60_000 } })
  await new Promise(resolve => setTimeout(resolve, 10))
  c2.close()
  c2.close()
  t.equal(await c2.closed, undefined, 'a close during the wait resolves undefined at once')

  // A stale socket's close is ignored; a queued message goes out on open.
  const stale = fakeSockets([ws => { ws.open(); ws.emit('close', { code: 1013, reason: '' }); ws.emit('close', { code: 1013, reason: '' }) }, ws => { ws.open() }])
  const opened: number[] = []
  const c3 = connectSocket('ws://x/', { WebSocket: stale.Impl, retry: { baseDelay: 0 }, onOpen: () => { opened.push(opened.length) } })
  await new Promise(resolve => setTimeout(resolve, 20))
  c3.send('hi')
  t.same(stale.made[1]!.sent, ['hi'])
  t.same(opened, [0, 1])
  stale.made[0]!.emit('open')
  t.same(opened, [0, 1], 'a stale socket\'s open is ignored')
  c3.close()
  t.equal(await c3.closed, undefined)
})

t.test('readers retry a URL before the first item, and quote long junk briefly', async t => {
  let calls = 0
  const flaky = (ok: () => Response) => async (): Promise<Response> => ++calls % 2 === 1 ? new Response(null, { status: 503 }) : ok()
  t.same(await collect(readNdjson('http://x/', { fetch: flaky(() => new Response('{"type":"data","data":1}\n{"type":"end"}\n')), retry: { baseDelay: 0 } })), [1])
  t.same(await collect(readEvents('http://x/', { fetch: flaky(() => sse('data: 1\n\n')), retry: { baseDelay: 0 } })), [{ event: 'message', data: '1', id: '' }])
  t.equal(calls, 4)
  const long = 'y'.repeat(200)
  t.match(await rejection(collect(readNdjson(new Response(long + '\n')))), { message: /"y{80}…"/ })
  t.match(await rejection(collect(readEvents(sse(`event: error\ndata: ${long}\n\n`)))), { message: /"y{80}…"/ })
  const c = new AbortController()
  const cut = new Response(cutAfterChunk('a'), { headers: { get x () { return 1 } } as any })
  const err = await rejection(collect(readBody(cut, { signal: c.signal })))
  t.ok(err instanceof StreamTruncatedError, 'a cut body with a signal that did not abort')
  const odd = { ok: true, status: 200, headers: { get () { throw new Error('x') } }, body: cutAfterChunk('a') }
  t.equal((await rejection(collect(readBody(odd as any)))).details, undefined, 'headers that cannot be read: no request id')
})
