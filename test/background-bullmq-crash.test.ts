// 1,000 tasks from 1,000 requests, run by two worker processes, one of them
// killed with SIGKILL mid-run. BullMQ guarantees at-least-once: a job whose
// worker dies is run again (stalled-job recovery) once its lock expires. What
// this test proves on top: nothing is lost (every job ends completed or
// failed), every failed job is reported exactly once (by job id), no
// completed job is reported, and with an idempotency record in the handler
// every completed task's effect is applied exactly once, although some runs
// were repeated (it checks that the kill really cut runs short).
import t from 'tap'
import { fork, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { guardProcess } from './helpers/guard.js'
import { buildApp, sleep } from './helpers/background-contract.js'
import { testRedis, uniquePrefix } from './helpers/redis.js'
import { isForbidden, WORK_OPTIONS } from './helpers/bullmq-work.js'
import { within } from './helpers/within.js'
import { plainNodeEnv } from './helpers/child-env.js'

guardProcess(t)

const TASKS = 1000

const redisServer = await testRedis(t)
if (redisServer !== undefined) {
  t.test('1,000 tasks, two workers, one SIGKILLed mid-run: each completes once or is reported failed once; none lost', async t => {
    const { connection, url } = redisServer
    const prefix = uniquePrefix('crash')
    const dir = mkdtempSync(join(tmpdir(), 'faultline-crash-'))
    const reportsFile = join(dir, 'reports.ndjson')
    writeFileSync(reportsFile, '')
    const redis = new Redis(url)
    const queue = new Queue('faultline', { connection, prefix })
    t.teardown(async () => {
      await queue.close()
      await redis.quit()
      rmSync(dir, { recursive: true, force: true })
    })

    const workers = new Map<string, ChildProcess>()
    const start = async (name: string): Promise<void> => {
      const child = fork(new URL('./helpers/bullmq-worker.ts', import.meta.url), {
        execArgv: ['--import', 'tsx'],
        // No tap hooks or V8 coverage in the workers: they load the code through tsx, a SIGKILLed
        // one writes none, and the same code is covered in process by the other files.
        // A's slow runs last until it is killed: the kill surely cuts one short, however slow
        // the machine (with 1.5 s ones, a loaded machine could let the run it saw finish first).
        env: plainNodeEnv({ REDIS_URL: url, PREFIX: prefix, WORKER_NAME: name, REPORTS: reportsFile, SLOW_MS: name === 'A' ? '600000' : '1500' }),
        stdio: ['ignore', 'inherit', 'inherit', 'ipc']
      })
      workers.set(name, child)
      t.teardown(async () => {
        if (child.exitCode !== null || child.signalCode !== null) return
        const exited = new Promise(resolve => child.once('exit', resolve))
        child.kill('SIGTERM')
        await exited
      })
      await within(t, new Promise<void>((resolve, reject) => {
        child.once('message', () => resolve())
        child.once('exit', code => reject(new Error(`worker ${name} exited (${code}) before it was ready`)))
      }), `worker ${name} to start`, 60_000)
    }
    await Promise.all([start('A'), start('B')])

    // The web instance: enqueues only.
    const web = await buildApp(t, { queue: { connection, prefix, worker: false, removeOnComplete: false, removeOnFail: false } })
    web.app.faultline.background!.define('work', () => { throw new Error('runs on the workers') }, WORK_OPTIONS)
    web.app.post<{ Params: { id: string } }>('/tasks/:id', async (request, reply) => {
      reply.background('work', { id: Number(request.params.id) })
      return { queued: true }
    })
    await web.app.listen({ port: 0, host: '127.0.0.1' })
    const { port } = web.app.server.address() as { port: number }

    const started = Date.now()
    const statuses: number[] = []
    let next = 0
    const client = async (): Promise<void> => {
      while (next < TASKS) {
        const id = next++
        const res = await fetch(`http://127.0.0.1:${port}/tasks/${id}`, { method: 'POST' })
        await res.arrayBuffer()
        statuses.push(res.status)
      }
    }
    const sending = Promise.all(Array.from({ length: 32 }, client))

    // Kill A once it is well into its share of the work, while it runs a slow task.
    const runsOf = async (name: string): Promise<number> => (await redis.lrange(`${prefix}:runs`, 0, -1)).filter(r => r.startsWith(`${name} `)).length
    const slowOn = async (name: string): Promise<number> => Number(await redis.get(`${prefix}:slow:${name}`))
    await within(t, (async () => { while (await runsOf('A') < 100 || await slowOn('A') < 1) await sleep(5) })(), 'worker A to make 100 runs', 60_000)
    workers.get('A')!.kill('SIGKILL')
    const killedAt = Date.now() - started

    await sending
    t.equal(statuses.length, TASKS)
    t.ok(statuses.every(s => s === 200), 'every request answered 200')
    await web.app.faultline.background!.idle()
    t.same(web.reports, [], 'every enqueue succeeded')

    // Wait for every job to finish (B recovers A's stalled ones after their lock expires).
    await within(t, (async () => {
      for (;;) {
        const counts = await queue.getJobCounts('completed', 'failed')
        if (counts.completed! + counts.failed! >= TASKS) return
        await sleep(100)
      }
    })(), 'every job to finish', 60_000)
    const elapsed = Date.now() - started
    await sleep(200) // a report made after its job was marked failed is synchronous, but let B settle

    const counts = await queue.getJobCounts('completed', 'failed', 'waiting', 'active', 'delayed', 'prioritized', 'waiting-children')
    t.match(counts, { completed: TASKS - TASKS / 50, failed: TASKS / 50, waiting: 0, active: 0, delayed: 0, prioritized: 0 }, 'nothing lost, nothing left')

    const idsOf = async (state: 'completed' | 'failed'): Promise<Array<{ id: number, jobId: string }>> =>
      (await queue.getJobs([state], 0, -1)).map(job => ({ id: (job.data as { payload: { id: number } }).payload.id, jobId: job.id! }))
    const completed = await idsOf('completed')
    const failed = await idsOf('failed')
    const completedIds = new Set(completed.map(j => j.id))
    const failedIds = new Set(failed.map(j => j.id))
    t.equal(completedIds.size, completed.length, 'each task completed at most once')
    t.equal(failedIds.size, failed.length)
    t.equal(completedIds.size + failedIds.size, TASKS)
    t.ok([...completedIds].every(id => !failedIds.has(id)), 'no task both completed and failed')
    t.ok([...failedIds].every(isForbidden), 'only the forbidden tasks failed')

    const reports = readFileSync(reportsFile, 'utf8').trim().split('\n').filter(Boolean).map(line => JSON.parse(line) as { code: string, task: string, jobId: string, requestId: string, attempts: number, worker: string })
    const reportedJobs = reports.map(r => r.jobId)
    t.equal(new Set(reportedJobs).size, reports.length, 'no job reported twice')
    t.same(reportedJobs.sort(), failed.map(j => j.jobId).sort(), 'every failed job reported, once; no completed job reported')
    t.ok(reports.every(r => r.code === 'FORBIDDEN' && r.task === 'work' && typeof r.requestId === 'string' && r.attempts === 1), 'reported as FORBIDDEN, with task, request id, one attempt')

    // The effect, behind its idempotency record: exactly once per completed task.
    const effects = (await redis.lrange(`${prefix}:effects`, 0, -1)).map(Number)
    t.equal(effects.length, completedIds.size, 'one effect per completed task')
    t.same(new Set(effects), completedIds, 'the effects are exactly the completed tasks')

    // The kill really interrupted work: runs that A started and B ran again.
    const runs = await redis.lrange(`${prefix}:runs`, 0, -1)
    const byId = new Map<string, Set<string>>()
    for (const run of runs) {
      const [worker, id] = run.split(' ') as [string, string]
      byId.set(id, (byId.get(id) ?? new Set()).add(worker))
    }
    const rerun = [...byId.values()].filter(w => w.size === 2).length
    t.ok(rerun > 0, `runs cut short by the kill were run again by B (${rerun})`)
    t.comment(`${TASKS} tasks: ${runs.length} runs, ${rerun} run again after the kill (A killed at ${killedAt} ms); all finished in ${elapsed} ms`)
  })
}
