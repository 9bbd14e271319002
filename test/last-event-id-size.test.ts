// A 1 MiB `Last-Event-ID` (issue 21, item 8) on an SSE route and on a
// resumable ndjson route. With Node's default header limit (16 KiB) the
// request never reaches a handler: Node's parser refuses it and Fastify's
// client error handler answers 431, and the server goes on serving. With
// the limit raised (`http: { maxHeaderSize }`), faultline's own use of the
// header (the SSE terminal check, handing it to an ndjson source) is linear:
// the route gets the whole value, a terminal one is answered 204, a fault
// on such a request is reported once with a log line that does not carry it.
import t, { type Test } from 'tap'
import { connect as netConnect } from 'node:net'
import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { request } from 'undici'
import { faultlineHttp, faultlineSse, faultlineStream, BadGatewayError, type Fault } from '../index.js'
import { guardProcess } from './helpers/guard.js'
import { captureLogs } from './helpers/logs.js'
import { parseEvents } from './helpers/sse-client.js'
import { waitFor, WAIT_MS } from './helpers/ws-client.js'

guardProcess(t)

const MiB = 1024 * 1024
const HUGE = 'a'.repeat(MiB)

interface App { app: FastifyInstance, base: string, reported: Fault[], logs: ReturnType<typeof captureLogs>, seenIds: number[] }

async function build (t: Test, server: FastifyServerOptions = {}): Promise<App> {
  const logs = captureLogs()
  const reported: Fault[] = []
  const seenIds: number[] = []
  const app = Fastify({ logger: { level: 'debug', stream: logs.stream }, forceCloseConnections: true, ...server })
  await app.register(faultlineHttp, { onFault: fault => { reported.push(fault) } })
  await app.register(faultlineSse)
  await app.register(faultlineStream)
  app.get('/events', { sse: true }, async (_request, reply) => {
    seenIds.push(String(reply.sse.lastEventId).length)
    await reply.sse.send({ data: String(reply.sse.lastEventId).length })
  })
  app.get('/records', async (_request, reply) => reply.streamSafe(async function * (_signal, { lastEventId }) {
    seenIds.push(lastEventId?.length ?? 0)
    yield { n: lastEventId?.length ?? 0 }
    throw new BadGatewayError('upstream broke')
  }, { framing: 'ndjson', id: (record: { n: number }) => String(record.n) }))
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return { app, base, reported, logs, seenIds }
}

/** A GET with a Last-Event-ID written over a raw socket; resolves with the whole answer once the server closed. */
async function rawGet (app: FastifyInstance, path: string, lastEventId: string): Promise<string> {
  const { port } = app.server.address() as AddressInfo
  const socket = netConnect(port, '127.0.0.1')
  // The server may answer (and close) before it has read the whole request.
  socket.on('error', () => {})
  const chunks: Buffer[] = []
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  await waitFor(socket, 'connect')
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nConnection: close\r\nLast-Event-ID: ${lastEventId}\r\n\r\n`)
  await waitFor(socket, 'close', WAIT_MS)
  return Buffer.concat(chunks).toString('latin1')
}

t.test('Node\'s default header limit: 431 before any handler runs, and the server goes on', async t => {
  const { app, base, reported, seenIds } = await build(t)
  for (const path of ['/events', '/records']) {
    const answer = await rawGet(app, path, HUGE)
    t.match(answer, /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/, `${path}: 431`)
    t.match(answer, /"statusCode":431/, `${path}: Fastify's client error body`)
  }
  t.same(seenIds, [], 'no handler ran')
  t.same(reported, [], 'nothing to report: no request was made')
  const res = await request(base + '/events', { headers: { accept: 'text/event-stream', 'last-event-id': '7' } })
  t.same(parseEvents(await res.body.text()).events.map(e => e.data), ['1'], 'the next request is served')
})

t.test('a raised limit: the whole value reaches the route, a terminal one gets 204, a fault is reported once without it', async t => {
  const { base, reported, logs, seenIds } = await build(t, { http: { maxHeaderSize: 4 * MiB } } as FastifyServerOptions)
  const sse = await request(base + '/events', { headers: { accept: 'text/event-stream', 'last-event-id': HUGE } })
  t.equal(sse.statusCode, 200)
  t.same(parseEvents(await sse.body.text()).events.map(e => e.data), [String(MiB)], 'SSE: the route saw all of it')

  const terminal = await request(base + '/events', { headers: { accept: 'text/event-stream', 'last-event-id': 'faultline-terminal:' + HUGE } })
  t.equal(terminal.statusCode, 204, 'SSE: a terminal id, however long, is answered 204')
  await terminal.body.dump()

  const ndjson = await request(base + '/records', { headers: { 'last-event-id': HUGE } })
  t.equal(ndjson.statusCode, 200)
  const lines = (await ndjson.body.text()).split('\n').filter(line => line !== '')
  t.same(lines.map(line => JSON.parse(line).type), ['data', 'error'], 'ndjson: the source saw it, the fault is an error record')
  t.equal(JSON.parse(lines[0]!).data.n, MiB)
  t.same(seenIds, [MiB, MiB], 'each route got the whole value')
  t.same(reported.map(f => f.code), ['BAD_GATEWAY'], 'reported once')
  const longest = Math.max(...logs.lines.map(line => JSON.stringify(line).length))
  t.ok(longest < 64 * 1024, `no log line carries the header (longest ${longest} characters)`)
})
