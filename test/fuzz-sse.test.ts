// Property-based tests over thrown values through faultline-sse, over a real
// loopback socket: before the first event the client gets a valid
// problem+json; after it, the stream ends with exactly one `error` event
// whose data parses as a problem, with no SSE field but event/id/data/retry.
import t from 'tap'
import fc from 'fast-check'
import { Agent, request } from 'undici'
import { guardProcess } from './helpers/guard.js'
import { buildSseApp } from './helpers/sse-app.js'
import { listen, parseEvents } from './helpers/sse-client.js'
import { RUNS, thrownOrFault } from './helpers/arbitraries.js'
import { errorEventProblem, problemResponseProblem } from './helpers/chaos-checks.js'
import { DEFAULT_TERMINAL_ID_PREFIX, Fault } from '../index.js'

guardProcess(t)

t.test('anything thrown after the first event ends the stream with one parseable error event', async t => {
  const { app } = await buildSseApp(t)
  let current: unknown
  app.get('/after', { sse: true }, async (_req, reply) => {
    await reply.sse.send({ data: 'first' })
    throw current
  })
  app.get('/iterable', { sse: true }, async (_req, reply) => {
    await reply.sse.send((async function * () {
      yield { data: 'first' }
      throw current
    })())
  })
  app.get('/before', { sse: true }, async () => { throw current })
  const base = await listen(app)
  const dispatcher = new Agent({ connections: 4, headersTimeout: 10_000, bodyTimeout: 10_000 })
  t.teardown(() => dispatcher.close())
  let failure: string | undefined
  await fc.assert(fc.asyncProperty(thrownOrFault, fc.constantFrom('/after', '/iterable', '/before'), async (value, path) => {
    current = value
    const res = await request(base + path, { dispatcher, headers: { accept: 'text/event-stream' } })
    const body = await res.body.text()
    if (path === '/before') {
      failure = problemResponseProblem(res.statusCode, res.headers['content-type'], body)
    } else {
      failure = res.statusCode === 200 ? errorEventProblem(body) : `status ${res.statusCode}`
      if (failure !== undefined) failure += ` in ${JSON.stringify(body.slice(0, 600))}`
    }
    return failure === undefined
  }), { numRuns: RUNS * 3, endOnFailure: true }).catch(err => { throw new Error(`${String(failure)}\n${String(err)}`) })
  t.equal(app.faultline.sse!.open, 0, 'no stream left open')
})

// Found by this suite: `terminalEventId` called `encodeURIComponent`, which
// throws URIError on a lone surrogate. Thrown by the handler, the error event
// was lost and the client saw a clean end (EventSource reconnected and replayed
// the failure); thrown by an iterable given to `reply.sse.send()`, the
// response never ended. defineFault now refuses such codes; a hand-written
// subclass can still set one, and the renderer copes.
t.test('a terminal fault whose code holds a lone surrogate still gets its error event', async t => {
  const { app } = await buildSseApp(t)
  class Lone extends Fault {
    static override code = 'LONE_\ud83d'
    static override status = 403
    static override title = 'Forbidden'
  }
  app.get('/handler', { sse: true }, async (_req, reply) => {
    await reply.sse.send({ data: 'first' })
    throw new Lone('revoked')
  })
  app.get('/iterable', { sse: true }, async (_req, reply) => {
    await reply.sse.send((async function * () {
      yield { data: 'first' }
      throw new Lone('revoked')
    })())
  })
  const base = await listen(app)
  for (const path of ['/handler', '/iterable']) {
    const res = await request(base + path, { headers: { accept: 'text/event-stream' }, headersTimeout: 5000, bodyTimeout: 5000 })
    const body = await res.body.text().catch((err: unknown) => `client: ${String(err)}`)
    t.equal(errorEventProblem(body), undefined, path)
  }
})

// Issue 21, item 5: text a route relays, and the `id` / `event` / `retry` of
// its messages, built from the pieces that forge SSE fields (every line
// break, NUL, field names, the terminal id). @fastify/sse split data on LF
// only and wrote the fields raw.
const sseForgery = fc.array(fc.oneof(
  fc.constantFrom('\r', '\n', '\r\n', '\n\r', '\0', '\u2028', ' ', ':', 'event: error', 'id: ', DEFAULT_TERMINAL_ID_PREFIX + 'FORBIDDEN', 'data: x', 'retry: 1'),
  fc.string({ unit: 'binary', maxLength: 8 })
), { maxLength: 12 }).map(pieces => pieces.join(''))
const BREAKER = /[\r\n\0]/

/** Every line of the raw body that is neither a data line, the route's own `id: last`, nor a blank line. */
function foreignLines (body: string): string[] {
  return body.split(/\r\n|\r|\n/).filter(line => !/^(data: .*|id: last|)$/s.test(line))
}

/** A failure message TAP can carry: no raw line separators or NUL in it. */
function printable (message: string): Error {
  return new Error(message.replace(/[\0\r\u2028\u2029]/g, ch => '\\u' + ch.charCodeAt(0).toString(16).padStart(4, '0')))
}

t.test('relayed text with any line breaks is data only: one event, its lines joined by LF, no field forged', async t => {
  // A serializer that passes strings through, as a relay of preformatted text would.
  const { app } = await buildSseApp(t, { sse: { serializer: (value: unknown) => typeof value === 'string' ? value : JSON.stringify(value) } })
  let current = ''
  app.get('/string', { sse: true }, async (_req, reply) => {
    await reply.sse.send(current)
    await reply.sse.send({ data: 'end', id: 'last' })
  })
  app.get('/buffer', { sse: true }, async (_req, reply) => {
    await reply.sse.send(Buffer.from(current))
    await reply.sse.send({ data: 'end', id: 'last' })
  })
  app.get('/object', { sse: true }, async (_req, reply) => {
    await reply.sse.send((async function * () { yield { data: current }; yield { data: 'end', id: 'last' } })())
  })
  const base = await listen(app)
  const dispatcher = new Agent({ connections: 4, headersTimeout: 10_000, bodyTimeout: 10_000 })
  t.teardown(() => dispatcher.close())
  let failure: string | undefined
  await fc.assert(fc.asyncProperty(sseForgery, fc.constantFrom('/string', '/buffer', '/object'), async (text, path) => {
    current = text
    const res = await request(base + path, { dispatcher, headers: { accept: 'text/event-stream' } })
    const body = await res.body.text()
    const sent = path === '/buffer' ? Buffer.from(text).toString('utf-8') : text
    const { events, retry } = parseEvents(body)
    const got = events.map(e => [e.event, e.id, e.data])
    const want = [[undefined, undefined, sent.replace(/\r\n?/g, '\n')], [undefined, 'last', 'end']]
    if (JSON.stringify(got) !== JSON.stringify(want)) failure = `events ${JSON.stringify(got)}`
    else if (retry.length !== 0) failure = `retry ${JSON.stringify(retry)}`
    else if (body.includes('\r')) failure = 'a CR in the body'
    else if (foreignLines(body).length !== 0) failure = `foreign lines ${JSON.stringify(foreignLines(body))}`
    else failure = undefined
    if (failure !== undefined) failure += ` for ${JSON.stringify(text)} on ${path}`
    return failure === undefined
  }), { numRuns: RUNS * 3, endOnFailure: true }).catch(err => { throw printable(`${String(failure)}\n${String(err)}`) })
  t.equal(app.faultline.sse.open, 0, 'no stream left open')
})

t.test('an id, event or retry with CR, LF or NUL (or a terminal id) is refused with a fault; any other is written as given', async t => {
  const { app, seen } = await buildSseApp(t)
  let current: { id?: string, event?: string, retry?: string } = {}
  app.get('/fields', { sse: true }, async (_req, reply) => {
    await reply.sse.send({ data: 'first' })
    // Hostile values: typed as @fastify/sse's message, but a route relays whatever it got.
    await reply.sse.send({ data: 'x', ...current } as never)
    await reply.sse.send({ data: 'end' })
  })
  const base = await listen(app)
  const dispatcher = new Agent({ connections: 4, headersTimeout: 10_000, bodyTimeout: 10_000 })
  t.teardown(() => dispatcher.close())
  const field = fc.option(sseForgery, { nil: undefined })
  let failure: string | undefined
  await fc.assert(fc.asyncProperty(field, field, fc.oneof(field, fc.nat().map(String)), async (id, event, retry) => {
    current = { id, event, retry }
    seen.length = 0
    const res = await request(base + '/fields', { dispatcher, headers: { accept: 'text/event-stream' } })
    const body = await res.body.text()
    const refused = [id, event, retry].some(v => v !== undefined && BREAKER.test(v)) || (id?.startsWith(DEFAULT_TERMINAL_ID_PREFIX) ?? false)
    if (refused) {
      failure = errorEventProblem(body)
      if (failure === undefined && !/"code":"INTERNAL"/.test(body)) failure = 'not an INTERNAL fault'
      if (failure === undefined && (seen.length !== 1 || !/refused/.test(seen[0]!.fault.message))) failure = `reports ${JSON.stringify(seen.map(s => s.fault.message))}`
    } else {
      // Exactly the lines @fastify/sse writes for the message, nothing else.
      const block = body.split('\n\n')[1]!.split('\n')
      const want = [
        ...(id ? ['id: ' + id] : []), ...(event ? ['event: ' + event] : []), 'data: "x"', ...(retry ? ['retry: ' + retry] : [])
      ]
      const { events } = parseEvents(body)
      if (JSON.stringify(block) !== JSON.stringify(want)) failure = `lines ${JSON.stringify(block)}`
      else if (events.length !== 3 || events[1]!.id !== (id || undefined) || events[1]!.event !== (event || undefined)) failure = `events ${JSON.stringify(events)}`
      else if (seen.length !== 0) failure = 'a fault reported'
      else failure = undefined
    }
    if (failure !== undefined) failure += ` for ${JSON.stringify(current)} in ${JSON.stringify(body.slice(0, 400))}`
    return failure === undefined
  }), { numRuns: RUNS, endOnFailure: true }).catch(err => { throw printable(`${String(failure)}\n${String(err)}`) })
  t.equal(app.faultline.sse.open, 0, 'no stream left open')
})
