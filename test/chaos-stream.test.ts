// Chaos: thousands of clients leave streamed responses at random byte offsets
// (inside the request, in the headers, mid-body; FIN or RST). Every producer
// must be stopped, every client abort reported as such (499, debug), nothing
// logged by Fastify itself, no unhandled rejection, and the process's open
// sockets and timers back to where they started. Sizes: CHAOS_SIZE per framing.
import t from 'tap'
import type { AddressInfo } from 'node:net'
import { guardProcess } from './helpers/guard.js'
import { streamApp, foreignStreamLogs } from './helpers/stream-app.js'
import { CHAOS_SIZE, aboveBaseline, leaveAt, prng, randomCut, resources, runAll, settle } from './helpers/chaos-client.js'

guardProcess(t)

const CHUNK = 'x'.repeat(16 * 1024)
const CHUNKS = 64 // 1 MB: most clients leave before the end, a few read it all

t.test(`${CHAOS_SIZE} streams per framing, each left at a random byte`, async t => {
  const seed = Number(process.env.FAULTLINE_CHAOS_SEED ?? Date.now() % 1_000_000)
  t.comment(`seed ${seed} (FAULTLINE_CHAOS_SEED to replay)`)
  const random = prng(seed)
  let started = 0
  let stopped = 0
  async function * producer (signal: AbortSignal): AsyncGenerator<string> {
    started++
    try {
      for (let i = 0; i < CHUNKS && !signal.aborted; i++) {
        if (i % 8 === 0) await new Promise(resolve => setImmediate(resolve)) // as real I/O would
        yield CHUNK
      }
    } finally {
      stopped++
    }
  }
  const { app, lines, reports } = await streamApp(t, app => {
    app.get('/raw', async (_req, reply) => reply.streamSafe(signal => producer(signal)))
    app.get('/ndjson', async (_req, reply) => reply.streamSafe(signal => producer(signal), { framing: 'ndjson' }))
  })
  const { port } = app.server.address() as AddressInfo
  const baseline = resources()
  for (const path of ['/raw', '/ndjson']) {
    const request = `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`
    await runAll(CHAOS_SIZE, 32, async () => {
      await leaveAt(port, request, randomCut(random, request.length, 320 * 1024))
    })
  }
  await settle(() => started !== stopped ? `${started - stopped} producers still running` : aboveBaseline(baseline))
  t.equal(stopped, started, `all ${started} producers stopped`)
  t.ok(started > CHAOS_SIZE, 'most requests reached a producer')
  const notAborts = reports.filter(r => r.fault.status !== 499)
  t.same(notAborts.map(r => `${r.fault.code} ${r.context.phase}`), [], 'every report is a client abort')
  t.same(lines.filter(l => l.level >= 40).map(l => l.msg), [], 'nothing logged at warn or above')
  t.same(foreignStreamLogs(lines), [], 'Fastify logged nothing of its own about the streams')
})
