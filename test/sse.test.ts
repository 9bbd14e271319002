import t, { type Test } from 'tap'
import Fastify, { type FastifyPluginAsync } from 'fastify'
import fastifySse from '@fastify/sse'
import { Readable } from 'node:stream'
import {
  faultlineHttp, faultlineSse, defineFault, BadGatewayError, ConflictError, ForbiddenError, GoneError, InternalError,
  NotFoundError, ServiceUnavailableError, UnauthorizedError, type FaultlineSseOptions
} from '../index.js'
import { guardProcess } from './helpers/guard.js'
import { buildSseApp, type SseApp } from './helpers/sse-app.js'
import { listen, parseEvents, rawGet, until } from './helpers/sse-client.js'

async function build (t: Test, opts: FaultlineSseOptions = {}): Promise<SseApp> {
  return await buildSseApp(t, opts)
}

t.test('a fault before the first event is an ordinary problem+json response', async t => {
  guardProcess(t)
  const { app, seen } = await build(t)
  app.get('/events', { sse: true }, async () => { throw new UnauthorizedError('token expired') })
  const base = await listen(app)
  const res = await rawGet(base + '/events')
  t.equal(res.status, 401)
  t.match(res.headers['content-type'], /^application\/problem\+json/)
  t.match(JSON.parse(res.body), { status: 401, code: 'UNAUTHORIZED', detail: 'token expired' })
  t.equal(seen.length, 1)
  t.match(seen[0]!.context, { transport: 'sse', phase: 'before-response' })
})

t.test('a thrown fault after the first event: the exact error event bytes, then the end', async t => {
  guardProcess(t)
  const { app, seen } = await build(t)
  app.get('/events', { sse: true }, async (request, reply) => {
    await reply.sse.send({ id: '1', data: 'hello' })
    throw new ForbiddenError('access revoked')
  })
  const base = await listen(app)
  const res = await rawGet(base + '/events')
  t.equal(res.status, 200)
  const reqId = (seen[0]!.context.request as { id: string }).id
  t.equal(res.body,
    'id: 1\ndata: "hello"\n\n' +
    'event: error\n' +
    'id: faultline-terminal:FORBIDDEN\n' +
    `data: {"type":"about:blank","title":"Forbidden","status":403,"detail":"access revoked","instance":"/events","code":"FORBIDDEN","requestId":"${reqId}"}\n\n`)
  t.match(seen[0]!.context, { transport: 'sse', phase: 'mid-stream' })
})

t.test('a failing async iterable: error event with retry for a retryable fault', async t => {
  guardProcess(t)
  const { app } = await build(t)
  app.get('/events', { sse: true }, async (request, reply) => {
    async function * source () {
      yield { data: 1 }
      throw new ServiceUnavailableError('busy', { retryAfter: 2 })
    }
    await reply.sse.send(source())
  })
  const base = await listen(app)
  const res = await rawGet(base + '/events')
  const { events, retry } = parseEvents(res.body)
  t.equal(events.length, 2)
  t.equal(events[1]!.event, 'error')
  t.equal(events[1]!.id, undefined)
  t.same(retry, [2000])
})

t.test('a failing Readable: error event and a closed stream, no hang', async t => {
  guardProcess(t)
  const { app } = await build(t)
  app.get('/events', { sse: true }, async (request, reply) => {
    const source = new Readable({ objectMode: true, read () {} })
    source.push({ data: 'a' })
    setImmediate(() => source.destroy(new BadGatewayError('upstream broke')))
    await reply.sse.send(source)
  })
  const base = await listen(app)
  const res = await rawGet(base + '/events')
  const { events, retry } = parseEvents(res.body)
  t.equal(events.length, 2)
  t.match(JSON.parse(events[1]!.data), { status: 502, code: 'BAD_GATEWAY' })
  t.same(retry, [3000])
})

t.test('a 500 has no id and no retry', async t => {
  guardProcess(t)
  const { app } = await build(t)
  app.get('/events', { sse: true }, async (request, reply) => {
    await reply.sse.send({ data: 'x' })
    throw new InternalError('db password is hunter2')
  })
  const base = await listen(app)
  const res = await rawGet(base + '/events')
  t.notMatch(res.body, /hunter2/)
  t.notMatch(res.body, /retry:|id:/)
})

t.test('registration', async t => {
  guardProcess(t)

  t.test('rejects invalid options with a clear message', async t => {
    const cases: Array<[unknown, RegExp]> = [
      // avvio turns a null options object into {}; a function returning a non-object reaches the plugin.
      [() => 'nope', /faultline-sse: invalid option options: must be an object/],
      [{ sse: 'yes' }, /invalid option sse: must be an object of @fastify\/sse options/],
      [{ sse: [] }, /invalid option sse/],
      [{ sse: null }, /invalid option sse/],
      [{ errorEvent: '' }, /invalid option errorEvent/],
      [{ errorEvent: 'a b' }, /invalid option errorEvent/],
      [{ errorEvent: 'x\nevent: y' }, /invalid option errorEvent/],
      [{ errorEvent: 42 }, /invalid option errorEvent/],
      [{ terminalIdPrefix: 'a\u2028' }, /invalid option terminalIdPrefix/],
      [{ terminalIdPrefix: 1 }, /invalid option terminalIdPrefix/],
      [{ defaultRetry: -1 }, /invalid option defaultRetry/],
      [{ defaultRetry: 1.5 }, /invalid option defaultRetry/],
      [{ closeTimeout: 0 }, /invalid option closeTimeout/],
      [{ closeTimeout: '5' }, /invalid option closeTimeout/]
    ]
    for (const [opts, message] of cases) {
      const app = Fastify()
      await app.register(faultlineHttp)
      await t.rejects(async () => { await app.register(faultlineSse, opts as FaultlineSseOptions) }, { code: 'FST_FAULTLINE_INVALID_OPTION', message })
      await app.close()
    }
  })

  t.test('an existing @fastify/sse registration is a register-time error that says what to do', async t => {
    const app = Fastify()
    await app.register(faultlineHttp)
    await app.register(fastifySse as unknown as FastifyPluginAsync)
    await t.rejects(async () => { await app.register(faultlineSse) }, {
      code: 'FST_FAULTLINE_PEER_REGISTERED',
      message: /@fastify\/sse is already registered.*faultlineSse.*option `sse`/
    })
    await app.close()
  })

  t.test('also when @fastify/sse was registered in a parent scope', async t => {
    const app = Fastify()
    await app.register(faultlineHttp)
    await app.register(fastifySse as unknown as FastifyPluginAsync)
    await t.rejects(async () => {
      await app.register(async scope => { await scope.register(faultlineSse) })
    }, { code: 'FST_FAULTLINE_PEER_REGISTERED' })
    await app.close()
  })

  t.test('needs faultline-http', async t => {
    const app = Fastify()
    await t.rejects(async () => { await app.register(faultlineSse) }, /faultline-http/)
    await app.close()
  })

  t.test('forwards `sse` to @fastify/sse and counts open streams across scopes', async t => {
    const app = Fastify({ forceCloseConnections: true })
    await app.register(faultlineHttp)
    await app.register(async scope => {
      await scope.register(faultlineSse, { sse: { heartbeatInterval: 10 } })
      scope.get('/a', { sse: true }, async (request, reply) => {
        reply.sse.keepAlive()
        await reply.sse.send({ data: 'a' })
      })
    })
    await app.register(async scope => {
      await scope.register(faultlineSse)
      scope.get('/b', { sse: true }, async (request, reply) => {
        reply.sse.keepAlive()
        await reply.sse.send({ data: 'b' })
      })
    })
    t.teardown(() => app.close())
    const base = await listen(app)
    const a = new AbortController()
    const b = new AbortController()
    const headers = { accept: 'text/event-stream' }
    const resA = await fetch(base + '/a', { signal: a.signal, headers })
    const resB = await fetch(base + '/b', { signal: b.signal, headers })
    t.equal(app.faultline.sse.open, 2)
    // A heartbeat comment shows `sse` reached @fastify/sse.
    const reader = resA.body!.getReader()
    let text = ''
    while (!text.includes(': heartbeat')) {
      const { value } = await reader.read()
      text += Buffer.from(value!).toString()
    }
    t.pass('heartbeat seen')
    a.abort()
    b.abort()
    await resB.body?.cancel().catch(() => {})
    await until(() => app.faultline.sse.open === 0, 10_000, 'streams to close')
  })
})

t.test('per fault: id for terminal faults, retry for retryable ones', async t => {
  guardProcess(t)
  const { app } = await build(t, { defaultRetry: 1234 })
  const faults: Record<string, () => Error> = {
    unauthorized: () => new UnauthorizedError(),
    gone: () => new GoneError(),
    conflictRetryable: () => new ConflictError('try again', { retryable: true }),
    badGateway: () => new BadGatewayError(),
    unavailable: () => new ServiceUnavailableError('later', { retryAfter: 7 }),
    internal: () => new InternalError(),
    plain: () => new Error('boom')
  }
  app.get('/events/:kind', { sse: true }, async (request, reply) => {
    await reply.sse.send({ data: 'first' })
    throw faults[(request.params as { kind: string }).kind]!()
  })
  const base = await listen(app)
  const expected: Record<string, { id?: string, retry?: number, status: number }> = {
    unauthorized: { id: 'faultline-terminal:UNAUTHORIZED', status: 401 },
    gone: { id: 'faultline-terminal:GONE', status: 410 },
    conflictRetryable: { retry: 1234, status: 409 },
    badGateway: { retry: 1234, status: 502 },
    unavailable: { retry: 7000, status: 503 },
    internal: { status: 500 },
    plain: { status: 500 }
  }
  for (const [kind, want] of Object.entries(expected)) {
    const res = await rawGet(`${base}/events/${kind}`)
    const { events, retry } = parseEvents(res.body)
    t.equal(events.length, 2, kind)
    t.equal(events[1]!.event, 'error', kind)
    t.equal(events[1]!.id, want.id, `${kind} id`)
    t.same(retry, want.retry === undefined ? [] : [want.retry], `${kind} retry`)
    t.equal(JSON.parse(events[1]!.data).status, want.status, `${kind} status`)
  }
})

t.test('errorEvent and terminalIdPrefix options', async t => {
  guardProcess(t)
  const { app } = await build(t, { errorEvent: 'app-error', terminalIdPrefix: 'stop!' })
  app.get('/events', { sse: true }, async (request, reply) => {
    await reply.sse.send({ data: 'x' })
    throw new ForbiddenError()
  })
  const base = await listen(app)
  const { events } = parseEvents((await rawGet(base + '/events')).body)
  t.equal(events[1]!.event, 'app-error')
  t.equal(events[1]!.id, 'stop!FORBIDDEN')
  const again = await rawGet(base + '/events', { 'last-event-id': 'stop!FORBIDDEN' })
  t.equal(again.status, 204)
  t.equal(again.body, '')
})

t.test('a terminal Last-Event-ID is answered 204 without running the handler', async t => {
  guardProcess(t)
  const { app, seen } = await build(t)
  let calls = 0
  app.get('/events', { sse: 'only' }, async (request, reply) => {
    calls++
    await reply.sse.send({ data: 'x' })
  })
  const res = await app.inject({ url: '/events', headers: { accept: 'text/event-stream', 'last-event-id': 'faultline-terminal:UNAUTHORIZED' } })
  t.equal(res.statusCode, 204)
  t.equal(res.body, '')
  t.equal(calls, 0)
  t.equal(seen.length, 0)
})

t.test('ordinary Last-Event-ID replay keeps working', async t => {
  guardProcess(t)
  const { app } = await build(t)
  const history = [{ id: '1', data: 'one' }, { id: '2', data: 'two' }, { id: '3', data: 'three' }]
  app.get('/events', { sse: true }, async (request, reply) => {
    let replayed = false
    await reply.sse.replay(async lastEventId => {
      replayed = true
      const from = history.findIndex(m => m.id === lastEventId) + 1
      for (const m of history.slice(from)) await reply.sse.send(m)
    })
    if (!replayed) await reply.sse.send(history[0]!)
  })
  const base = await listen(app)
  const res = await rawGet(base + '/events', { 'last-event-id': '1' })
  t.same(parseEvents(res.body).events.map(e => e.id), ['2', '3'])
  const fresh = await rawGet(base + '/events')
  t.same(parseEvents(fresh.body).events.map(e => e.id), ['1'])
})

t.test('reply.sse.fault: a non-fatal error event, and a fatal one with { close: true }', async t => {
  guardProcess(t)
  const { app, seen } = await build(t)
  app.get('/partial', { sse: true }, async (request, reply) => {
    // Before any event: commits the stream (200) and goes on.
    const fault = reply.sse.fault(new NotFoundError('item 0 missing'))
    t.equal(fault.code, 'NOT_FOUND')
    await reply.sse.send({ data: 'item 1' })
    reply.sse.fault(new ForbiddenError('item 2 hidden'))
    await reply.sse.send({ data: 'item 3' })
  })
  app.get('/fatal', { sse: true }, async (request, reply) => {
    await reply.sse.send({ data: 'item 1' })
    reply.sse.fault(new ForbiddenError('revoked'), { close: true })
    // Reported once, nothing written after the end.
    reply.sse.fault(new ConflictError('after the end'))
    reply.sse.fault(new ConflictError('after the end, closing'), { close: true })
    t.equal(reply.sse.isConnected, false)
  })
  app.get('/fatal-first', { sse: true }, async (request, reply) => {
    reply.sse.fault(new UnauthorizedError('no session'), { close: true })
    return reply
  })
  const base = await listen(app)
  const partial = await rawGet(base + '/partial')
  t.equal(partial.status, 200)
  const events = parseEvents(partial.body).events
  t.same(events.map(e => e.event ?? 'message'), ['error', 'message', 'error', 'message'])
  t.same(events.map(e => e.id), [undefined, undefined, undefined, undefined], 'non-fatal events never carry the terminal id')
  t.notMatch(partial.body, /retry:/)
  t.same(seen.map(s => [s.fault.code, s.context.phase]), [['NOT_FOUND', 'mid-stream'], ['FORBIDDEN', 'mid-stream']])

  seen.length = 0
  const fatal = await rawGet(base + '/fatal')
  const fatalEvents = parseEvents(fatal.body).events
  t.equal(fatalEvents.length, 2)
  t.equal(fatalEvents[1]!.id, 'faultline-terminal:FORBIDDEN')
  t.same(seen.map(s => s.fault.code), ['FORBIDDEN', 'CONFLICT', 'CONFLICT'])

  seen.length = 0
  const first = await rawGet(base + '/fatal-first')
  t.equal(first.status, 401)
  t.match(JSON.parse(first.body), { code: 'UNAUTHORIZED', detail: 'no session' })
  t.match(seen[0]!.context, { transport: 'sse', phase: 'before-response' })
})

t.test('a keepAlive stream fed later by an unawaited send that fails: error event, close, no unhandled rejection', async t => {
  guardProcess(t)
  const { app, seen } = await build(t)
  app.get('/events', { sse: true }, async (request, reply) => {
    reply.sse.keepAlive()
    await reply.sse.send({ data: 'hello' })
    setImmediate(() => {
      async function * updates () {
        yield { data: 'update' }
        throw new BadGatewayError('feed lost')
      }
      // Not awaited on purpose: the fault is handled inside send().
      reply.sse.send(updates())
    })
  })
  const base = await listen(app)
  const res = await rawGet(base + '/events')
  const { events, retry } = parseEvents(res.body)
  t.same(events.map(e => e.event ?? 'message'), ['message', 'message', 'error'])
  t.same(retry, [3000])
  t.equal(seen.length, 1)
  t.match(seen[0]!.context, { transport: 'sse', phase: 'mid-stream' })
})

t.test('a serializer that throws is a fault like any other', async t => {
  guardProcess(t)
  const { app } = await build(t)
  app.get('/first', { sse: true }, async (request, reply) => {
    await reply.sse.send({ data: 10n })
  })
  app.get('/later', { sse: true }, async (request, reply) => {
    await reply.sse.send({ data: 'ok' })
    await reply.sse.send({ data: 10n })
  })
  const base = await listen(app)
  const first = await rawGet(base + '/first')
  t.equal(first.status, 500)
  t.match(JSON.parse(first.body), { code: 'INTERNAL', detail: 'Internal Server Error' })
  const later = await rawGet(base + '/later')
  t.equal(later.status, 200)
  t.same(parseEvents(later.body).events.map(e => e.event ?? 'message'), ['message', 'error'])
})

t.test('after the stream ended: sends reject as closed, late throws are reported once, never written', async t => {
  guardProcess(t)
  const { app, seen } = await build(t)
  let sendAfterEnd: unknown
  app.get('/closed-send', { sse: true }, async (request, reply) => {
    async function * failing () {
      yield { data: 1 }
      throw new ForbiddenError('revoked')
    }
    await reply.sse.send(failing())
    try {
      await reply.sse.send({ data: 'after' })
    } catch (err) {
      sendAfterEnd = err
      throw err
    }
  })
  app.get('/late-throw', { sse: true }, async (request, reply) => {
    await reply.sse.send([1, 2] as never) // not a valid source: a fault
    throw new ConflictError('thrown after the end')
  })
  app.get('/late-iterable', { sse: true }, async (request, reply) => {
    await reply.sse.send({ data: 'x' })
    reply.sse.fault(new GoneError(), { close: true })
    await reply.sse.send((async function * () { yield { data: 'never' } })())
  })
  const base = await listen(app)
  const closed = await rawGet(base + '/closed-send')
  t.same(parseEvents(closed.body).events.map(e => e.event ?? 'message'), ['message', 'error'])
  t.match(sendAfterEnd, { code: 'FST_ERR_SSE_CONNECTION_CLOSED' })
  t.same(seen.map(s => s.fault.code), ['FORBIDDEN'])

  seen.length = 0
  const late = await rawGet(base + '/late-throw')
  t.equal(late.status, 500, 'an invalid source before the first event is a 500 problem')
  t.same(seen.map(s => [s.fault.code, s.context.phase]), [['INTERNAL', 'before-response'], ['CONFLICT', 'mid-stream']])

  seen.length = 0
  const lateIterable = await rawGet(base + '/late-iterable')
  t.same(parseEvents(lateIterable.body).events.map(e => e.event ?? 'message'), ['message', 'error'])
  t.same(seen.map(s => s.fault.code), ['GONE'])
})

t.test("'dual' routes: the non-SSE branch is plain HTTP", async t => {
  guardProcess(t)
  const { app, seen } = await build(t)
  app.get('/data', { sse: 'dual' }, async (request, reply) => {
    if ((reply as { sse?: unknown }).sse === undefined) {
      if (request.query !== null && (request.query as Record<string, string>).fail === '1') throw new NotFoundError('no data')
      return { ok: true }
    }
    await reply.sse.send({ data: 'streamed' })
  })
  app.get('/plain', { sse: false }, async () => ({ plain: true }))
  const json = await app.inject({ url: '/data', headers: { accept: 'application/json' } })
  t.same(json.json(), { ok: true })
  const failed = await app.inject({ url: '/data?fail=1', headers: { accept: 'application/json' } })
  t.equal(failed.statusCode, 404)
  t.match(seen[0]!.context, { transport: 'http' })
  const streamed = await app.inject({ url: '/data', headers: { accept: 'text/event-stream' } })
  t.equal(streamed.body, 'data: "streamed"\n\n')
  const plain = await app.inject({ url: '/plain', headers: { accept: 'text/event-stream' } })
  t.same(plain.json(), { plain: true })
})

t.test('no message, code or detail can inject SSE fields or events', async t => {
  guardProcess(t)
  const { app } = await build(t)
  const Evil = defineFault({ code: 'EVIL\u2028CODE id: x', status: 422 })
  const payloads = [
    'a\rb', 'a\nb', 'a\r\nb', 'a\u2028b', 'a\u2029b',
    'x\n\nevent: message\ndata: injected\n\n',
    'x\r\rid: 999\r\r',
    'x\r\n\r\nretry: 1\r\n\r\n',
    '\u2028\u2029data: y\u2028\u2029'
  ]
  app.get('/events/:i', { sse: true }, async (request, reply) => {
    const i = Number((request.params as { i: string }).i)
    await reply.sse.send({ data: 'first' })
    const text = payloads[i]!
    throw new Evil(text, { details: { [text]: text, nested: { deep: text } } })
  })
  const base = await listen(app)
  for (let i = 0; i < payloads.length; i++) {
    const res = await rawGet(`${base}/events/${i}`)
    const { events, retry } = parseEvents(res.body)
    t.equal(events.length, 2, `payload ${i}: exactly two events`)
    t.same(retry, [], `payload ${i}: no retry field`)
    const error = events[1]!
    t.equal(error.event, 'error')
    t.equal(error.id, 'faultline-terminal:' + encodeURIComponent('EVIL\u2028CODE id: x'))
    const problem = JSON.parse(error.data)
    t.equal(problem.detail, payloads[i], `payload ${i}: detail round-trips`)
    t.equal(problem[payloads[i]!], payloads[i])
    t.same(problem.nested, { deep: payloads[i] })
    t.equal(problem.code, 'EVIL\u2028CODE id: x')
    // Exactly one data line, and no raw line break of any kind inside it.
    const dataLine = res.body.split('\n').find(l => l.startsWith('data: {'))!
    t.notMatch(dataLine, /[\r\u2028\u2029]/)
  }
})

t.test('a source that cannot even be iterated, and a failure after the route closed the stream itself', async t => {
  guardProcess(t)
  const { app, seen } = await build(t)
  app.get('/no-iterator', { sse: true }, async (request, reply) => {
    const hostile = { [Symbol.asyncIterator] () { throw new Error('no iterator for you') } }
    await reply.sse.send(hostile as unknown as AsyncIterable<string>)
  })
  app.get('/user-closed', { sse: true }, async (request, reply) => {
    async function * source () {
      yield { data: 1 }
      reply.sse.close()
      throw new ConflictError('after the route closed the stream')
    }
    await reply.sse.send(source())
  })
  const base = await listen(app)
  const hostile = await rawGet(base + '/no-iterator')
  t.equal(hostile.status, 500)
  t.match(JSON.parse(hostile.body), { code: 'INTERNAL' })
  t.same(seen.map(s => [s.fault.code, s.context.phase]), [['INTERNAL', 'before-response']])

  seen.length = 0
  const closed = await rawGet(base + '/user-closed')
  t.equal(closed.body, 'data: 1\n\n', 'nothing written after the route closed the stream')
  t.same(seen.map(s => [s.fault.code, s.context.transport, s.context.phase]), [['CONFLICT', 'sse', 'mid-stream']])
})

t.test('a handler that returns a value after its stream failed does not trigger a second send', async t => {
  guardProcess(t)
  const { app, logs } = await build(t)
  app.get('/before', { sse: true }, async (request, reply) => {
    await reply.sse.send({ data: 10n })
    return { ignored: true }
  })
  app.get('/after', { sse: true }, async (request, reply) => {
    await reply.sse.send({ data: 1 })
    await reply.sse.send([] as never)
    return 'ignored too'
  })
  const base = await listen(app)
  const before = await rawGet(base + '/before')
  t.equal(before.status, 500)
  t.match(JSON.parse(before.body), { code: 'INTERNAL' })
  const after = await rawGet(base + '/after')
  t.same(parseEvents(after.body).events.map(e => e.event ?? 'message'), ['message', 'error'])
  t.notMatch(after.body, /ignored/)
  t.equal(logs.lines.filter(l => l.level >= 40).length, logs.faults().filter(l => l.level >= 40).length, 'no warnings besides the reported faults')
})

t.test('a failing auth hook on an SSE route is an ordinary problem response', async t => {
  guardProcess(t)
  const { app, seen } = await build(t)
  app.get('/events', {
    sse: true,
    preHandler: async () => { throw new UnauthorizedError('login first') }
  }, async (request, reply) => { await reply.sse.send({ data: 'never' }) })
  const base = await listen(app)
  const res = await rawGet(base + '/events')
  t.equal(res.status, 401)
  t.match(res.headers['content-type'], /problem\+json/)
  t.match(seen[0]!.context, { transport: 'http', phase: 'before-response' })
})
