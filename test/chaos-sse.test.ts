// Chaos: thousands of SSE clients leave at random byte offsets (inside the
// request, in the headers, mid-event; FIN or RST), from a feed that sends
// events and, sometimes, fails mid-way. Every producer must be stopped
// (`return()` reaches the generator), no stream stays open, heartbeats are
// cleared, no unhandled rejection, sockets and timers back to the baseline.
import t from 'tap'
import type { AddressInfo, Socket } from 'node:net'
import { Readable } from 'node:stream'
import { guardProcess } from './helpers/guard.js'
import { buildSseApp } from './helpers/sse-app.js'
import {
  CHAOS_SIZE, aboveBaseline, leaveAt, prng, randomCut, resources, runAll, settle, stallAt
} from './helpers/chaos-client.js'
import { ServiceUnavailableError } from '../index.js'

guardProcess(t)

const EVENTS = 200
const DATA = 'y'.repeat(1024)

t.test(`${CHAOS_SIZE} SSE feeds, each left at a random byte`, async t => {
  const seed = Number(process.env.FAULTLINE_CHAOS_SEED ?? Date.now() % 1_000_000)
  t.comment(`seed ${seed} (FAULTLINE_CHAOS_SEED to replay)`)
  const random = prng(seed)
  let started = 0
  let stopped = 0
  const { app, seen, logs } = await buildSseApp(t, { sse: { heartbeatInterval: 1000 } })
  app.get('/feed', { sse: true }, async (request, reply) => {
    const failAt = Number((request.query as { fail?: string }).fail ?? -1)
    await reply.sse.send((async function * () {
      started++
      try {
        for (let i = 0; i < EVENTS; i++) {
          if (i === failAt) throw new ServiceUnavailableError('feed lost')
          if (i % 4 === 0) await new Promise(resolve => setImmediate(resolve)) // as real I/O would
          yield { id: String(i), data: DATA }
        }
      } finally {
        stopped++
      }
    })())
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const baseline = resources()
  await runAll(CHAOS_SIZE, 32, async () => {
    // A quarter of the feeds fail at a random event: the client may leave before, during or after the error event.
    const fail = random() < 0.25 ? Math.floor(random() * EVENTS) : -1
    const request = `GET /feed?fail=${fail} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n`
    await leaveAt(port, request, randomCut(random, request.length, 160 * 1024))
  })
  await settle(() => started !== stopped
    ? `${started - stopped} producers still running`
    : app.faultline.sse!.open !== 0 ? `${app.faultline.sse!.open} streams open` : aboveBaseline(baseline))
  t.equal(stopped, started, `all ${started} producers stopped`)
  t.equal(app.faultline.sse!.open, 0, 'no stream left open')
  t.ok(started > CHAOS_SIZE / 2, 'most requests reached a producer')
  const unexpected = seen.filter(s => s.fault.status !== 499 && s.fault.code !== 'SERVICE_UNAVAILABLE')
  t.same(unexpected.map(s => `${s.fault.code} ${s.context.phase}`), [], 'only client aborts and the feed failures are reported')
  t.same(logs.lines.filter(l => l.level >= 40 && l.fault === undefined).map(l => l.msg), [], 'nothing else logged at warn or above')
})

// The generator the first audit lacked: clients that stop reading (and never
// leave) while the feed fails. Each holds kernel buffers of several MB, so
// fewer of them: CHAOS_SIZE / 200.
const STALLS = Math.max(8, Math.floor(CHAOS_SIZE / 200))
const BIG = 'y'.repeat(64 * 1024)

t.test(`${STALLS} SSE feeds fail while their client stopped reading at a random byte: every one is cut`, async t => {
  const seed = Number(process.env.FAULTLINE_CHAOS_SEED ?? Date.now() % 1_000_000)
  t.comment(`seed ${seed} (FAULTLINE_CHAOS_SEED to replay)`)
  const random = prng(seed)
  const { app, seen, logs } = await buildSseApp(t)
  let responses = 0
  app.get('/stall', { sse: true }, async (request, reply) => {
    responses++
    reply.raw.once('close', () => { responses-- })
    reply.sse.send(new Readable({ objectMode: true, read () { this.push({ data: BIG }) } })).catch(() => {})
    await new Promise(resolve => setTimeout(resolve, Number((request.query as { after: string }).after)))
    throw new ServiceUnavailableError('feed lost')
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const clients: Socket[] = []
  t.teardown(() => { for (const client of clients) client.destroy() })
  await runAll(STALLS, STALLS, async () => {
    const request = `GET /stall?after=${Math.floor(random() * 300)} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n`
    clients.push(await stallAt(port, request, 1 + Math.floor(random() * 256 * 1024)))
  })
  // The clients are still there, paused: only the server can end these responses. (A
  // response that did leave whole keeps an idle connection: @fastify/sse sets keep-alive.)
  await settle(() => responses > 0 ? `${responses} responses still open` : '', 30_000)
  t.equal(responses, 0, 'the server ended every response, its clients still stalled')
  t.equal(app.faultline.sse!.open, 0, 'no stream left open')
  t.same(seen.map(s => s.fault.code), Array.from({ length: STALLS }, () => 'SERVICE_UNAVAILABLE'), 'each feed failure reported once, never a client abort')
  t.same(logs.lines.filter(l => l.level >= 40 && l.fault === undefined).map(l => l.msg), [], 'nothing else logged at warn or above')
})
