import { Queue } from 'bullmq'
import { bareApp, faultlineApp } from '../lib/app.js'
import { cannon, type CannonResult } from '../lib/load.js'
import { loadPlugins } from '../lib/plugins.js'
import { startRedisServer, type RedisServer } from '../../test/helpers/redis-server.js'
import type { Case, Row, Variant } from '../lib/types.js'

// Case 8: the cost of enqueueing durable work from a route. Both variants
// answer GET /signup with a small JSON body; faultline's also calls
// `reply.background('welcome-email', { userId })`, which adds a BullMQ job
// once the response has been sent (web instance: `worker: false`). The jobs
// added per second (all of a run's jobs, over the time from its start until
// the last one landed in Redis) are logged. Needs
// `redis-server` (or REDIS_URL); skipped without.

const ENV = 'FAULTLINE_BENCH_REDIS'
const QUEUE = 'bench-enqueue'

function connection (): { host: string, port: number } {
  const url = new URL(process.env[ENV]!)
  return { host: url.hostname, port: Number(url.port) }
}

export const enqueue: Case = {
  id: '8',
  title: 'enqueue from a route: reply.background(name, payload) as a BullMQ job per request vs the same route without',
  requires: ['http', 'background'],
  async build (ctx) {
    if (ctx.variant === 'baseline') {
      const app = bareApp(ctx)
      app.get('/signup', async () => ({ id: 1 }))
      return app
    }
    const app = await faultlineApp(ctx, ['http'])
    const plugins = await loadPlugins()
    await app.register(plugins.background!, { concurrency: 64, maxQueued: 100_000, queue: { connection: connection(), name: QUEUE, worker: false } })
    app.faultline.background!.define('welcome-email', () => {})
    app.get('/signup', async (request, reply) => {
      reply.background('welcome-email', { userId: 1 })
      return { id: 1 }
    })
    return app
  },
  async bench (h) {
    let redis: RedisServer | undefined
    if (process.env.REDIS_URL !== undefined && process.env.REDIS_URL !== '') {
      process.env[ENV] = process.env.REDIS_URL
    } else {
      const started = await startRedisServer()
      if (typeof started === 'string') {
        h.log(`skipped: ${started}`)
        return []
      }
      redis = started
      process.env[ENV] = started.url
    }
    const queue = new Queue(QUEUE, { connection: connection() })
    try {
      const servers = await h.pair()
      const jobsPerSecond: number[] = []
      const runs = await h.alternate(servers, async server => {
        const t0 = Date.now()
        const result: CannonResult = await cannon(`${server.url}/signup`, h.settings, 200)
        if (server.variant === 'faultline') {
          // The adds go on after the responses: count until the last one has landed.
          let count = await queue.getWaitingCount()
          let landed = Date.now()
          for (let stable = 0; stable < 3;) {
            await new Promise(resolve => setTimeout(resolve, 100))
            const now = await queue.getWaitingCount()
            if (now === count) stable++
            else { count = now; landed = Date.now(); stable = 0 }
          }
          jobsPerSecond.push(count / ((landed - t0) / 1000))
          await queue.drain()
        }
        return result
      })
      await h.closeAll()
      const sorted = jobsPerSecond.slice(1).sort((a, b) => a - b) // without the warm-up run
      h.log(`jobs added to Redis per second (faultline runs): median ${sorted[Math.floor(sorted.length / 2)]?.toFixed(0)}, all: ${sorted.map(n => n.toFixed(0)).join(' ')}`)
      const pick = (v: Variant, f: (r: typeof runs.baseline[number]) => number): number[] => runs[v].map(f)
      const rows: Row[] = [
        { name: '8 enqueue per request req/s', unit: 'req/s', better: 'higher', baseline: pick('baseline', r => r.value.rps), faultline: pick('faultline', r => r.value.rps) },
        { name: '8 enqueue per request p99 latency', unit: 'ms', better: 'lower', baseline: pick('baseline', r => r.value.p99), faultline: pick('faultline', r => r.value.p99) },
        { name: '8 enqueue server CPU per request', unit: 'µs', better: 'lower', detail: true, baseline: pick('baseline', r => r.cpu / r.value.requests), faultline: pick('faultline', r => r.cpu / r.value.requests) }
      ]
      return rows
    } finally {
      await queue.obliterate({ force: true }).catch(() => {})
      await queue.close()
      await redis?.stop()
    }
  }
}
