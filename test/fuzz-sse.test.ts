// Property-based tests over thrown values through faultline-sse, over a real
// loopback socket: before the first event the client gets a valid
// problem+json; after it, the stream ends with exactly one `error` event
// whose data parses as a problem, with no SSE field but event/id/data/retry.
import t from 'tap'
import fc from 'fast-check'
import { Agent, request } from 'undici'
import { guardProcess } from './helpers/guard.js'
import { buildSseApp } from './helpers/sse-app.js'
import { listen } from './helpers/sse-client.js'
import { RUNS, thrownOrFault } from './helpers/arbitraries.js'
import { errorEventProblem, problemResponseProblem } from './helpers/chaos-checks.js'
import { Fault } from '../index.js'

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
