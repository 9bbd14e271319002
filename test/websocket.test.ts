import t from 'tap'
import {
  defineFault, ForbiddenError, ValidationError, UnauthorizedError, NotFoundError,
  BadGatewayError, ServiceUnavailableError, GatewayTimeoutError, ConflictError, builtinByStatus
} from '../lib/fault.js'
import Fastify from 'fastify'
import { faultlineHttp } from '../plugins/http.js'
import { faultlineWebsocket } from '../plugins/websocket.js'
import { guardProcess } from './helpers/guard.js'
import { connect, refused, waitFor } from './helpers/ws-client.js'
import { wsApp } from './helpers/ws-app.js'

guardProcess(t)

interface ErrorFrame { type: string, error: Record<string, unknown> }
const frame = (text: string): ErrorFrame => JSON.parse(text)

t.test('a handler that throws: error frame, then the mapped close code and the fault code', async t => {
  const { url, reportOf, logs } = await wsApp(t, app => {
    app.get('/sync', { websocket: true }, () => { throw new ForbiddenError('not yours') })
  })
  const client = await connect(url + '/sync')
  t.same(await client.closed, { code: 4403, reason: 'FORBIDDEN' })
  t.equal(client.messages.length, 1)
  const f = frame(client.messages[0]!)
  t.equal(f.type, 'error')
  t.match(f.error, { type: 'about:blank', title: 'Forbidden', status: 403, detail: 'not yours', code: 'FORBIDDEN', instance: '/sync' })
  t.type(f.error.requestId, 'string')
  const r = await reportOf('FORBIDDEN')
  t.match(r, { transport: 'websocket', phase: 'mid-stream' })
  const lines = logs.faults()
  t.equal(lines.length, 1, 'logged once')
  t.match(lines[0], { level: 30, fault: { code: 'FORBIDDEN', status: 403 }, transport: 'websocket', phase: 'mid-stream', handled: true })
})

t.test('an async handler that rejects: redacted frame, 1011, logged once at error', async t => {
  const { url, logs, errorLines } = await wsApp(t, app => {
    app.get('/async', { websocket: true }, async () => {
      await Promise.resolve()
      throw new Error('secret connection string')
    })
  })
  const client = await connect(url + '/async')
  t.same(await client.closed, { code: 1011, reason: 'INTERNAL' })
  const f = frame(client.messages[0]!)
  t.match(f.error, { status: 500, code: 'INTERNAL', detail: 'Internal Server Error' })
  t.notMatch(client.messages[0]!, /secret/)
  t.equal(errorLines().length, 1, 'one error line: ours, not @fastify/websocket\'s')
  t.match(logs.faults()[0], { level: 50, transport: 'websocket', fault: { code: 'INTERNAL' } })
})

t.test('the default map, observed by a real client', async t => {
  const Teapot = defineFault({ code: 'WS_TEAPOT', status: 418 })
  const cases: Array<[number, number]> = [[404, 4404], [409, 4409], [413, 1009], [418, 4418], [500, 1011], [502, 1014], [503, 1013], [504, 1011]]
  const { url } = await wsApp(t, app => {
    app.get('/status/:status', { websocket: true }, (_socket, request) => {
      const status = Number((request.params as { status: string }).status)
      const Cls = status === 418 ? Teapot : builtinByStatus.get(status)!
      throw new Cls()
    })
  })
  for (const [status, code] of cases) {
    const client = await connect(`${url}/status/${status}`)
    const closed = await client.closed
    t.equal(closed.code, code, `${status} -> ${code}`)
    t.equal(frame(client.messages[0]!).error.status, status)
  }
})

t.test('close codes overridable per fault class and by option; errorFrame: false', async t => {
  const Quota = defineFault({ code: 'WS_QUOTA', status: 429, closeCode: 4029 })
  const Paid = defineFault({ code: 'WS_PAYMENT', status: 402 })
  const { url } = await wsApp(t, app => {
    app.get('/quota', { websocket: true }, () => { throw new Quota() })
    app.get('/paid', { websocket: true }, () => { throw new Paid() })
    app.get('/missing', { websocket: true }, () => { throw new NotFoundError() })
    app.get('/echo', { websocket: true }, socket => {
      socket.on('message', data => {
        if (String(data) === 'bad') throw new ConflictError()
        socket.send('echo:' + String(data))
      })
    })
  }, { closeCodes: { WS_PAYMENT: 3402, 404: 3404 }, errorFrame: false })
  for (const [path, code, reason] of [['/quota', 4029, 'WS_QUOTA'], ['/paid', 3402, 'WS_PAYMENT'], ['/missing', 3404, 'NOT_FOUND']] as const) {
    const client = await connect(url + path)
    t.same(await client.closed, { code, reason }, path)
    t.same(client.messages, [], 'no error frame')
  }
  const echo = await connect(url + '/echo')
  echo.ws.send('bad')
  echo.ws.send('hi')
  t.equal(await echo.next(), 'echo:hi', 'a kept-open 4xx sends nothing without the error frame')
  echo.ws.close()
  await echo.closed
})

t.test('the reason is at most 123 bytes of UTF-8, never a split character', async t => {
  const Accented = defineFault({ code: 'É'.repeat(70), status: 422 })
  const Emoji = defineFault({ code: '😀'.repeat(40), status: 422 })
  const { url } = await wsApp(t, app => {
    app.get('/accented', { websocket: true }, () => { throw new Accented() })
    app.get('/emoji', { websocket: true }, () => { throw new Emoji() })
  })
  const a = await (await connect(url + '/accented')).closed
  t.equal(a.code, 4422)
  t.equal(a.reason, 'É'.repeat(61))
  t.equal(Buffer.byteLength(a.reason), 122)
  const e = await (await connect(url + '/emoji')).closed
  t.equal(e.reason, '😀'.repeat(30))
  t.equal(Buffer.byteLength(e.reason), 120)
})

t.test('a message listener that rejects with a 4xx: error frame, the socket stays open', async t => {
  // Explicit, on top of guardProcess: a listener's rejection must never reach the process.
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown): void => { unhandled.push(reason) }
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => { process.off('unhandledRejection', onUnhandled) })

  const { url, reportOf } = await wsApp(t, app => {
    app.get('/echo', { websocket: true }, socket => {
      socket.on('message', async data => {
        await Promise.resolve()
        const text = String(data)
        if (text === 'invalid') {
          throw new ValidationError('name is required', { details: { errors: [{ instancePath: '/name', message: 'is required' }] } })
        }
        if (text === 'boom') throw new Error('database down')
        if (text === 'string') throw 'a string' // eslint-disable-line no-throw-literal
        socket.send('echo:' + text)
      })
    })
  })
  const client = await connect(url + '/echo')
  client.ws.send('invalid')
  const f = frame(await client.next())
  t.match(f, { type: 'error', error: { status: 400, code: 'VALIDATION', detail: 'name is required', errors: [{ instancePath: '/name' }] } })
  t.equal((f.error.errors as unknown[]).length, 1, 'the one issue thrown, nothing added')
  client.ws.send('hello')
  t.equal(await client.next(), 'echo:hello', 'still open, answers the next message')
  t.match(await reportOf('VALIDATION'), { transport: 'websocket', phase: 'message' })

  client.ws.send('string')
  t.match(frame(await client.next()).error, { status: 500, code: 'INTERNAL' })
  t.same(await client.closed, { code: 1011, reason: 'INTERNAL' }, 'a 5xx from a listener closes')
  t.same(unhandled, [])
})

t.test('a preallocated fault thrown for two messages on one socket is reported twice', async t => {
  const invalid = new ValidationError('bad message')
  const { url, reported } = await wsApp(t, app => {
    app.get('/strict', { websocket: true }, socket => {
      socket.on('message', data => {
        if (String(data) === 'bad') throw invalid
        socket.send('ok')
      })
    })
  })
  const client = await connect(url + '/strict')
  client.ws.send('bad')
  await client.next()
  client.ws.send('bad')
  await client.next()
  client.ws.send('fine')
  t.equal(await client.next(), 'ok')
  t.equal(reported.filter(r => r.fault === invalid && r.phase === 'message').length, 2, 'each message is its own occurrence')
  client.ws.close()
})

t.test('a listener that throws synchronously; once, addEventListener and onmessage are guarded too', async t => {
  const { url, reported } = await wsApp(t, app => {
    app.get('/sync', { websocket: true }, socket => {
      socket.on('message', data => {
        if (String(data) === 'conflict') throw new ConflictError('taken')
      })
      const once = (): void => { socket.send('once') }
      socket.once('message', once)
      socket.once('message', () => socket.send('first'))
      socket.removeListener('message', once)
      const ignored = (): void => { socket.send('removed listener ran') }
      socket.addEventListener('message', ignored)
      socket.removeEventListener('message', ignored)
      socket.addEventListener('message', { handleEvent: () => {} })
      socket.removeEventListener('message', { handleEvent: () => {} })
      socket.addEventListener('message', async event => {
        if (String(event.data) === 'async-event') throw new UnauthorizedError('token expired')
      })
      socket.onmessage = async event => {
        if (String(event.data) === 'onmessage') throw new Error('handler bug')
      }
    })
  })
  const client = await connect(url + '/sync')
  client.ws.send('conflict')
  t.match(frame(await client.next()).error, { code: 'CONFLICT' }, 'the first listener threw')
  t.equal(await client.next(), 'first', 'the next listeners still ran: a once listener, not the removed one')
  client.ws.send('async-event')
  t.match(frame(await client.next()).error, { code: 'UNAUTHORIZED' })
  client.ws.send('onmessage')
  t.match(frame(await client.next()).error, { code: 'INTERNAL' })
  t.same(await client.closed, { code: 1011, reason: 'INTERNAL' })
  t.same(client.messages.filter(m => !m.startsWith('{')), ['first'])
  t.same(reported.map(r => [r.code, r.phase]), [['CONFLICT', 'message'], ['UNAUTHORIZED', 'message'], ['INTERNAL', 'message']])
})

t.test('listeners for other events: failures are reported, never crash', async t => {
  const GoneAfterClose = defineFault({ code: 'WS_GONE', status: 410 })
  let serverClosed!: Promise<unknown[]>
  const { url, reportOf } = await wsApp(t, app => {
    app.get('/pong', { websocket: true }, socket => {
      serverClosed = waitFor(socket, 'close')
      socket.on('pong', async () => { throw new ForbiddenError('no pongs please') })
      socket.on('close', () => { throw new GoneAfterClose() })
      socket.ping()
    })
  })
  const client = await connect(url + '/pong')
  t.match(frame(await client.next()).error, { code: 'FORBIDDEN' })
  t.match(await reportOf('FORBIDDEN'), { phase: 'mid-stream' })
  client.ws.close(1000)
  await serverClosed
  t.match(await reportOf('WS_GONE'), { transport: 'websocket', phase: 'mid-stream' })
  t.same(await client.closed, { code: 1000, reason: '' })
})

t.test('a failure before the upgrade is an ordinary HTTP problem response', async t => {
  const onErrorCalls: string[] = []
  const { url, reported, logs } = await wsApp(t, app => {
    app.get('/auth', {
      websocket: true,
      preValidation: async () => { throw new UnauthorizedError('missing token') }
    }, () => { t.fail('handler must not run') })
    app.get('/hooked', {
      websocket: true,
      onRequest: async () => { throw new ForbiddenError('banned') },
      onError: (_req, _reply, _err, done) => { onErrorCalls.push('fn'); done() }
    }, () => {})
    app.get('/hooked-array', {
      websocket: true,
      onRequest: async () => { throw new ForbiddenError('banned') },
      onError: [(_req, _reply, _err, done) => { onErrorCalls.push('array'); done() }]
    }, () => {})
  })
  const res = await refused(url + '/auth')
  t.equal(res.status, 401)
  t.match(res.headers['content-type'], /^application\/problem\+json/)
  t.match(JSON.parse(res.body), { status: 401, code: 'UNAUTHORIZED', detail: 'missing token', instance: '/auth' })
  t.same(reported.map(r => [r.code, r.transport, r.phase]), [['UNAUTHORIZED', 'websocket', 'upgrade']], 'reported once, as an upgrade failure')
  t.equal(logs.faults().length, 1)

  t.equal((await refused(url + '/hooked')).status, 403)
  t.equal((await refused(url + '/hooked-array')).status, 403)
  t.same(onErrorCalls, ['fn', 'array'], 'the route\'s own onError hooks still run')
})

t.test('wsHandler routes: HTTP stays HTTP, the socket side is guarded', async t => {
  const { app, url, reported } = await wsApp(t, app => {
    app.route({
      method: 'GET',
      url: '/both',
      handler: async () => { throw new NotFoundError('no http here') },
      wsHandler: () => { throw new ServiceUnavailableError('draining') }
    })
    app.route({ method: ['GET'], url: '/array', websocket: true, handler: () => { throw new GatewayTimeoutError() } })
    app.get('/plain', async () => ({ ok: true }))
  })
  const http = await app.inject('/both')
  t.equal(http.statusCode, 404)
  t.same(reported.map(r => r.transport), ['http'], 'an HTTP request to a wsHandler route is an HTTP fault')
  t.same(await (await connect(url + '/both')).closed, { code: 1013, reason: 'SERVICE_UNAVAILABLE' })
  t.same(await (await connect(url + '/array')).closed, { code: 1011, reason: 'GATEWAY_TIMEOUT' })
  t.same((await app.inject('/plain')).json(), { ok: true })
  t.equal((await app.inject({ method: 'HEAD', url: '/array' })).statusCode, 404)
})

t.test('a route without a usable handler still gets @fastify/websocket\'s own error', async t => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(faultlineHttp)
  await app.register(faultlineWebsocket)
  t.throws(() => app.route({ method: 'GET', url: '/bad', websocket: true, handler: 5 as never }), /invalid wsHandler function/)
  t.throws(() => app.route({ method: 'GET', url: '/bad2', handler: () => {}, wsHandler: 5 as never }), /invalid wsHandler function/)
})

t.test('socket.emit(\'error\', err) from elsewhere takes the same path; object listeners are guarded against throws', async t => {
  const { url, reported } = await wsApp(t, app => {
    app.get('/timer', { websocket: true }, socket => {
      socket.addEventListener('message', {
        handleEvent (event) {
          if (String(event.data) === 'object') throw new ConflictError('from an object listener')
          // e.g. a subscription callback failing later, outside any listener
          setImmediate(() => socket.emit('error', new BadGatewayError('upstream feed broke')))
        }
      })
    })
  })
  const client = await connect(url + '/timer')
  client.ws.send('object')
  t.match(frame(await client.next()).error, { code: 'CONFLICT' })
  client.ws.send('later')
  t.match(frame(await client.next()).error, { status: 502, code: 'BAD_GATEWAY' })
  t.same(await client.closed, { code: 1014, reason: 'BAD_GATEWAY' })
  t.same(reported.map(r => [r.code, r.phase]), [['CONFLICT', 'message'], ['BAD_GATEWAY', 'mid-stream']])
})
