// Chaos: thousands of clients leave streamed responses at random byte offsets
// (inside the request, in the headers, mid-body; FIN or RST). Every producer
// must be stopped, every client abort reported as such (499, debug), nothing
// logged by Fastify itself, no unhandled rejection, and the process's open
// sockets and timers back to where they started. Sizes: CHAOS_SIZE per framing.
import t from 'tap'
import type { AddressInfo, Socket } from 'node:net'
import { Readable } from 'node:stream'
import { guardProcess } from './helpers/guard.js'
import { streamApp, foreignStreamLogs } from './helpers/stream-app.js'
import {
  CHAOS_SIZE, aboveBaseline, chaosStreams, leaveAt, connectionsLeft, randomCut, resources, runAll, settle, stallAt
} from './helpers/chaos-client.js'

guardProcess(t)

t.test(`${CHAOS_SIZE} streams per framing, each left at a random byte`, async t => {
  const { random, counts, routes } = chaosStreams(t)
  const { app, lines, reports } = await streamApp(t, routes)
  const { port } = app.server.address() as AddressInfo
  const baseline = resources()
  for (const path of ['/raw', '/ndjson']) {
    const request = `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`
    await runAll(CHAOS_SIZE, 32, async () => {
      await leaveAt(port, request, randomCut(random, request.length, 320 * 1024))
    })
  }
  await settle(() => counts.started !== counts.stopped ? `${counts.started - counts.stopped} producers still running` : aboveBaseline(baseline))
  t.equal(counts.stopped, counts.started, `all ${counts.started} producers stopped`)
  t.ok(counts.started > CHAOS_SIZE, 'most requests reached a producer')
  const notAborts = reports.filter(r => r.fault.status !== 499)
  t.same(notAborts.map(r => `${r.fault.code} ${r.context.phase}`), [], 'every report is a client abort')
  t.same(lines.filter(l => l.level >= 40).map(l => l.msg), [], 'nothing logged at warn or above')
  t.same(foreignStreamLogs(lines), [], 'Fastify logged nothing of its own about the streams')
})

// The generator the first audit lacked: clients that stop reading (and never
// leave) while the source fails. Each one holds kernel buffers of several MB,
// so fewer of them: CHAOS_SIZE / 200 per framing.
const STALLS = Math.max(8, Math.floor(CHAOS_SIZE / 200))
const STALL_CHUNK = 'x'.repeat(64 * 1024)

t.test(`${STALLS} streams per framing fail while their client stopped reading at a random byte: every one is cut`, async t => {
  const { random, counts } = chaosStreams(t)
  const { app, lines, reports } = await streamApp(t, app => {
    app.get('/stall', async (request, reply) => {
      const { framing, after } = request.query as { framing: 'raw' | 'ndjson', after: string }
      counts.started++
      const source = new Readable({ read () { this.push(STALL_CHUNK) } })
      const timer = setTimeout(() => source.destroy(new Error('upstream broke')), Number(after))
      source.once('close', () => { clearTimeout(timer); counts.stopped++ })
      return framing === 'ndjson' ? reply.streamSafe(source, { framing }) : reply.streamSafe(source)
    })
  })
  const { port } = app.server.address() as AddressInfo
  const clients: Socket[] = []
  t.teardown(() => { for (const client of clients) client.destroy() })
  for (const framing of ['raw', 'ndjson']) {
    await runAll(STALLS, STALLS, async () => {
      const after = Math.floor(random() * 300)
      const request = `GET /stall?framing=${framing}&after=${after} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`
      clients.push(await stallAt(port, request, 1 + Math.floor(random() * 256 * 1024)))
    })
  }
  // The clients are still there, paused: only the server can end these connections.
  const open = await connectionsLeft(app.server)
  t.equal(open, 0, 'the server ended every connection, its clients still stalled')
  t.equal(counts.stopped, counts.started, `all ${counts.started} sources stopped`)
  t.equal(reports.length, counts.started, 'one report per failed stream')
  t.same(reports.filter(r => r.fault.code !== 'INTERNAL').map(r => r.fault.code), [], 'each reported as the failure it is, never as a client abort')
  t.same(lines.filter(l => l.level >= 40 && l.fault === undefined).map(l => l.msg), [], 'nothing else logged at warn or above')
})
