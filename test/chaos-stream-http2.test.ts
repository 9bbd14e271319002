// Chaos over HTTP/2 (h2c): thousands of streams, on sessions of 16 concurrent
// streams, each reset by the client (RST_STREAM CANCEL) at a random byte, or
// taken down mid-body with its whole session. Every producer must be stopped,
// every abort reported once as such (499, debug), nothing logged by Fastify
// itself, and the process's open sockets and timers back to where they started.
// Sizes: CHAOS_SIZE per framing.
import t from 'tap'
import http2 from 'node:http2'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import type { FastifyServerOptions } from 'fastify'
import { guardProcess } from './helpers/guard.js'
import { streamApp, foreignStreamLogs } from './helpers/stream-app.js'
import { CHAOS_SIZE, aboveBaseline, chaosStreams, resources, runAll, settle } from './helpers/chaos-client.js'
import { h2Request } from './helpers/h2.js'

guardProcess(t)

t.test(`${CHAOS_SIZE} streams per framing, each cancelled or its session destroyed at a random byte`, async t => {
  const { random, counts, routes } = chaosStreams(t)
  const { app, lines, reports } = await streamApp(t, routes, {}, { http2: true } as FastifyServerOptions)
  const { port } = app.server.address() as AddressInfo
  const baseline = resources()
  const PER_SESSION = 16
  let streams = 0
  for (const path of ['/raw', '/ndjson']) {
    await runAll(Math.ceil(CHAOS_SIZE / PER_SESSION), 4, async () => {
      const session = http2.connect(`http://127.0.0.1:${port}`)
      session.on('error', () => {})
      await once(session, 'connect')
      // Concurrent streams on one session: most reset (RST_STREAM CANCEL) after a random
      // number of bytes, a few take the whole session down with them mid-body.
      await Promise.all(Array.from({ length: PER_SESSION }, async () => {
        streams++
        const at = 1 + Math.floor(random() * 320 * 1024)
        await h2Request(session, path, random() < 0.1 ? { destroyAfter: at } : { cancelAfter: at })
      }))
      session.destroy()
    })
  }
  await settle(() => counts.started !== counts.stopped ? `${counts.started - counts.stopped} producers still running` : aboveBaseline(baseline))
  t.equal(counts.stopped, counts.started, `all ${counts.started} producers stopped`)
  t.ok(counts.started > streams / 2, `most of ${streams} streams reached a producer`)
  const notAborts = reports.filter(r => r.fault.status !== 499)
  t.same(notAborts.map(r => `${r.fault.code} ${r.context.phase}`), [], 'every report is a client abort')
  t.equal(reports.length, counts.started, 'each stream that reached a producer is reported once')
  t.same(lines.filter(l => l.level >= 40).map(l => l.msg), [], 'nothing logged at warn or above')
  t.same(foreignStreamLogs(lines), [], 'Fastify logged nothing of its own about the streams')
})
