// A worker process for test/background-bullmq-crash.test.ts: a Fastify app
// with faultline's BullMQ worker and one task, `work`. Reports go to a file
// (synchronously, so a report is on disk the moment it is made); IPC says
// when it is ready. The test kills one of these with SIGKILL mid-run.
import { appendFileSync } from 'node:fs'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { faultlineHttp, faultlineBackground } from '../../index.js'
import { workTask, WORK_OPTIONS } from './bullmq-work.js'

const { REDIS_URL, PREFIX, WORKER_NAME, REPORTS, SLOW_MS } = process.env as Record<string, string>
const url = new URL(REDIS_URL)
const connection = { host: url.hostname, port: Number(url.port) }

const app = Fastify({ logger: false })
await app.register(faultlineHttp, {
  onFault (fault, ctx) {
    appendFileSync(REPORTS, JSON.stringify({ code: fault.code, task: ctx.task, jobId: ctx.jobId, requestId: ctx.requestId, attempts: ctx.attempts, worker: WORKER_NAME }) + '\n')
  }
})
await app.register(faultlineBackground, {
  shutdownTimeout: 1000,
  queue: {
    connection,
    prefix: PREFIX,
    // Short locks so a killed worker's jobs come back in about a second.
    worker: { concurrency: 8, lockDuration: 1000, stalledInterval: 300, maxStalledCount: 2 }
  }
})
const redis = new Redis(REDIS_URL)
app.faultline.background!.define('work', workTask(redis, PREFIX, WORKER_NAME, Number(SLOW_MS)), WORK_OPTIONS)
await app.ready()

process.on('SIGTERM', () => {
  app.close().then(() => redis.quit()).then(() => process.exit(0), () => process.exit(1))
})
process.send!('ready')
