// A failure before an SSE stream's first event takes Fastify's one error
// path (reply.send(fault)): onError hooks run, so reply.background() tasks of
// the failed route are skipped as on any other route. @fastify/sse's own 406
// for `sse: 'only'` routes is rendered and reported like any other fault.
import t from 'tap'
import { faultlineBackground, NotFoundError, UnauthorizedError } from '../index.js'
import { guardProcess } from './helpers/guard.js'
import { buildSseApp } from './helpers/sse-app.js'
import { listen, rawGet } from './helpers/sse-client.js'

t.test('a fault before the first event runs onError hooks and skips the route\'s background tasks', async t => {
  guardProcess(t)
  const { app, seen } = await buildSseApp(t)
  await app.register(faultlineBackground)
  const onError: string[] = []
  const ran: string[] = []
  app.addHook('onError', async (request, reply, error) => { onError.push((error as { code?: string }).code ?? 'none') })
  app.get('/thrown', { sse: true }, async (request, reply) => {
    reply.background(() => { ran.push('thrown') })
    throw new UnauthorizedError('token expired')
  })
  app.get('/fault-close', { sse: true }, async (request, reply) => {
    reply.background(() => { ran.push('fault-close') })
    reply.sse.fault(new NotFoundError('no such feed'), { close: true })
    return reply
  })
  app.get('/bad-source', { sse: true }, async (request, reply) => {
    reply.background(() => { ran.push('bad-source') })
    await reply.sse.send({ data: 10n })
  })
  app.get('/plain', async (request, reply) => {
    reply.background(() => { ran.push('plain') })
    throw new UnauthorizedError('token expired')
  })
  const base = await listen(app)
  for (const [path, status, code] of [['/thrown', 401, 'UNAUTHORIZED'], ['/fault-close', 404, 'NOT_FOUND'], ['/bad-source', 500, 'INTERNAL'], ['/plain', 401, 'UNAUTHORIZED']] as const) {
    const res = await rawGet(base + path)
    t.equal(res.status, status, path)
    t.match(res.headers['content-type'], /^application\/problem\+json/, path)
    t.match(JSON.parse(res.body), { status, code }, path)
  }
  await app.faultline.background.idle()
  t.same(onError, ['UNAUTHORIZED', 'NOT_FOUND', 'INTERNAL', 'UNAUTHORIZED'], 'onError hooks ran for every failed route')
  t.same(ran, [], 'no background task of a failed route ran')
  t.same(seen.map(s => [s.fault.code, s.context.transport, s.context.phase]), [
    ['UNAUTHORIZED', 'sse', 'before-response'],
    ['NOT_FOUND', 'sse', 'before-response'],
    ['INTERNAL', 'sse', 'before-response'],
    ['UNAUTHORIZED', 'http', 'before-response']
  ], 'each reported once, as an SSE fault')
})

t.test("@fastify/sse's 406 for an 'only' route is a reported problem+json response", async t => {
  guardProcess(t)
  const { app, seen, logs } = await buildSseApp(t)
  const onError: string[] = []
  app.addHook('onError', async (request, reply, error) => { onError.push((error as { code?: string }).code ?? 'none') })
  let calls = 0
  app.get('/only', { sse: 'only' }, async (request, reply) => {
    calls++
    await reply.sse.send({ data: 'x' })
  })
  app.get('/only-object', { sse: { kind: 'only' } }, async (request, reply) => {
    calls++
    await reply.sse.send({ data: 'x' })
  })
  // A 406 the app sends itself is its own answer, not @fastify/sse's refusal.
  app.get('/own-406', { sse: 'only', preHandler: async (request, reply) => reply.code(406).send({ mine: true }) }, async (request, reply) => {
    calls++
    await reply.sse.send({ data: 'x' })
  })
  // An accepted request whose handler answers without an event: an ordinary response, untouched.
  app.get('/only-plain', { sse: 'only' }, async () => 'plain')
  for (const url of ['/only', '/only-object']) {
    const res = await app.inject({ url, headers: { accept: 'application/json' } })
    t.equal(res.statusCode, 406, url)
    t.match(res.headers['content-type'], /^application\/problem\+json/, url)
    t.match(res.json(), { type: 'about:blank', status: 406, code: 'NOT_ACCEPTABLE', title: 'Not Acceptable', detail: /text\/event-stream/, instance: url }, url)
  }
  t.equal(calls, 0, 'the handler never ran')
  t.same(seen.map(s => [s.fault.code, s.context.transport, s.context.phase]), [
    ['NOT_ACCEPTABLE', 'sse', 'before-response'],
    ['NOT_ACCEPTABLE', 'sse', 'before-response']
  ])
  t.same(onError, ['NOT_ACCEPTABLE', 'NOT_ACCEPTABLE'], 'through Fastify\'s error path')
  t.equal(logs.faults().length, 2, 'logged once each')

  seen.length = 0
  const own = await app.inject({ url: '/own-406', headers: { accept: 'application/json' } })
  t.equal(own.statusCode, 406)
  t.same(own.json(), { mine: true })
  t.same(seen, [])

  const plain = await app.inject({ url: '/only-plain', headers: { accept: 'text/event-stream' } })
  t.equal(plain.statusCode, 200)
  t.equal(plain.body, 'plain')

  const ok = await app.inject({ url: '/only', headers: { accept: 'text/event-stream' } })
  t.equal(ok.statusCode, 200)
  t.equal(ok.body, 'data: "x"\n\n')
})
