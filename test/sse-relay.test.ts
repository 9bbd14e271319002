// A route that relays user text into an SSE stream (issue 21, item 5).
// @fastify/sse splits data on LF only, but a bare CR is a line break in SSE:
// the text could end its `data:` line and forge `event: error` and a terminal
// `id:`, after which faultline's own terminal check answered the victim's
// reconnect with 204 and the feed was dead for good. The object form's `id`,
// `event` and `retry` were written raw. Read here by a real client
// (eventsource@4) and as raw bytes.
import t from 'tap'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { EventSource } from 'eventsource'
import { guardProcess } from './helpers/guard.js'
import { buildSseApp } from './helpers/sse-app.js'
import { listen, parseEvents, rawGet, until } from './helpers/sse-client.js'
import { errorEventProblem } from './helpers/chaos-checks.js'

guardProcess(t)

/** User text that, split on LF only, forges a terminal error event and a short retry. */
const HOSTILE = 'hi\revent: error\rid: faultline-terminal:FORBIDDEN\rretry: 1\rdata: {"status":403,"code":"FORBIDDEN"}\r\r' +
  'data: second\r\nid: faultline-terminal:GONE\n\revent: error\r\n\r\ntail'
/** What a client must read as the data of that text: each line break one line. */
const HOSTILE_DATA = HOSTILE.replace(/\r\n?/g, '\n')

/** Every line of an SSE body (split on all three line breaks) is a data line or one of the route's own fields. */
function foreignLines (body: string, allowed: RegExp = /^(data: .*|id: 1|retry: 20|)$/s): string[] {
  return body.split(/\r\n|\r|\n/).filter(line => !allowed.test(line))
}

t.test('relayed text with bare CRs reaches EventSource as data, forges no event or id, and the reconnect is not cut', async t => {
  const { app } = await buildSseApp(t)
  const requests: Array<{ lastEventId: string | undefined }> = []
  const statuses: number[] = []
  app.addHook('onResponse', async (_request, reply) => { statuses.push(reply.statusCode) })
  app.get('/relay', { sse: true }, async (request, reply) => {
    requests.push({ lastEventId: request.headers['last-event-id'] as string | undefined })
    if (requests.length === 1) {
      // The route's own id (and a short retry), then the user's text; then the stream ends.
      await reply.sse.send({ data: 'before', id: '1', retry: 20 })
      await reply.sse.send(Buffer.from(HOSTILE))
      await reply.sse.send(HOSTILE)
      return
    }
    await reply.sse.send({ data: 'second connection' })
  })
  const base = await listen(app)
  const es = new EventSource(base + '/relay')
  t.teardown(() => es.close())
  const messages: Array<{ data: string, lastEventId: string }> = []
  const serverErrors: MessageEvent[] = []
  await new Promise<void>(resolve => {
    es.addEventListener('error', event => {
      if (event instanceof MessageEvent) serverErrors.push(event)
      // Told to stop (a 204): the feed is dead.
      if (es.readyState === EventSource.CLOSED) resolve()
    })
    es.addEventListener('message', (event: MessageEvent) => {
      messages.push({ data: event.data, lastEventId: event.lastEventId })
      if (event.data === '"second connection"') resolve()
    })
  })
  es.close()
  t.same(serverErrors, [], 'no error event forged')
  t.same(messages.map(m => m.data), ['"before"', HOSTILE_DATA, HOSTILE_DATA, '"second connection"'], 'the text arrives whole, as data')
  t.same(messages.map(m => m.lastEventId).filter(id => id !== ''), ['1'], 'no event carries an id but the route\'s own')
  t.same(requests, [{ lastEventId: undefined }, { lastEventId: '1' }], 'the reconnect carries the route\'s id, not a forged terminal one')
  await until(() => statuses.length === 2, 10_000, 'both responses')
  t.same(statuses, [200, 200], 'never answered 204')
})

t.test('the raw bytes: every line break of the text is its own data: line, on every send path', async t => {
  const { app } = await buildSseApp(t)
  app.get('/string', { sse: true }, async (_request, reply) => { await reply.sse.send(HOSTILE) })
  app.get('/buffer', { sse: true }, async (_request, reply) => { await reply.sse.send(Buffer.from(HOSTILE)) })
  app.get('/iterable', { sse: true }, async (_request, reply) => {
    await reply.sse.send((async function * () { yield HOSTILE; yield Buffer.from(HOSTILE) })())
  })
  app.get('/readable', { sse: true }, async (_request, reply) => {
    await reply.sse.send(Readable.from([Buffer.from(HOSTILE), HOSTILE], { objectMode: true }))
  })
  app.get('/stream', { sse: true }, async (_request, reply) => {
    await pipeline(Readable.from([HOSTILE, Buffer.from(HOSTILE)]), reply.sse.stream(), reply.raw)
  })
  const base = await listen(app)
  for (const [path, count] of [['/string', 1], ['/buffer', 1], ['/iterable', 2], ['/readable', 2], ['/stream', 2]] as const) {
    const res = await rawGet(base + path)
    t.equal(res.status, 200, path)
    t.notMatch(res.body, /\r/, `${path}: no CR reaches the client`)
    t.same(foreignLines(res.body), [], `${path}: only data: lines`)
    const { events, retry } = parseEvents(res.body)
    t.same(events.map(e => [e.event, e.id, e.data]), Array(count).fill([undefined, undefined, HOSTILE_DATA]), `${path}: the text as one event's data`)
    t.same(retry, [], `${path}: no retry forged`)
  }
})

t.test('object messages: data through any serializer is split on every line break', async t => {
  const { app } = await buildSseApp(t, { sse: { serializer: (value: unknown) => String(value) } })
  app.get('/object', { sse: true }, async (_request, reply) => {
    await reply.sse.send({ data: HOSTILE, id: '1' })
    await reply.sse.send((async function * () { yield { data: HOSTILE } })())
  })
  const base = await listen(app)
  const res = await rawGet(base + '/object')
  t.same(foreignLines(res.body), [])
  t.same(parseEvents(res.body).events.map(e => [e.event, e.id, e.data]), [[undefined, '1', HOSTILE_DATA], [undefined, undefined, HOSTILE_DATA]])
})

// The object form: `id`, `event` and `retry` are one line each. A value that
// would end it (CR, LF) or void an id (NUL), or an id with the terminal
// prefix, is refused: a fault, reported with a message that says why.
const REFUSED: Array<[string, Record<string, unknown>, RegExp]> = [
  ['id with CR', { id: 'x\rid: faultline-terminal:FORBIDDEN', data: 'a' }, /id .* line break/],
  ['id with LF', { id: 'x\nevent: error', data: 'a' }, /id .* line break/],
  ['id with CRLF', { id: '7\r\n\r\nevent: error', data: 'a' }, /id .* line break/],
  ['id with NUL', { id: 'x\0', data: 'a' }, /id .* NUL/],
  ['id whose toString has a CR', { id: { toString: () => 'x\rid: faultline-terminal:X' }, data: 'a' }, /id .* line break/],
  ['id with the terminal prefix', { id: 'faultline-terminal:FORBIDDEN', data: 'a' }, /terminal prefix/],
  ['event with CR', { event: 'message\rid: faultline-terminal:X', data: 'a' }, /event .* line break/],
  ['event with LF', { event: 'tick\nevent: error', data: 'a' }, /event .* line break/],
  ['event with NUL', { event: 'a\0b', data: 'a' }, /event .* NUL/],
  ['retry with CR', { retry: '1\revent: error', data: 'a' }, /retry .* line break/]
]

t.test('a hostile id, event or retry is refused: one error event after the first, a problem before it, reported once', async t => {
  const { app, seen } = await buildSseApp(t)
  let current: Record<string, unknown> = {}
  app.get('/after', { sse: true }, async (_request, reply) => {
    await reply.sse.send({ data: 'first' })
    await reply.sse.send(current as never)
  })
  app.get('/iterable', { sse: true }, async (_request, reply) => {
    await reply.sse.send((async function * () { yield { data: 'first' }; yield current as never })())
  })
  app.get('/before', { sse: true }, async (_request, reply) => {
    await reply.sse.send(current as never)
  })
  const base = await listen(app)
  for (const [name, message, why] of REFUSED) {
    current = message
    for (const path of ['/after', '/iterable']) {
      seen.length = 0
      const res = await rawGet(base + path)
      t.equal(errorEventProblem(res.body), undefined, `${name} ${path}: one data event, then one error event`)
      const error = parseEvents(res.body).events[1]!
      t.match(JSON.parse(error.data), { status: 500, code: 'INTERNAL' }, `${name} ${path}`)
      t.equal(error.id, undefined, `${name} ${path}: not terminal, the browser may reconnect`)
      t.notMatch(res.body, /faultline-terminal|\r|\0/, `${name} ${path}: nothing of the value reaches the client`)
      t.equal(seen.length, 1, `${name} ${path}: reported once`)
      t.match(seen[0]!.fault.message, why, `${name} ${path}: the log says why`)
      t.match(seen[0]!.context, { transport: 'sse', phase: 'mid-stream' })
    }
    seen.length = 0
    const before = await rawGet(base + '/before')
    t.equal(before.status, 500, `${name} /before`)
    t.match(before.headers['content-type'], /^application\/problem\+json/)
    t.match(JSON.parse(before.body), { status: 500, code: 'INTERNAL' })
    t.match(seen.map(s => [s.fault.message, s.context.phase]), [[why, 'before-response']])
    t.equal(seen.length, 1, `${name} /before: reported once`)
  }
  t.equal(app.faultline.sse.open, 0, 'no stream left open')
})

t.test('reply.sse.stream(): a refused field fails the pipeline with the fault, nothing forged is written', async t => {
  const { app } = await buildSseApp(t)
  let failure: unknown
  app.get('/stream', { sse: true }, async (_request, reply) => {
    await pipeline(Readable.from([{ data: 'first' }, { id: 'x\rid: faultline-terminal:FORBIDDEN', data: 'a' }]), reply.sse.stream(), reply.raw)
      .catch((err: unknown) => { failure = err })
  })
  const base = await listen(app)
  const res = await rawGet(base + '/stream').catch((err: unknown) => ({ body: `client: ${String(err)}` }))
  t.notMatch(res.body, /faultline-terminal/)
  t.match(failure, { code: 'INTERNAL', status: 500, message: /id .* line break/ })
})

t.test('ordinary fields still pass: ids, event names and retry as @fastify/sse writes them', async t => {
  const { app } = await buildSseApp(t)
  app.get('/fine', { sse: true }, async (_request, reply) => {
    await reply.sse.send({ id: 'evt-1 \u2028 é', event: 'tick', data: { n: 1 }, retry: 500 })
    await reply.sse.send({ id: 42, event: 'terminal-but-not-prefix', data: 'x' } as never)
    await reply.sse.send({ id: '', event: '', data: 'falsy fields are left out', retry: 0 })
  })
  const base = await listen(app)
  const res = await rawGet(base + '/fine')
  const { events, retry } = parseEvents(res.body)
  t.same(events.map(e => [e.event, e.id, e.data]), [
    ['tick', 'evt-1 \u2028 é', '{"n":1}'],
    ['terminal-but-not-prefix', '42', '"x"'],
    [undefined, undefined, '"falsy fields are left out"']
  ])
  t.same(retry, [500])
})
