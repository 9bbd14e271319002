import t from 'tap'
import { EventSource } from 'eventsource'
import { ForbiddenError, ServiceUnavailableError, UnauthorizedError } from '../index.js'
import { guardProcess } from './helpers/guard.js'
import { buildSseApp } from './helpers/sse-app.js'
import { listen, nextEvent, until } from './helpers/sse-client.js'

// Real `eventsource@4` clients over loopback: what a browser's EventSource does.

t.test('the client receives the error event and its JSON, and closes on a terminal fault', async t => {
  guardProcess(t)
  const { app } = await buildSseApp(t)
  let requests = 0
  app.addHook('onRequest', async () => { requests++ })
  app.get('/events', { sse: true }, async (request, reply) => {
    await reply.sse.send({ id: '1', data: { n: 1 } })
    throw new ForbiddenError('subscription cancelled')
  })
  const base = await listen(app)
  const es = new EventSource(base + '/events')
  t.teardown(() => es.close())
  const messages: string[] = []
  es.addEventListener('message', e => messages.push(e.data))
  const closed = new Promise<MessageEvent>(resolve => {
    es.addEventListener('error', (event: Event) => {
      // A server `error` event is a MessageEvent with data; a connection error is not.
      if (!(event instanceof MessageEvent)) return
      const problem = JSON.parse(event.data)
      if (event.lastEventId.startsWith('faultline-terminal:')) es.close()
      resolve(Object.assign(event, { problem }))
    })
  })
  const event = await closed as MessageEvent & { problem: { status: number, code: string, detail: string } }
  t.same(messages, ['{"n":1}'])
  t.match(event.problem, { status: 403, code: 'FORBIDDEN', detail: 'subscription cancelled' })
  t.equal(event.lastEventId, 'faultline-terminal:FORBIDDEN')
  t.equal(es.readyState, EventSource.CLOSED)
  t.equal(requests, 1)
})

t.test('a client that ignores the error event reconnects once, gets 204 and stops', async t => {
  guardProcess(t)
  const { app } = await buildSseApp(t)
  const seenIds: Array<string | undefined> = []
  const statuses: number[] = []
  app.addHook('onRequest', async request => { seenIds.push(request.headers['last-event-id'] as string | undefined) })
  app.addHook('onResponse', async (request, reply) => { statuses.push(reply.statusCode) })
  app.get('/events', { sse: true }, async (request, reply) => {
    // A short retry so the reconnect comes quickly.
    await reply.sse.send({ id: '7', data: 'hello', retry: 20 })
    throw new UnauthorizedError('session revoked')
  })
  const base = await listen(app)
  const es = new EventSource(base + '/events')
  t.teardown(() => es.close())
  const stopped = new Promise<{ code?: number }>(resolve => {
    es.addEventListener('error', (event: Event) => {
      if (es.readyState === EventSource.CLOSED) resolve(event as Event & { code?: number })
    })
  })
  const last = await stopped
  t.equal(last.code, 204, 'the browser was told to stop')
  await until(() => statuses.length === 2, 10_000, 'both responses')
  t.same(seenIds, [undefined, 'faultline-terminal:UNAUTHORIZED'])
  t.same(statuses, [200, 204])
  t.equal(es.readyState, EventSource.CLOSED, 'no further reconnects')
})

t.test('a retryable fault lets the client reconnect with its last ordinary id', async t => {
  guardProcess(t)
  const { app } = await buildSseApp(t)
  const lastIds: Array<string | undefined> = []
  app.get('/events', { sse: true }, async (request, reply) => {
    lastIds.push(request.headers['last-event-id'] as string | undefined)
    if (lastIds.length === 1) {
      await reply.sse.send({ id: '41', data: 'before' })
      throw new ServiceUnavailableError('restarting', { retryAfter: 0 })
    }
    await reply.sse.send({ id: '42', data: 'after' })
    reply.sse.keepAlive()
  })
  const base = await listen(app)
  const es = new EventSource(base + '/events')
  t.teardown(() => es.close())
  const errorEvent = await nextEvent<MessageEvent>(es, 'error')
  t.ok(errorEvent instanceof MessageEvent, 'the first error is the server event')
  t.match(JSON.parse(errorEvent.data), { status: 503, code: 'SERVICE_UNAVAILABLE' })
  t.equal(errorEvent.lastEventId, '', 'a retryable error event sets no id')
  const after = await new Promise<MessageEvent>(resolve => {
    es.addEventListener('message', e => { if (e.data === '"after"') resolve(e) })
  })
  t.equal(after.lastEventId, '42')
  t.same(lastIds, [undefined, '41'])
  es.close()
})
