import t from 'tap'
import { connect, type Socket } from 'node:net'
import { Readable } from 'node:stream'
import type { FastifyReply } from 'fastify'
import { guardProcess } from './helpers/guard.js'
import { buildSseApp } from './helpers/sse-app.js'
import { listen, parseEvents, until } from './helpers/sse-client.js'
import { ServerShutdownError } from '../index.js'

/** A raw HTTP/1.1 client: opens an SSE request and collects what arrives; `read: false` never reads. */
function openRaw (base: string, path: string, read = true): { socket: Socket, text: () => string, ended: Promise<void> } {
  const url = new URL(base)
  const socket = connect(Number(url.port), url.hostname)
  let text = ''
  socket.write(`GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\nAccept: text/event-stream\r\n\r\n`)
  if (read) socket.on('data', chunk => { text += chunk.toString() })
  else socket.pause()
  const ended = new Promise<void>(resolve => socket.once('close', () => resolve()))
  socket.on('error', () => {})
  return { socket, text: () => text, ended }
}

t.test('client disconnect: stream released, heartbeat cleared, a client abort at debug', async t => {
  guardProcess(t)
  const { app, seen, logs } = await buildSseApp(t, { sse: { heartbeatInterval: 5 } })
  let sse: FastifyReply['sse'] | undefined
  app.get('/events', { sse: true }, async (request, reply) => {
    sse = reply.sse
    async function * ticks () {
      yield { data: 'first' }
      // Busy in an await: return() is queued behind it (the next test shows finally running).
      await new Promise(() => {})
    }
    await reply.sse.send(ticks())
  })
  const base = await listen(app)
  const client = openRaw(base, '/events')
  await until(() => client.text().includes('data: "first"'), 10_000, 'the first event')
  t.equal(app.faultline.sse.open, 1)
  client.socket.destroy()
  await until(() => app.faultline.sse.open === 0, 10_000, 'the stream to be released')
  t.equal((sse as unknown as { heartbeatTimer: unknown }).heartbeatTimer, null, 'heartbeat cleared')
  t.same(seen.map(s => [s.fault.code, s.context.transport, s.context.phase]), [['CLIENT_CLOSED', 'sse', 'mid-stream']])
  const line = logs.faults().find(l => (l.fault as { code: string }).code === 'CLIENT_CLOSED')
  t.equal(line?.level, 20, 'logged at debug')
})

t.test('client disconnect while the generator waits between events: its finally runs', async t => {
  guardProcess(t)
  const { app, seen } = await buildSseApp(t)
  let finallyRan = false
  let resume: (() => void) | undefined
  app.get('/events', { sse: true }, async (request, reply) => {
    async function * ticks () {
      try {
        yield { data: 'first' }
        yield { data: 'second' }
        await new Promise<void>(resolve => { resume = resolve })
        yield { data: 'never' }
      } finally {
        finallyRan = true
      }
    }
    await reply.sse.send(ticks())
  })
  const base = await listen(app)
  const client = openRaw(base, '/events')
  await until(() => client.text().includes('data: "second"') && resume !== undefined, 10_000, 'two events')
  client.socket.destroy()
  await until(() => app.faultline.sse.open === 0, 10_000, 'release')
  resume!()
  await until(() => finallyRan, 10_000, 'the generator finally')
  t.ok(finallyRan)
  t.same(seen.map(s => s.fault.code), ['CLIENT_CLOSED'])
})

t.test('client disconnect while a write waits for drain: the source is still returned (no producer leak)', async t => {
  guardProcess(t)
  const { app, logs } = await buildSseApp(t)
  let finallyRan = false
  let produced = 0
  let raw: FastifyReply['raw'] | undefined
  const big = 'x'.repeat(64 * 1024)
  app.get('/events', { sse: true }, async (request, reply) => {
    raw = reply.raw
    async function * flood () {
      try {
        for (let i = 0; i < 100_000; i++) {
          produced++
          yield { data: big }
        }
      } finally {
        finallyRan = true
      }
    }
    await reply.sse.send(flood())
  })
  const base = await listen(app)
  const client = openRaw(base, '/events', false)
  await until(() => raw !== undefined && raw.writableNeedDrain, 20_000, 'the server to wait for drain')
  const before = produced
  client.socket.destroy()
  await until(() => finallyRan, 20_000, 'the generator finally')
  t.ok(finallyRan)
  t.ok(produced <= before + 1, 'stopped producing')
  t.notOk(logs.lines.some(l => l.level >= 30 && /SSE|stream/i.test(String(l.msg))), 'the disconnect is logged at debug only')
  t.equal(app.faultline.sse.open, 0)
})

t.test('disconnect with custom iterators: return() missing, throwing or rejecting', async t => {
  guardProcess(t)
  const { app, seen } = await buildSseApp(t)
  const kinds = ['none', 'throws', 'rejects'] as const
  app.get('/events/:kind', { sse: true }, async (request, reply) => {
    const kind = (request.params as { kind: typeof kinds[number] }).kind
    let first = true
    const iterator: AsyncIterator<unknown> = {
      async next () {
        if (first) { first = false; return { done: false, value: { data: 'only' } } }
        return await new Promise<IteratorResult<unknown>>(() => {})
      }
    }
    if (kind === 'throws') iterator.return = () => { throw new Error('return threw') }
    if (kind === 'rejects') iterator.return = async () => { throw new Error('return rejected') }
    await reply.sse.send({ [Symbol.asyncIterator]: () => iterator } as unknown as AsyncIterable<string>)
  })
  const base = await listen(app)
  for (const kind of kinds) {
    seen.length = 0
    const client = openRaw(base, '/events/' + kind)
    await until(() => client.text().includes('data: "only"'), 10_000, 'the event')
    client.socket.destroy()
    await until(() => seen.length === (kind === 'none' ? 1 : 2), 10_000, 'reports')
    t.equal(seen[0]!.fault.code, 'CLIENT_CLOSED', kind)
    if (kind !== 'none') t.match(seen[1], { fault: { code: 'INTERNAL' }, context: { transport: 'sse', phase: 'mid-stream' } }, kind)
  }
  t.equal(app.faultline.sse.open, 0)
})

t.test('client disconnect before the first event: a client abort before the response', async t => {
  guardProcess(t)
  const { app, seen } = await buildSseApp(t)
  let release: (() => void) | undefined
  app.get('/events', { sse: true }, async (request, reply) => {
    await new Promise<void>(resolve => { release = resolve })
    await reply.sse.send({ data: 'late' }).catch(() => {})
  })
  const base = await listen(app)
  const client = openRaw(base, '/events')
  await until(() => release !== undefined, 10_000, 'the handler')
  client.socket.destroy()
  await until(() => seen.length === 1, 10_000, 'the report')
  t.same(seen.map(s => [s.fault.code, s.context.phase]), [['CLIENT_CLOSED', 'before-response']])
  release!()
  t.equal(app.faultline.sse.open, 0)
})

t.test('fastify.close(): every open stream gets a retryable 503 event and ends; close finishes', async t => {
  guardProcess(t)
  // Default forceCloseConnections: the server itself waits for the sockets.
  const { app, seen } = await buildSseApp(t, {}, { forceCloseConnections: 'idle' })
  let waiting: (() => void) | undefined
  app.get('/events', { sse: true }, async (request, reply) => {
    reply.sse.keepAlive()
    await reply.sse.send({ id: '1', data: 'open' })
  })
  app.get('/iterating', { sse: true }, async (request, reply) => {
    async function * slow () {
      yield { data: 'tick' }
      await new Promise<void>(resolve => { waiting = resolve })
    }
    await reply.sse.send(slow())
  })
  app.get('/pending', { sse: true }, async (request, reply) => {
    await new Promise(resolve => setTimeout(resolve, 50))
    await reply.sse.send({ data: 'never' }).catch(() => {})
  })
  app.get('/ending', { sse: true }, async (request, reply) => {
    await reply.sse.send({ data: 'done' })
  })
  const base = await listen(app)
  const a = openRaw(base, '/events')
  const b = openRaw(base, '/events')
  const c = openRaw(base, '/iterating')
  await until(() => a.text().includes('data: "open"') && b.text().includes('data: "open"') && c.text().includes('tick'), 10_000, 'the streams')
  t.equal(app.faultline.sse.open, 3)
  await app.close()
  await Promise.all([a.ended, b.ended, c.ended])
  for (const client of [a, b, c]) {
    const body = client.text().slice(client.text().indexOf('\r\n\r\n') + 4)
    const { events, retry } = parseEvents(body.replace(/\r\n[0-9a-f]+\r\n/g, '').replace(/^[0-9a-f]+\r\n/, ''))
    const last = events.at(-1)!
    t.equal(last.event, 'error')
    t.equal(last.id, undefined, 'not terminal')
    t.match(JSON.parse(last.data), { status: 503, code: 'SERVER_SHUTDOWN', title: 'Server Shutting Down' })
    t.same(retry, [3000])
  }
  waiting?.()
  t.equal(seen.filter(s => s.fault instanceof ServerShutdownError && s.fault.retryable && s.context.reason === 'shutdown' && s.context.level === 'info' && s.context.transport === 'sse').length, 3)
  t.equal(app.faultline.sse.open, 0)
})

t.test('fastify.close() with a stream still before its first event, and one already ending', async t => {
  guardProcess(t)
  const { app, seen } = await buildSseApp(t)
  let started: (() => void) | undefined
  let release: (() => void) | undefined
  app.get('/pending', { sse: true }, async (request, reply) => {
    await new Promise<void>(resolve => { release = resolve; started?.() })
    await reply.sse.send({ data: 'never' }).catch(() => {})
  })
  const base = await listen(app)
  const res = fetch(base + '/pending', { headers: { accept: 'text/event-stream' } })
  await new Promise<void>(resolve => { started = resolve })
  await app.close()
  const answer = await res
  t.equal(answer.status, 503)
  t.match(await answer.json(), { status: 503, code: 'SERVER_SHUTDOWN' })
  release!()
  t.same(seen.map(s => [s.fault.code, s.context.phase, s.context.reason]), [['SERVER_SHUTDOWN', 'before-response', 'shutdown']])
})

t.test('fastify.close() with a client that never reads: cut after closeTimeout', async t => {
  guardProcess(t)
  const { app } = await buildSseApp(t, { closeTimeout: 200 }, { forceCloseConnections: 'idle' })
  let raw: FastifyReply['raw'] | undefined
  const big = 'y'.repeat(64 * 1024)
  app.get('/events', { sse: true }, async (request, reply) => {
    raw = reply.raw
    reply.sse.keepAlive()
    // A Readable that fills the socket until the server waits for drain.
    const source = new Readable({
      objectMode: true,
      read () { this.push({ data: big }) }
    })
    reply.sse.send(source)
  })
  const base = await listen(app)
  const client = openRaw(base, '/events', false)
  await until(() => raw !== undefined && raw.writableNeedDrain, 20_000, 'backpressure')
  await app.close()
  t.ok(raw!.destroyed, 'the stuck response was destroyed')
  client.socket.destroy()
})

t.test('fastify.close() with no open streams', async t => {
  guardProcess(t)
  const { app, seen } = await buildSseApp(t)
  app.get('/events', { sse: true }, async (request, reply) => { await reply.sse.send({ data: 'x' }) })
  await app.inject({ url: '/events', headers: { accept: 'text/event-stream' } })
  await until(() => app.faultline.sse.open === 0, 10_000, 'the injected stream to be released')
  await app.close()
  t.same(seen, [], 'nothing to end, nothing reported')
})
