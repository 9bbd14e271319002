// Chaos: thousands of clients leave streamed responses at random byte offsets
// (inside the request, in the headers, mid-body; FIN or RST). Every producer
// must be stopped, every client abort reported as such (499, debug), nothing
// logged by Fastify itself, no unhandled rejection, and the process's open
// sockets and timers back to where they started. Sizes: CHAOS_SIZE per framing.
import t from 'tap'
import type { AddressInfo } from 'node:net'
import { guardProcess } from './helpers/guard.js'
import { streamApp, foreignStreamLogs } from './helpers/stream-app.js'
import { CHAOS_SIZE, aboveBaseline, chaosStreams, leaveAt, randomCut, resources, runAll, settle } from './helpers/chaos-client.js'

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
