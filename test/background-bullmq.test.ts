import t from 'tap'
import { Queue } from 'bullmq'
import { guardProcess } from './helpers/guard.js'
import { buildApp, deferred, namedTaskContract, sleep } from './helpers/background-contract.js'
import { testRedis, uniquePrefix } from './helpers/redis.js'
import { within } from './helpers/within.js'

guardProcess(t)

const redis = await testRedis(t)
if (redis !== undefined) {
  const { connection } = redis

  // The same contract as in process (test/background-named.test.ts), on BullMQ.
  namedTaskContract(t, { name: 'bullmq', options: label => ({ queue: { connection, prefix: uniquePrefix(label) } }) })

  t.test('bullmq: a job whose name no define on the worker knows is a reported fault, never a silent drop', async t => {
    const prefix = uniquePrefix('unknown')
    const web = await buildApp(t, { queue: { connection, prefix, worker: false } })
    const worker = await buildApp(t, { queue: { connection, prefix } })
    web.app.faultline.background!.define('ghost', () => {})
    web.app.post('/', async (request, reply) => {
      reply.background('ghost', { x: 1 })
      return 'ok'
    })
    await worker.app.ready()
    const reported = worker.nextReport()
    await web.app.inject({ method: 'POST', url: '/' })
    await web.app.faultline.background!.idle()
    const { fault, ctx } = await within(t, reported, 'the report on the worker')
    t.equal(fault.code, 'NOT_IMPLEMENTED')
    t.match(fault.message, /No background task named "ghost" is defined on this worker/)
    t.match(ctx, { transport: 'background', phase: 'after-response', task: 'ghost', attempts: 1 })
    t.type(ctx.requestId, 'string')
    await sleep(200)
    t.equal(worker.reports.length, 1, 'once: no retry')
    t.equal(web.reports.length, 0)

    // A job added by other code, with data of its own: reported, with no request id.
    const foreign = new Queue('faultline', { connection, prefix })
    t.teardown(() => foreign.close())
    const again = worker.nextReport()
    await foreign.add('legacy-job', { requestId: { not: 'a string' } })
    const { ctx: legacy } = await within(t, again, 'the report of the foreign job')
    t.match(legacy, { task: 'legacy-job', requestId: undefined })
  })

  t.test('bullmq: close() stops taking jobs, aborts a run past shutdownTimeout and leaves its job in Redis; another worker runs it', async t => {
    const prefix = uniquePrefix('shutdown')
    const fast = { lockDuration: 500, stalledInterval: 200 }
    const first = await buildApp(t, { shutdownTimeout: 50, queue: { connection, prefix, worker: { concurrency: 2, ...fast } } })
    const started = deferred()
    const reasons: unknown[] = []
    first.app.faultline.background!.define('long', async (_payload, { signal }) => {
      started.resolve()
      await new Promise(resolve => { signal.addEventListener('abort', resolve) })
      reasons.push(signal.reason)
      throw signal.reason // a handler that gives up on abort: the job must still stay in the queue
    })
    first.app.post('/', async (request, reply) => {
      reply.background('long', { n: 1 })
      return 'ok'
    })
    await first.app.inject({ method: 'POST', url: '/' })
    await within(t, started.promise, 'the run')
    await within(t, first.app.close(), 'close')
    t.equal(reasons.length, 1, 'the run was aborted')
    t.match(reasons[0], { code: 'SERVICE_UNAVAILABLE', message: /cut short by server shutdown; it stays in the queue/ })
    t.same(first.reports, [], 'not a failure: the job is not lost')
    t.ok(first.logs.lines.some(l => l.level === 40 && l.left === 1), 'a warning says one job stays in the queue')

    const queue = new Queue('faultline', { connection, prefix })
    t.teardown(() => queue.close())
    t.equal(await queue.getActiveCount(), 1, 'the job is still active in Redis')

    const second = await buildApp(t, { queue: { connection, prefix, worker: { concurrency: 2, ...fast } } })
    const ran = deferred<number>()
    second.app.faultline.background!.define('long', (payload: { n: number }, { attempt }) => { ran.resolve(payload.n + attempt) })
    await second.app.ready()
    t.equal(await within(t, ran.promise, 'the recovered run'), 2, 'the same payload, run again once its lock expired (attempt 1: it never failed)')
    t.same(second.reports, [])
  })

  t.test('bullmq: a job that stalls more often than maxStalledCount allows is failed by BullMQ and reported once', async t => {
    const prefix = uniquePrefix('stalls')
    const fast = { lockDuration: 300, stalledInterval: 100 }
    const first = await buildApp(t, { shutdownTimeout: 0, queue: { connection, prefix, worker: { concurrency: 1, ...fast } } })
    const started = deferred()
    first.app.faultline.background!.define('fragile', () => { started.resolve(); return new Promise(() => {}) })
    first.app.post('/', async (request, reply) => {
      reply.background('fragile', {})
      return 'ok'
    })
    await first.app.inject({ method: 'POST', url: '/' })
    await within(t, started.promise, 'the run')
    await first.app.close() // leaves the job active, as a crash would

    const second = await buildApp(t, { queue: { connection, prefix, worker: { concurrency: 1, ...fast, maxStalledCount: 0 } } })
    let runs = 0
    second.app.faultline.background!.define('fragile', () => { runs++ })
    const reported = second.nextReport()
    await second.app.ready()
    const { fault, ctx } = await within(t, reported, 'the report')
    t.equal(fault.code, 'INTERNAL')
    t.match(fault.message, /Background task "fragile" failed in the queue: job stalled more than allowable limit/)
    t.match(ctx, { task: 'fragile', transport: 'background', phase: 'after-response' })
    t.type(ctx.requestId, 'string')
    await sleep(200)
    t.equal(runs, 0, 'not run again')
    t.equal(second.reports.length, 1)
  })

  t.test('bullmq: close() waits for a running job that finishes within shutdownTimeout', async t => {
    const prefix = uniquePrefix('graceful')
    const { app, reports, logs } = await buildApp(t, { shutdownTimeout: 5000, queue: { connection, prefix } })
    const started = deferred()
    let finished = false
    app.faultline.background!.define('short', async () => {
      started.resolve()
      await sleep(100)
      finished = true
    })
    app.post('/', async (request, reply) => {
      reply.background('short', {})
      return 'ok'
    })
    await app.inject({ method: 'POST', url: '/' })
    await within(t, started.promise, 'the run')
    await within(t, app.close(), 'close')
    t.equal(finished, true, 'the job finished before close() returned')
    t.same(reports, [])
    t.notOk(logs.lines.some(l => l.left !== undefined), 'nothing was left in the queue')
    const queue = new Queue('faultline', { connection, prefix })
    t.teardown(() => queue.close())
    t.equal(await queue.getActiveCount(), 0)
  })

  t.test('bullmq: worker: false only enqueues; define after ready is refused', async t => {
    // No prefix: BullMQ's own (`bull`), with a queue name of this test's.
    const name = uniquePrefix('web').replace(/[^\w.-]/g, '.')
    const web = await buildApp(t, { queue: { connection, name, worker: false, removeOnComplete: 10, removeOnFail: false } })
    let runs = 0
    web.app.faultline.background!.define('count', () => { runs++ })
    web.app.post('/', async (request, reply) => {
      reply.background('count', [1])
      return 'ok'
    })
    await web.app.inject({ method: 'POST', url: '/' })
    await web.app.faultline.background!.idle()
    t.throws(() => web.app.faultline.background!.define('late', () => {}), { code: 'FST_FAULTLINE_INVALID_TASK_DEFINITION', message: /define tasks before the app is ready/ })
    const queue = new Queue(name, { connection })
    t.teardown(async () => {
      await queue.obliterate({ force: true })
      await queue.close()
    })
    t.equal(await queue.getWaitingCount(), 1, 'enqueued, waiting for a worker')
    await sleep(100)
    t.equal(runs, 0)
  })
}
