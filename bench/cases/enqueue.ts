import { Queue } from 'bullmq'
import { bareApp, faultlineApp } from '../lib/app.js'
import { cannon, type CannonResult } from '../lib/load.js'
import { loadPlugins } from '../lib/plugins.js'
import { startRedisServer, type RedisServer } from '../../test/helpers/redis-server.js'
import type { Case, Row, Variant } from '../lib/types.js'
import { TASK_DEFAULTS } from '../../lib/background-tasks.js'

// Case 8: the cost of enqueueing durable work from a route. Both variants
// answer GET /signup with a small JSON body and add one BullMQ job per
// request. The baseline is what a careful user writes with BullMQ alone: a
// Queue of their own, `queue.add()` with the same job options faultline
// gives (3 attempts, exponential backoff from 1 s, removeOnComplete,
// removeOnFail 1000), not awaited, its failure logged. faultline's calls
// `reply.background('welcome-email', { userId })`, which adds the job once
// the response has been sent (web instance: `worker: false`). The jobs
// added per second (all of a run's jobs, over the time from its start until
// the last one landed in Redis) are a row of their own. Needs
// `redis-server` (or REDIS_URL); skipped without.

const ENV = 'FAULTLINE_BENCH_REDIS'
const QUEUE = 'bench-enqueue'
// Which finished jobs Redis keeps: given to both variants' queues.
const KEEP_JOBS = { removeOnComplete: true, removeOnFail: 1000 }
// The baseline's job options: faultline's for a task defined without options.
const JOB_OPTIONS = { attempts: TASK_DEFAULTS.attempts, backoff: { ...TASK_DEFAULTS.backoff }, ...KEEP_JOBS }

function connection (): { host: string, port: number } {
  const url = new URL(process.env[ENV]!)
  return { host: url.hostname, port: Number(url.port) }
}

export const enqueue: Case = {
  id: '8',
  title: 'enqueue from a route: reply.background(name, payload), a BullMQ job per request, vs the same route calling BullMQ\'s queue.add() itself',
  requires: ['http', 'background'],
  async build (ctx) {
    if (ctx.variant === 'baseline') {
      const app = bareApp(ctx)
      const queue = new Queue(QUEUE, { connection: connection() })
      app.addHook('onClose', async () => { await queue.close() })
      app.get('/signup', async (request) => {
        queue.add('welcome-email', { userId: 1 }, JOB_OPTIONS).catch(err => request.log.error({ err }, 'enqueue failed'))
        return { id: 1 }
      })
      return app
    }
    const app = await faultlineApp(ctx, ['http'])
    const plugins = await loadPlugins()
    await app.register(plugins.background!, { concurrency: 64, maxQueued: 100_000, queue: { connection: connection(), name: QUEUE, worker: false, ...KEEP_JOBS } })
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
      const runs = await h.alternate(servers, async server => {
        const t0 = Date.now()
        const result: CannonResult = await cannon(`${server.url}/signup`, h.settings, 200)
        // The adds may go on after the responses: count until the last one has landed.
        let count = await queue.getWaitingCount()
        let landed = Date.now()
        for (let stable = 0; stable < 3;) {
          await new Promise(resolve => setTimeout(resolve, 100))
          const now = await queue.getWaitingCount()
          if (now === count) stable++
          else { count = now; landed = Date.now(); stable = 0 }
        }
        // Requests still in flight when the run stops are answered, and add their jobs, uncounted.
        if (count < result.requests) throw new Error(`${server.variant}: ${count} jobs landed for ${result.requests} requests`)
        await queue.drain()
        return { ...result, jobsPerSecond: count / ((landed - t0) / 1000) }
      })
      await h.closeAll()
      const pick = (v: Variant, f: (r: typeof runs.baseline[number]) => number): number[] => runs[v].map(f)
      const rows: Row[] = [
        { name: '8 enqueue per request req/s', unit: 'req/s', better: 'higher', baseline: pick('baseline', r => r.value.rps), faultline: pick('faultline', r => r.value.rps) },
        { name: '8 jobs landed in Redis per second', unit: 'jobs/s', better: 'higher', baseline: pick('baseline', r => r.value.jobsPerSecond), faultline: pick('faultline', r => r.value.jobsPerSecond) },
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
