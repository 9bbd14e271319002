import t from 'tap'
import Fastify from 'fastify'
import fastifyWebsocket from '@fastify/websocket'
import { faultlineHttp } from '../plugins/http.js'
import { faultlineWebsocket, type FaultlineWebsocketOptions } from '../plugins/websocket.js'
import { guardProcess } from './helpers/guard.js'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import WebSocket from 'ws'
import { ConflictError } from '../lib/fault.js'

guardProcess(t)

async function register (options: unknown): Promise<unknown> {
  const app = Fastify()
  try {
    await app.register(faultlineHttp)
    await app.register(faultlineWebsocket, options as FaultlineWebsocketOptions)
    await app.ready()
    return undefined
  } catch (err) {
    return err
  } finally {
    await app.close()
  }
}

t.test('invalid options fail at register time with a clear message', async t => {
  const cases: Array<[unknown, RegExp]> = [
    [{ websocket: 5 }, /invalid option websocket: must be the options object for @fastify\/websocket/],
    [{ websocket: { errorHandler: () => {} } }, /invalid option websocket\.errorHandler: faultline owns @fastify\/websocket's errorHandler/],
    [{ websocket: { preClose: () => {} } }, /invalid option websocket\.preClose/],
    [{ errorFrame: 'yes' }, /invalid option errorFrame: must be a boolean/],
    [{ closeCodes: [4000] }, /invalid option closeCodes: must be an object/],
    [{ closeCodes: { NOT_FOUND: 1006 } }, /closeCodes\.NOT_FOUND: 1006 is reserved/],
    [{ closeCodes: { NOT_FOUND: 1005 } }, /1005 is reserved/],
    [{ closeCodes: { NOT_FOUND: 1015 } }, /1015 is reserved/],
    [{ closeCodes: { NOT_FOUND: 999 } }, /must be an integer close code a server may send/],
    [{ closeCodes: { NOT_FOUND: 5000 } }, /must be an integer close code/],
    [{ closeCodes: { NOT_FOUND: '4000' } }, /must be an integer close code/],
    [{ closeCodes: { 200: 4000 } }, /closeCodes\.200: a numeric key must be an HTTP status from 400 to 599/],
    [{ heartbeat: 0 }, /invalid option heartbeat: must be an integer number of milliseconds from 1 to 2147483647/],
    [{ heartbeat: Infinity }, /invalid option heartbeat: must be an integer number of milliseconds/],
    [{ heartbeat: 'fast' }, /invalid option heartbeat: must be false, a ping interval/],
    [{ heartbeat: { interval: -1 } }, /invalid option heartbeat\.interval: must be an integer number of milliseconds/],
    [{ heartbeat: { interval: 10, maxMissed: 0 } }, /heartbeat\.maxMissed: must be a positive integer, got 0/],
    [{ heartbeat: { interval: 10, maxMissed: 1.5 } }, /heartbeat\.maxMissed/],
    [{ idleTimeout: 0 }, /invalid option idleTimeout/],
    [{ closeTimeout: NaN }, /invalid option closeTimeout/],
    [{ closeTimeout: 2 ** 31 }, /invalid option closeTimeout/],
    [{ maxBufferedAmount: 0 }, /invalid option maxBufferedAmount: must be a positive integer \(bytes queued to a peer\), got 0/],
    [{ maxBufferedAmount: 1.5 }, /invalid option maxBufferedAmount: must be a positive integer/],
    [{ maxBufferedAmount: '1mb' }, /invalid option maxBufferedAmount: must be a positive integer \(bytes queued to a peer\), got "1mb"/],
    [{ maxBufferedAmount: Infinity }, /invalid option maxBufferedAmount/],
    [{ maxBufferdAmount: 1024 }, /unknown option: did you mean maxBufferedAmount\?/]
  ]
  for (const [options, message] of cases) {
    const err = await register(options) as Error & { code?: string }
    t.match(err, { code: 'FST_FAULTLINE_INVALID_OPTION', message }, JSON.stringify(options))
    t.match(err.message, /^faultline-websocket: /)
  }
})

t.test('valid options register', async t => {
  for (const options of [
    {},
    { heartbeat: false as const, errorFrame: true, closeCodes: { NOT_FOUND: 4004, 499: 1000 } },
    { heartbeat: 1000, idleTimeout: 60_000, closeTimeout: 1000, maxBufferedAmount: 64 * 1024 },
    { heartbeat: { interval: 1000 }, websocket: { options: { maxPayload: 1024 } } }
  ]) {
    t.equal(await register(options), undefined, JSON.stringify(options))
  }
})

t.test('non-object options are refused', async t => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(faultlineHttp)
  // Fastify passes an empty object for a missing one; a function is its "options from the instance" form.
  app.register(faultlineWebsocket, (() => null) as never)
  await t.rejects(async () => { await app.ready() }, { code: 'FST_FAULTLINE_INVALID_OPTION', message: /invalid option options: must be an object/ })
})

t.test('registering it where @fastify/websocket is already registered says what to do', async t => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(faultlineHttp)
  await app.register(fastifyWebsocket)
  app.register(faultlineWebsocket)
  await t.rejects(async () => { await app.ready() }, {
    code: 'FST_FAULTLINE_PEER_REGISTERED',
    message: /faultline-websocket: @fastify\/websocket is already registered.*Remove your own registration of it and pass its options to faultlineWebsocket instead \(option `websocket`\)/
  })
})

t.test('registering it twice on one server (sibling contexts) is refused', async t => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(faultlineHttp)
  app.register(async child => { await child.register(faultlineWebsocket) })
  app.register(async child => { await child.register(faultlineWebsocket) })
  await t.rejects(async () => { await app.ready() }, {
    code: 'FST_FAULTLINE_WEBSOCKET_TWICE',
    message: /already registered on this HTTP server.*Register it once, at the root/
  })
})

t.test('it needs faultline-http', async t => {
  const app = Fastify()
  t.teardown(() => app.close())
  app.register(faultlineWebsocket)
  await t.rejects(async () => { await app.ready() }, /faultline-http/)
})

t.test('it forwards its websocket option to @fastify/websocket', async t => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(faultlineHttp)
  await app.register(faultlineWebsocket, { websocket: { options: { maxPayload: 1234 } } })
  await app.ready()
  t.equal(app.websocketServer.options.maxPayload, 1234)
  t.ok(app.hasPlugin('@fastify/websocket'))
})

t.test('registered in the scope of the socket routes: the other routes carry no hook at all, and the socket routes still fail with frames', async t => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(faultlineHttp)
  app.get('/plain', async () => ({ ok: true }))
  await app.register(async (sockets) => {
    await sockets.register(faultlineWebsocket)
    sockets.get('/chat', { websocket: true }, (socket) => {
      socket.on('message', () => { throw new ConflictError('taken') })
    })
  }, { prefix: '/live' })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const routes = app.printRoutes({ includeHooks: true, commonPrefix: false })
  t.ok(routes.indexOf('plain (GET)') !== -1 && routes.indexOf('plain (GET)') < routes.indexOf('live/chat'), routes)
  const plain = routes.slice(routes.indexOf('plain (GET)'), routes.indexOf('live/chat'))
  t.notMatch(plain, /onRequest|onResponse|onError/, 'no hook on /plain')
  t.match(routes.slice(routes.indexOf('live/chat')), /onRequest/, '@fastify/websocket\'s hooks on the socket route')
  const { port } = app.server.address() as AddressInfo
  t.same(await (await fetch(`http://127.0.0.1:${port}/plain`)).json(), { ok: true })
  const socket = new WebSocket(`ws://127.0.0.1:${port}/live/chat`)
  t.teardown(() => socket.terminate())
  await once(socket, 'open')
  socket.send('x')
  const [frame] = await once(socket, 'message') as [Buffer]
  t.match(JSON.parse(String(frame)), { type: 'error', error: { status: 409, code: 'CONFLICT', instance: '/live/chat' } })
})

t.test('registered at the root: a plain route carries @fastify/websocket\'s two hooks and none of faultline\'s', async t => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(faultlineHttp)
  await app.register(faultlineWebsocket)
  app.get('/plain', async () => ({ ok: true }))
  await app.ready()
  const routes = app.printRoutes({ includeHooks: true, commonPrefix: false })
  t.ok(routes.indexOf('plain (GET)') !== -1 && routes.indexOf('plain (GET)') < routes.indexOf('plain (HEAD)'), routes)
  const plain = routes.slice(routes.indexOf('plain (GET)'), routes.indexOf('plain (HEAD)'))
  t.match(plain, /onRequest/)
  t.match(plain, /onResponse/)
  t.notMatch(plain, /onError|faultline/i)
})
