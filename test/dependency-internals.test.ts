// Every internal of a dependency that faultline relies on (a private symbol, a
// private member, a behaviour no documentation promises), named in one place
// and checked against the installed versions. After an upgrade of fastify,
// @fastify/sse, @fastify/websocket or Node, run this file first: a failure
// names the internal that moved and the faultline feature that breaks with it.
// (bullmq is used through its public API only, ws but for how it emits.) The list is also in
// docs/http.md, "Dependency internals".
import t from 'tap'
import Fastify, { type FastifyPluginAsync, type RouteHandlerMethod } from 'fastify'
import fastifySse from '@fastify/sse'
import fastifyWebsocket from '@fastify/websocket'
import WebSocket from 'ws'
import { Transform, type TransformCallback } from 'node:stream'
import { holdsReplySymbol, REPLY_HEADERS, REPLY_NEXT_ERROR_HANDLER, REPLY_SYMBOLS, replySymbol } from '../lib/fastify-private.js'
import { chainEnd, handFailuresTo, type ChainedErrorHandler } from '../lib/error-chain.js'
import { guardProcess } from './helpers/guard.js'
import { waitFor } from './helpers/ws-client.js'
import { until } from './helpers/sse-client.js'

/** Each internal: where it lives, and what in faultline breaks if it moves. */
const INTERNALS = {
  replyHeaders: {
    where: `fastify: reply[Symbol(${REPLY_HEADERS})] (kReplyHeaders), the headers set with reply.header(), own on every reply`,
    breaks: 'faultlineHttp\'s check of headers Node would refuse (lib/headers.ts headersToWrite) falls back to reply.getHeaders(), two copies on every error'
  },
  nextErrorHandler: {
    where: `fastify: reply[Symbol(${REPLY_NEXT_ERROR_HANDLER})] (kReplyNextErrorHandler), the next handler object of the error chain ({ func }, next = its prototype; no func: Fastify's last resort)`,
    breaks: 'a problem that fails in an onSend hook reaches Fastify\'s default handler (plain JSON with the hook\'s message) instead of faultlineHttp\'s direct write (lib/error-chain.ts handFailuresTo); faultlineBackground no longer sees that a route failed (plugins/background.ts routeFailed): its tasks run after an error response'
  },
  sseContext: {
    where: '@fastify/sse: reply.sse, one SSEContext per request set before the handler runs, whose own writable `serializer` send() and stream() use',
    breaks: 'faultlineSse\'s guard on serialized data (plugins/sse.ts safeSerializer): a serializer\'s line breaks could forge SSE fields'
  },
  sseTransform: {
    where: '@fastify/sse: reply.sse.stream() returns a Transform whose own `_transform(chunk, encoding, callback)` formats one message per chunk',
    breaks: 'faultlineSse\'s check of messages piped through reply.sse.stream() (plugins/sse.ts guard): raw id/event/retry fields go out unchecked'
  },
  sseCleanup: {
    where: '@fastify/sse: reply.sse\'s methods live on its class\'s prototype, and its cleanup() is a prototype method it calls as this.cleanup(): from close() (synchronously) and from the listeners it adds to its response for `close` and `error`',
    breaks: 'faultlineSse\'s session never learns that its response closed (plugins/sse.ts guard, the prototype it puts between): no CLIENT_CLOSED report, fastify.faultline.sse.open never goes back down, a pending send() of an iterable is not released'
  },
  sseClosed: {
    where: '@fastify/sse: a send() on a closed stream rejects with code FST_ERR_SSE_CONNECTION_CLOSED',
    breaks: 'faultlineSse reports a send after the client left as a server fault instead of a cue to stop (lib/sse-session.ts isClosedError)'
  },
  sseRefused: {
    where: '@fastify/sse: an sse: \'only\' route refused by the Accept header answers its own 406 JSON from inside its route handler, with no reply.sse',
    breaks: 'faultlineSse\'s 406 problem for refused sse: \'only\' routes (plugins/sse.ts onRefused): the client gets @fastify/sse\'s plain JSON'
  },
  wsUpgradeListener: {
    where: '@fastify/websocket: registering it adds its one `upgrade` listener to the listen server during registration',
    breaks: 'faultlineWebsocket\'s preClose (which replaces @fastify/websocket\'s) no longer removes that listener: fastify.close() leaves it on the server'
  },
  rawUpgrade: {
    where: 'node:http: request.raw.upgrade === true on a WebSocket upgrade request (IncomingMessage#upgrade, not in @types/node)',
    breaks: 'faultlineBackground waits for the response of a WebSocket route (never written after the upgrade): a task scheduled from its hooks never runs (plugins/background.ts upgraded)'
  },
  wsEmit: {
    where: 'ws: a WebSocket emits its events (message, pong, close) through the `emit` it finds on itself (this.emit), so an `emit` on a prototype between the socket and WebSocket.prototype sees them',
    breaks: 'faultlineWebsocket: listeners run unguarded (a throw is an uncaught exception), the heartbeat sees no pong (live peers terminated), a closed socket\'s session is never forgotten (lib/websocket-session.ts)'
  },
  socketResponse: {
    where: 'node:http: socket._httpMessage, the ServerResponse in flight on a connection (private to Node)',
    breaks: 'faultlineClientErrors cannot see a response already on its way: its problem for a pipelined request Node could not read is spliced into that response\'s body (plugins/client-errors.ts)'
  }
} as const

function moved (internal: keyof typeof INTERNALS): string {
  const { where, breaks } = INTERNALS[internal]
  return `${where}. If this moved: ${breaks}`
}

guardProcess(t)

// The two tests of the lookup itself stay first in this file: which symbol
// is known is module state (lib/fastify-private.ts remembers what it found),
// and the Fastify tests below teach it the real ones. Their first checks
// count on nothing being known yet.
t.test('replySymbol: a private reply symbol by description among the reply\'s own symbols, remembered, undefined when absent', async t => {
  const mine = Symbol(REPLY_NEXT_ERROR_HANDLER)
  t.equal(replySymbol({}, REPLY_NEXT_ERROR_HANDLER), undefined, 'not on the object')
  t.equal(replySymbol({ [Symbol('fastify.reply.other')]: 1 }, REPLY_NEXT_ERROR_HANDLER), undefined, 'another description')
  t.equal(replySymbol(Object.create({ [mine]: 1 }) as object, REPLY_NEXT_ERROR_HANDLER), undefined, 'inherited, not own')
  t.equal(replySymbol({ [mine]: undefined }, REPLY_NEXT_ERROR_HANDLER), mine, 'own, whatever it holds')
  t.equal(replySymbol({ [mine]: 2 }, REPLY_NEXT_ERROR_HANDLER), mine, 'remembered')
  const other = Symbol(REPLY_NEXT_ERROR_HANDLER)
  t.equal(replySymbol({ [other]: 3 }, REPLY_NEXT_ERROR_HANDLER), other, 'another copy of Fastify: its own symbol')
  t.equal(replySymbol({ [mine]: 4 }, REPLY_HEADERS), undefined, 'one entry per description')
})

t.test('holdsReplySymbol: whether the reply holds it, searched for only until it is known', async t => {
  const first = Symbol(REPLY_HEADERS)
  t.equal(holdsReplySymbol({}, REPLY_HEADERS), false, 'unknown and absent: searched, not found')
  t.equal(holdsReplySymbol({ [first]: 1 }, REPLY_HEADERS), true, 'found by description')
  t.equal(holdsReplySymbol({ [first]: undefined }, REPLY_HEADERS), true, 'known: own, whatever it holds')
  t.equal(holdsReplySymbol({ [Symbol(REPLY_HEADERS)]: 1 }, REPLY_HEADERS), false, 'known: a reply of another copy of Fastify answers false')
  t.equal(holdsReplySymbol(Object.create({ [first]: 1 }) as object, REPLY_HEADERS), false, 'inherited, not own')
})

t.test('fastify: every private reply symbol faultline reads is one Fastify sets', async t => {
  const app = Fastify({ logger: false })
  let found: Array<symbol | undefined> = []
  let headers: unknown
  app.setErrorHandler((_err, _req, reply) => {
    found = REPLY_SYMBOLS.map(description => replySymbol(reply, description))
    const key = replySymbol(reply, REPLY_HEADERS)
    headers = key === undefined ? undefined : (reply as unknown as Record<symbol, unknown>)[key]
    reply.code(500).send('handled')
  })
  app.get('/', async (_req, reply) => {
    reply.header('x-app', 'set with reply.header')
    reply.raw.setHeader('x-raw', 'set on the raw response')
    throw new Error('boom')
  })
  t.equal((await app.inject('/')).body, 'handled')
  t.ok(found[REPLY_SYMBOLS.indexOf(REPLY_HEADERS)], moved('replyHeaders'))
  t.ok(found[REPLY_SYMBOLS.indexOf(REPLY_NEXT_ERROR_HANDLER)], moved('nextErrorHandler'))
  t.match(headers, { 'x-app': 'set with reply.header' }, moved('replyHeaders'))
  t.notMatch(headers, { 'x-raw': String }, `${moved('replyHeaders')} (and holds only what reply.header() set: the raw response's headers passed Node's own check)`)
})

t.test('fastify: the next error handler is the parent scope\'s handler object; a handler object without func ends the chain', async t => {
  const app = Fastify({ logger: false })
  const calls: string[] = []
  let next: ChainedErrorHandler | undefined
  app.setErrorHandler(function rootHandler (_err, _req, reply) {
    calls.push('root')
    reply.code(500).send('root')
  })
  await app.register(async child => {
    child.setErrorHandler((_err, request, reply) => {
      calls.push('child')
      const key = replySymbol(reply, REPLY_NEXT_ERROR_HANDLER)
      next = key === undefined ? undefined : (reply as unknown as Record<symbol, ChainedErrorHandler>)[key]
      // What faultlineHttp does before it sends: its own last resort comes next.
      if (request.url === '/ours') {
        handFailuresTo(reply, chainEnd(error => {
          calls.push(`end: ${(error as Error).message}`)
          throw new Error('the last resort failed too')
        }))
      }
      reply.code(500).send('child')
    })
    child.addHook('onSend', async (_req, _reply, payload) => {
      if (payload === 'child') throw new Error('hook failed')
      return payload
    })
    child.get('/fastify', async () => { throw new Error('boom') })
    child.get('/ours', async () => { throw new Error('boom') })
  })
  t.equal((await app.inject('/fastify')).body, 'root')
  t.same(calls, ['child', 'root'], `${moved('nextErrorHandler')} (Fastify's own chain: the hook's error goes to the parent scope's handler)`)
  t.match(next?.func.name, /rootHandler$/, `${moved('nextErrorHandler')} (it holds the parent's handler object)`)
  calls.length = 0
  const res = await app.inject('/ours')
  t.same(calls, ['child', 'end: hook failed'], `${moved('nextErrorHandler')} (the hook's error goes to the handler named there; after one without func, nothing of ours runs)`)
  t.equal(res.statusCode, 500, 'Fastify\'s last resort answered')
})

t.test('@fastify/sse: the per-request context, its serializer, the Transform of stream(), the closed-stream code', async t => {
  const app = Fastify({ logger: false })
  await app.register(fastifySse as unknown as FastifyPluginAsync)
  const checks: Array<[boolean, keyof typeof INTERNALS]> = []
  let formatted: unknown
  let closedCode: unknown
  app.get('/events', { sse: true }, async (_req, reply) => {
    const sse = reply.sse
    checks.push([sse !== undefined && reply.sse === sse, 'sseContext'])
    const context = sse as typeof sse & { serializer?: unknown }
    checks.push([Object.hasOwn(context, 'serializer') && typeof context.serializer === 'function', 'sseContext'])
    context.serializer = (data: unknown) => `guarded ${JSON.stringify(data)}`

    const stream = sse.stream() as Transform & { _transform?: Transform['_transform'] }
    checks.push([stream instanceof Transform && Object.hasOwn(stream, '_transform') && typeof stream._transform === 'function', 'sseTransform'])
    const format = stream._transform!
    // The contract faultline's wrapper keeps: one message in, its formatted event out through the callback.
    await new Promise<void>(resolve => {
      format.call(stream, { id: '1', data: 'x' }, 'utf8', ((err: Error | null | undefined, out: unknown) => {
        checks.push([err === null && out === 'id: 1\ndata: guarded "x"\n\n', 'sseTransform'])
        resolve()
      }) as TransformCallback)
    })
    // The Transform calls its own `_transform`: a replacement sees every chunk.
    stream._transform = function (chunk: unknown, encoding: BufferEncoding, callback: TransformCallback) {
      format.call(this, { data: `checked ${(chunk as { data: string }).data}` }, encoding, callback)
    }
    stream.on('data', (chunk: unknown) => { formatted = String(chunk) })
    stream.write({ data: 'y' })
    stream.end()
    await sse.send({ data: 'z' })
    sse.close()
    try {
      await sse.send({ data: 'late' })
    } catch (err) {
      closedCode = (err as { code?: unknown }).code
    }
  })
  const res = await app.inject({ url: '/events', headers: { accept: 'text/event-stream' } })
  t.equal(res.statusCode, 200)
  for (const [ok, internal] of checks) t.ok(ok, moved(internal))
  t.equal(checks.length, 4, 'every check ran')
  t.equal(formatted, 'data: guarded "checked y"\n\n', moved('sseTransform'))
  t.match(res.body, 'data: guarded "z"\n\n', `${moved('sseContext')} (send() serializes with it)`)
  t.equal(closedCode, 'FST_ERR_SSE_CONNECTION_CLOSED', moved('sseClosed'))
})

t.test('@fastify/sse: methods on the prototype; cleanup() from close() and from its response\'s close and error', async t => {
  const app = Fastify({ logger: false })
  await app.register(fastifySse as unknown as FastifyPluginAsync)
  const cleanups: string[] = []
  let phase = 'handler'
  let opened!: () => void
  const open = new Promise<void>(resolve => { opened = resolve })
  const contexts: Array<{ isConnected: boolean }> = []
  // As faultlineSse does: a prototype between the context and its class.
  function watch (sse: object, name: string): void {
    const base = Object.getPrototypeOf(sse) as Record<string, unknown>
    for (const method of ['send', 'close', 'cleanup']) {
      t.ok(!Object.hasOwn(sse, method) && typeof base[method] === 'function', `${moved('sseCleanup')} (${method})`)
    }
    const cleanup = base.cleanup as () => void
    Object.setPrototypeOf(sse, Object.create(base, {
      cleanup: { value: function (this: object) { cleanups.push(`${name}: ${phase}`); cleanup.call(this) } }
    }))
  }
  app.get('/closed', { sse: true }, async (_req, reply) => {
    watch(reply.sse, 'closed')
    await reply.sse.send({ data: 1 })
    phase = 'close()'
    reply.sse.close()
    phase = 'after'
  })
  app.get('/held', { sse: true }, async (_req, reply) => {
    watch(reply.sse, 'held')
    contexts.push(reply.sse)
    reply.sse.keepAlive()
    await reply.sse.send({ data: 1 })
    opened()
  })
  app.get('/failed', { sse: true }, async (_req, reply) => {
    watch(reply.sse, 'failed')
    reply.sse.keepAlive()
    await reply.sse.send({ data: 1 })
    phase = 'error'
    reply.raw.emit('error', Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }))
    phase = 'after'
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const headers = { accept: 'text/event-stream' }

  await (await fetch(`${base}/closed`, { headers })).text()
  t.same(cleanups.filter(c => c.startsWith('closed')).slice(0, 1), ['closed: close()'], `${moved('sseCleanup')} (close() cleans up at once)`)

  const leaving = new AbortController()
  const held = await fetch(`${base}/held`, { headers, signal: leaving.signal })
  await open
  phase = 'client left'
  leaving.abort()
  await held.text().catch(() => {})
  await until(() => cleanups.includes('held: client left'), 10_000, 'cleanup on close')
  t.ok(cleanups.includes('held: client left'), `${moved('sseCleanup')} (its response's close)`)
  t.equal(contexts[0]!.isConnected, false)

  const failed = new AbortController()
  const res = await fetch(`${base}/failed`, { headers, signal: failed.signal })
  await until(() => cleanups.includes('failed: error'), 10_000, 'cleanup on error')
  t.ok(cleanups.includes('failed: error'), `${moved('sseCleanup')} (its response's error)`)
  failed.abort()
  await res.text().catch(() => {})
})

t.test('@fastify/sse: an sse: \'only\' route refused by the Accept header answers 406 from its own handler, with no reply.sse', async t => {
  const app = Fastify({ logger: false })
  await app.register(fastifySse as unknown as FastifyPluginAsync)
  let marked = false
  let sseAtSend: unknown = 'not seen'
  // As faultlineSse does: a hook added after @fastify/sse's wraps its handler, an onSend hook looks.
  app.addHook('onRoute', routeOptions => {
    if (routeOptions.sse !== 'only') return
    const wrapped = routeOptions.handler
    routeOptions.handler = function (request, reply) {
      marked = true
      return wrapped.call(this, request, reply)
    } as RouteHandlerMethod
  })
  app.addHook('onSend', async (_req, reply, payload) => {
    sseAtSend = (reply as { sse?: unknown }).sse
    return payload
  })
  let ran = false
  app.get('/only', { sse: 'only' }, async () => { ran = true })
  const res = await app.inject({ url: '/only', headers: { accept: 'application/json' } })
  t.equal(res.statusCode, 406, moved('sseRefused'))
  t.ok(marked, `${moved('sseRefused')} (the answer comes from inside the route handler)`)
  t.equal(sseAtSend, undefined, moved('sseRefused'))
  t.notOk(ran, 'the route\'s own handler never ran')
})

t.test('@fastify/websocket and node:http: the upgrade listener it adds, the request\'s upgrade flag', async t => {
  const app = Fastify({ logger: false })
  const before = app.server.listeners('upgrade').length
  await app.register(fastifyWebsocket)
  t.equal(app.server.listeners('upgrade').length, before + 1, moved('wsUpgradeListener'))
  let upgrade: unknown
  app.get('/ws', { websocket: true }, (socket, request) => {
    upgrade = (request.raw as { upgrade?: unknown }).upgrade
    socket.close(1000)
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const ws = new WebSocket(`ws://127.0.0.1:${(app.server.address() as { port: number }).port}/ws`)
  await waitFor(ws, 'close')
  t.equal(upgrade, true, moved('rawUpgrade'))
})

t.test('ws: a socket emits message, pong and close through the emit it finds on itself', async t => {
  const app = Fastify({ logger: false })
  await app.register(fastifyWebsocket)
  const seen: Array<string | symbol> = []
  let ponged = (): void => {}
  const pong = new Promise<void>(resolve => { ponged = resolve })
  const closed = new Promise<void>(resolve => {
    app.get('/ws', { websocket: true }, (socket) => {
      const native = Object.getPrototypeOf(socket) as WebSocket
      Object.setPrototypeOf(socket, Object.create(native, {
        emit: {
          value (this: WebSocket, event: string | symbol, ...args: unknown[]): boolean {
            seen.push(event)
            if (event === 'pong') ponged()
            if (event === 'close') resolve()
            return native.emit.call(this, event, ...args)
          }
        }
      }))
      socket.on('message', () => socket.ping())
    })
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const ws = new WebSocket(`ws://127.0.0.1:${(app.server.address() as { port: number }).port}/ws`)
  await waitFor(ws, 'open')
  ws.send('hi')
  await pong
  ws.close(1000)
  await closed
  t.same(seen.filter(event => ['message', 'pong', 'close'].includes(event as string)), ['message', 'pong', 'close'], moved('wsEmit'))
})

t.test('node:http: the response in flight on a connection is the socket\'s _httpMessage', async t => {
  const app = Fastify({ logger: false })
  const seen: unknown[] = []
  app.get('/', (request, reply) => {
    const socket = request.raw.socket as typeof request.raw.socket & { _httpMessage?: { headersSent?: unknown } | null }
    seen.push(socket._httpMessage === reply.raw, socket._httpMessage?.headersSent)
    reply.raw.writeHead(200, { 'content-type': 'text/plain' })
    seen.push(socket._httpMessage?.headersSent)
    reply.hijack()
    reply.raw.end('ok')
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const res = await fetch(`http://127.0.0.1:${(app.server.address() as { port: number }).port}/`)
  t.equal(await res.text(), 'ok')
  t.same(seen, [true, false, true], moved('socketResponse'))
})
