// A failure while the client has stopped reading: the framed ending (the
// ndjson error record, the SSE error event) cannot leave, and `end()` would
// wait for good. It is cut after the truncation grace, as raw truncation is,
// and reported once. Real clients over loopback that stop reading.
import t from 'tap'
import { EventEmitter } from 'node:events'
import type { ServerResponse } from 'node:http'
import http2 from 'node:http2'
import net from 'node:net'
import { Readable } from 'node:stream'
import Fastify, { type FastifyReply } from 'fastify'
import { faultlineHttp, faultlineStream, ServiceUnavailableError } from '../index.js'
import { cutIfStuck } from '../lib/truncate.js'
import type { RawResponse } from '../lib/h2-response.js'
import { guardProcess } from './helpers/guard.js'
import { streamApp, waitFor } from './helpers/stream-app.js'
import { buildSseApp } from './helpers/sse-app.js'
import { listen } from './helpers/sse-client.js'
import { within } from './helpers/within.js'

guardProcess(t)

const BIG = 'y'.repeat(64 * 1024)

/** A source that fills any socket, and a way to break it from the test. */
function endless (): Readable {
  return new Readable({ read () { this.push(BIG) } })
}

/** A raw HTTP/1.1 client that reads the headers, then stops reading. */
function stalled (url: string, path: string, headers = ''): { socket: net.Socket, text: () => string } {
  const { hostname, port } = new URL(url)
  const socket = net.connect(Number(port), hostname)
  let text = ''
  socket.on('error', () => {})
  socket.write(`GET ${path} HTTP/1.1\r\nHost: ${hostname}\r\n${headers}\r\n`)
  socket.once('data', chunk => {
    text += chunk.toString('latin1')
    socket.pause()
    socket.on('data', more => { text += more.toString('latin1') })
  })
  return { socket, text: () => text }
}

t.test('ndjson: a failure with a full socket is cut after the grace, reported once', async t => {
  let source: Readable | undefined
  let raw: ServerResponse | undefined
  const s = await streamApp(t, app => {
    app.get('/nd', async (request, reply) => {
      source = endless()
      raw = reply.raw as ServerResponse
      return reply.streamSafe(source, { framing: 'ndjson' })
    })
  })
  const client = stalled(s.url, '/nd')
  t.teardown(() => client.socket.destroy())
  await waitFor(() => raw !== undefined && raw.writableNeedDrain && source!.isPaused(), 'the pump to wait for a drain', 20_000)
  const closed = new Promise(resolve => raw!.once('close', resolve))
  source!.destroy(new Error('upstream broke'))
  await within(t, closed, 'the stuck response to be cut', 20_000)
  t.ok(raw!.socket === null || raw!.socket.destroyed, 'the connection is destroyed')
  t.same(s.reports.map(r => [r.fault.status, r.context.phase]), [[500, 'mid-stream']], 'reported once, as the failure it is')
  // The client reads again: what the server had handed to the OS, then the end of the connection.
  client.socket.resume()
  await new Promise(resolve => client.socket.once('close', resolve))
  t.notOk(client.text().endsWith('0\r\n\r\n'), 'no terminating chunk: the body is incomplete')
  t.same(s.lines.filter(l => l.level >= 40 && l.fault === undefined).map(l => l.msg), [], 'nothing else logged at warn or above')
})

t.test('SSE: a fault with a full socket is cut after the grace, reported once', async t => {
  guardProcess(t)
  const { app, seen } = await buildSseApp(t)
  let raw: FastifyReply['raw'] | undefined
  let fail: (() => void) | undefined
  app.get('/events', { sse: true }, async (request, reply) => {
    raw = reply.raw
    const source = new Readable({ objectMode: true, read () { this.push({ data: BIG }) } })
    reply.sse.send(source).catch(() => {})
    await new Promise<void>(resolve => { fail = resolve })
    throw new ServiceUnavailableError('feed lost')
  })
  const base = await listen(app)
  const client = stalled(base, '/events', 'Accept: text/event-stream\r\n')
  t.teardown(() => client.socket.destroy())
  await waitFor(() => raw !== undefined && raw.writableNeedDrain && fail !== undefined, 'the stream to wait for a drain', 20_000)
  const closed = new Promise(resolve => raw!.once('close', resolve))
  fail!()
  await within(t, closed, 'the stuck response to be cut', 20_000)
  t.ok(raw!.destroyed, 'the response is destroyed')
  t.same(seen.map(s => [s.fault.code, s.context.phase]), [['SERVICE_UNAVAILABLE', 'mid-stream']], 'reported once')
  t.equal(app.faultline.sse.open, 0)
})

t.test('HTTP/2 ndjson: a failure with a full stream window is reset (INTERNAL_ERROR) after the grace', async t => {
  const app = Fastify({ http2: true, forceCloseConnections: true })
  const reports: string[] = []
  await app.register(faultlineHttp, { onFault: fault => { reports.push(fault.code) } })
  await app.register(faultlineStream)
  let source: Readable | undefined
  let raw: { once: (event: 'close', listener: () => void) => unknown } | undefined
  app.get('/nd', async (request, reply) => {
    source = endless()
    raw = reply.raw
    return reply.streamSafe(source, { framing: 'ndjson' })
  })
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const session = http2.connect(url)
  t.teardown(() => session.destroy())
  const stream = session.request({ ':path': '/nd' })
  stream.on('error', () => {})
  await new Promise(resolve => stream.once('response', resolve))
  stream.pause()
  await waitFor(() => source !== undefined && source.isPaused(), 'the pump to wait for a drain', 20_000)
  const closed = new Promise<void>(resolve => raw!.once('close', () => resolve()))
  source!.destroy(new Error('upstream broke'))
  await within(t, closed, 'the stuck stream to be reset', 20_000)
  const rstCode = await new Promise(resolve => {
    stream.once('close', () => resolve(stream.rstCode))
    stream.resume()
  })
  t.equal(rstCode, http2.constants.NGHTTP2_INTERNAL_ERROR, 'reset, never a clean end')
  t.same(reports, ['INTERNAL'])
})

/** A stand-in for a response and its socket: the guard reads the queue's size and watches `finish` / `close`. */
function fakeResponse (queued: number, state: { finished?: boolean, socket?: null } = {}): EventEmitter & { socket: { writableLength: number, destroyed: boolean } | null, writableFinished: boolean, destroyed: boolean } {
  const res = Object.assign(new EventEmitter(), {
    socket: state.socket === null ? null : { writableLength: queued, destroyed: false },
    writableFinished: state.finished === true,
    destroyed: false,
    destroy () { res.destroyed = true }
  })
  return res
}

const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

t.test('cutIfStuck: waits while the queue moves, cuts once it stops; leaves ended and gone responses alone', async t => {
  const moving = fakeResponse(1000)
  cutIfStuck(moving as unknown as RawResponse, 200)
  for (let i = 0; i < 10; i++) {
    await sleep(40)
    moving.socket!.writableLength -= 50 // a slow client: some bytes leave in every grace window
  }
  t.notOk(moving.destroyed, 'a queue that moves is waited for, past several graces')
  await within(t, new Promise<void>(resolve => { const poll = setInterval(() => { if (moving.destroyed) { clearInterval(poll); resolve() } }, 10) }), 'the cut')
  t.pass('cut once the queue stopped moving for a grace')

  const finishing = fakeResponse(1000)
  cutIfStuck(finishing as unknown as RawResponse, 20)
  finishing.emit('finish')
  const closing = fakeResponse(1000)
  cutIfStuck(closing as unknown as RawResponse, 20)
  closing.emit('close')
  const finished = fakeResponse(0, { finished: true })
  cutIfStuck(finished as unknown as RawResponse, 1)
  const detached = fakeResponse(0, { socket: null })
  cutIfStuck(detached as unknown as RawResponse, 1)
  const gone = fakeResponse(10)
  gone.socket!.destroyed = true
  cutIfStuck(gone as unknown as RawResponse, 1)
  await sleep(60)
  t.same([finishing, closing, finished, detached, gone].map(r => r.destroyed), [false, false, false, false, false], 'finished, closed, ended or gone: nothing to cut')
  t.same([finishing, closing].map(r => r.listenerCount('finish') + r.listenerCount('close')), [0, 0], 'the guard removes its listeners')
})
