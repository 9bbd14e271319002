// The SSE lifecycle (lib/sse-session.ts) through fakes: a response, a
// channel standing in for @fastify/sse's reply.sse, and a host that records
// reports. The plugin's own tests cover it end to end over real sockets.
import t from 'tap'
import { EventEmitter } from 'node:events'
import { Readable } from 'node:stream'
import { SseSession, SseSessions, type SseHost, type SseChannel } from '../lib/sse-session.js'
import { sseMessage } from '../lib/sse-event.js'
import { toFault, ConflictError, ForbiddenError, ServiceUnavailableError, type Fault } from '../index.js'
import type { Phase } from '../lib/report.js'
import { guardProcess } from './helpers/guard.js'

guardProcess(t)

class FakeResponse extends EventEmitter {
  headersSent = false
  writableEnded = false
  destroyed = false
  written: string[] = []
  write (chunk: string): boolean {
    this.headersSent = true
    this.written.push(chunk)
    return true
  }

  end (): void {
    if (this.writableEnded) return
    this.writableEnded = true
    setImmediate(() => this.emit('close'))
  }

  destroy (): void {
    this.destroyed = true
    this.emit('close')
  }
}

function closedError (): Error {
  return Object.assign(new Error('SSE connection is closed'), { code: 'FST_ERR_SSE_CONNECTION_CLOSED' })
}

class FakeChannel implements SseChannel {
  isConnected = true
  closed = 0
  constructor (private readonly response: FakeResponse) {}
  async send (source: unknown): Promise<void> {
    if (!this.isConnected) throw closedError()
    if (typeof source === 'object' && source !== null && Symbol.asyncIterator in source) {
      for await (const item of source as AsyncIterable<unknown>) {
        if (!this.isConnected) break
        this.response.write(`data: ${JSON.stringify(item)}\n\n`)
      }
      return
    }
    if (typeof source === 'object' && source !== null && 'data' in source) {
      this.response.write(`data: ${JSON.stringify((source as { data: unknown }).data)}\n\n`)
      return
    }
    throw new TypeError('Invalid SSE source type')
  }

  sendHeaders (): void { this.response.headersSent = true }
  close (): void {
    this.closed++
    if (!this.isConnected) return
    this.isConnected = false
    if (this.response.headersSent) this.response.end()
  }
}

/** A stream as the host knows it: its response and channel, and here the records of its reports. */
interface Stream {
  raw: FakeResponse
  sse: FakeChannel
  reports: Array<[string, Phase, Record<string, unknown> | undefined]>
  before: Fault[]
  guarded: number
}

/** One host for every stream, as the plugin has it: each call names its stream. */
const host: SseHost<Stream> = {
  send (channel, source) { return (channel as FakeChannel).send(source) },
  report (stream, err, phase, extra) { const fault = toFault(err); stream.reports.push([fault.code, phase, extra]); return fault },
  failBefore (stream, fault) { stream.before.push(fault) },
  errorEvent (_stream, fault, final) { return `event: error\ndata: ${fault.code}${final ? ' final' : ''}\n\n` },
  message: sseMessage,
  cutIfStuck (stream) { stream.guarded++ }
}

interface Harness {
  session: SseSession<Stream>
  sessions: SseSessions<Stream>
  response: FakeResponse
  channel: FakeChannel
  reports: Stream['reports']
  before: Fault[]
  /** Ends guarded against a client that stopped reading. */
  guarded: () => number
}

function harness (sessions = new SseSessions(host)): Harness {
  const response = new FakeResponse()
  const channel = new FakeChannel(response)
  const stream: Stream = { raw: response, sse: channel, reports: [], before: [], guarded: 0 }
  const session = new SseSession(sessions, stream)
  // The host tells the session when its response closes.
  response.on('close', () => session.closed())
  return { session, sessions, response, channel, reports: stream.reports, before: stream.before, guarded: () => stream.guarded }
}

t.test('a fault before the first event goes to the host\'s error path, once', async t => {
  const h = harness()
  t.equal(h.sessions.open.size, 1)
  const fault = h.session.end(new ForbiddenError('no'))
  t.equal(fault.code, 'FORBIDDEN')
  t.same(h.before.map(f => f.code), ['FORBIDDEN'])
  t.same(h.reports.map(r => r.slice(0, 2)), [['FORBIDDEN', 'before-response']])
  t.equal(h.channel.isConnected, false, 'later sends fail as on a closed stream')
  t.same(h.response.written, [])
  t.equal(h.sessions.open.size, 0)
  t.ok(h.session.done)
  // A late throw of the handler is reported, never written.
  h.session.handlerFailed(new ConflictError('late'))
  t.same(h.reports.map(r => r.slice(0, 2)), [['FORBIDDEN', 'before-response'], ['CONFLICT', 'mid-stream']])
  await t.rejects(h.session.send({ data: 'x' }), { code: 'FST_ERR_SSE_CONNECTION_CLOSED' }, 'a send after the end rejects as closed')
})

t.test('after the first event: the final error event, then the end', async t => {
  const h = harness()
  await h.session.send({ data: 1 })
  h.session.handlerFailed(new ServiceUnavailableError('busy'))
  t.same(h.response.written, ['data: 1\n\n', 'event: error\ndata: SERVICE_UNAVAILABLE final\n\n'])
  t.ok(h.response.writableEnded)
  t.equal(h.guarded(), 1, 'the end is guarded against a client that does not read')
  t.same(h.reports.map(r => r.slice(0, 2)), [['SERVICE_UNAVAILABLE', 'mid-stream']])
  t.same(h.before, [])
  // Ending twice writes nothing more.
  h.session.end(new Error('again'))
  t.equal(h.response.written.length, 2)
})

t.test('fault(): a non-fatal event goes on; close ends; after the end it only reports', async t => {
  const h = harness()
  h.session.fault(new ConflictError('item 1'))
  t.same(h.response.written, ['event: error\ndata: CONFLICT\n\n'])
  t.notOk(h.session.done)
  h.session.fault(new ForbiddenError('revoked'), { close: true })
  t.same(h.response.written.at(-1), 'event: error\ndata: FORBIDDEN final\n\n')
  h.session.fault(new ConflictError('after'))
  h.session.fault(new ConflictError('after, closing'), { close: true })
  t.equal(h.response.written.length, 2)
  t.same(h.reports.map(r => r[0]), ['CONFLICT', 'FORBIDDEN', 'CONFLICT', 'CONFLICT'])

  const gone = harness()
  gone.channel.isConnected = false
  gone.session.fault(new ConflictError('nobody listens'))
  t.same(gone.response.written, [], 'a disconnected channel gets no event')
  t.same(gone.reports.map(r => r[0]), ['CONFLICT'])
})

t.test('a failing iterable ends the stream and the send resolves', async t => {
  const h = harness()
  async function * source (): AsyncGenerator<number> {
    yield 1
    throw new ForbiddenError('revoked')
  }
  await h.session.send(source())
  t.same(h.response.written, ['data: 1\n\n', 'event: error\ndata: FORBIDDEN final\n\n'])
  t.same(h.reports.map(r => r[0]), ['FORBIDDEN'])
})

t.test('a send that throws synchronously or fails for a message is a fault like any other', async t => {
  const h = harness()
  await h.session.send(42)
  t.same(h.before.map(f => f.code), ['INTERNAL'], 'not a source: a fault before the first event')
  const hostile = harness()
  await hostile.session.send({ [Symbol.asyncIterator] () { throw new Error('no iterator') } })
  t.same(hostile.before.map(f => f.code), ['INTERNAL'])
})

t.test('the client leaves: a client abort, the source returned, pending sends released', async t => {
  const h = harness()
  let returned = false
  let pulled = 0
  const source = {
    [Symbol.asyncIterator] () { return this },
    async next () {
      if (pulled++ === 0) return { done: false, value: 'first' }
      return await new Promise<IteratorResult<string>>(() => {})
    },
    async return () { returned = true; return { done: true, value: undefined } }
  }
  const sent = h.session.send(source)
  await new Promise(resolve => setImmediate(resolve))
  t.same(h.response.written, ['data: "first"\n\n'])
  h.response.emit('close')
  await sent
  t.ok(returned, 'return() called on the source')
  t.same(h.reports.map(r => r.slice(0, 2)), [['CLIENT_CLOSED', 'mid-stream']])
  t.equal(h.sessions.open.size, 0)

  const early = harness()
  early.response.emit('close')
  t.same(early.reports.map(r => r.slice(0, 2)), [['CLIENT_CLOSED', 'before-response']])

  const ended = harness()
  await ended.session.send({ data: 1 })
  ended.response.end()
  ended.response.emit('close')
  t.same(ended.reports, [], 'a response that ended normally is no abort')
})

t.test('a return() that throws or rejects after the end is reported, not thrown', async t => {
  for (const kind of ['throws', 'rejects']) {
    const h = harness()
    const source = {
      [Symbol.asyncIterator] () { return this },
      async next () { return await new Promise<IteratorResult<string>>(() => {}) },
      return () {
        if (kind === 'throws') throw new ConflictError('return threw')
        return Promise.reject(new ConflictError('return rejected'))
      }
    }
    const sent = h.session.send(source)
    h.response.emit('close')
    await sent
    await new Promise(resolve => setImmediate(resolve))
    t.same(h.reports.map(r => r[0]), ['CLIENT_CLOSED', 'CONFLICT'], kind)
  }
})

t.test('a Readable commits the headers at once', async t => {
  const h = harness()
  const readable = Readable.from([{ data: 1 }])
  const sent = h.session.send(readable)
  t.ok(h.response.headersSent)
  await sent
})

t.test('shutdown: a 503 to every open stream, then the ones that do not close are destroyed', async t => {
  const sessions = new SseSessions(host)
  const writing = harness(sessions)
  await writing.session.send({ data: 1 })
  const fresh = harness(sessions)
  const ended = harness(sessions)
  await ended.session.send({ data: 1 })
  ended.response.writableEnded = true
  // A response that never closes by itself (the client does not read).
  writing.response.end = function () { this.writableEnded = true }
  await sessions.shutdown(20)
  t.match(writing.reports, [['SERVER_SHUTDOWN', 'mid-stream', { reason: 'shutdown', level: 'info' }]])
  t.equal(writing.reports.length, 1, 'reported once')
  t.ok(writing.response.destroyed, 'cut after closeTimeout')
  t.same(fresh.before.map(f => f.code), ['SERVER_SHUTDOWN'], 'no event yet: the error path')
  t.same(ended.reports, [], 'an ending response only flushes')
  await new SseSessions(host).shutdown(20)
  t.pass('nothing open: resolves at once')
})

t.test('a source whose next() answers plain results, or throws, as for await allows', async t => {
  const h = harness()
  let n = 0
  const plain = {
    [Symbol.asyncIterator] () { return this },
    next (): IteratorResult<{ data: number }> { return n < 2 ? { done: false, value: { data: n++ } } : { done: true, value: undefined } }
  }
  await h.session.send(plain)
  t.same(h.response.written, ['data: {"data":0}\n\n', 'data: {"data":1}\n\n'], 'each message sent as the host checked it')

  const failing = harness()
  await failing.session.send({
    [Symbol.asyncIterator] () { return this },
    next () { throw new ConflictError('next threw') }
  })
  t.same(failing.reports.map(r => r[0]), ['CONFLICT'], 'a next() that throws is the source failing')
})
