import t from 'tap'
import { guardProcess } from './helpers/guard.js'
import { buildApp, namedTaskContract } from './helpers/background-contract.js'
import { isForbidden, WORK_OPTIONS } from './helpers/bullmq-work.js'
import { ForbiddenError } from '../index.js'

const TASKS = 1000

guardProcess(t)

// The named-task contract in process: no Redis. test/background-bullmq.test.ts runs the same on BullMQ.
namedTaskContract(t, { name: 'in-process', options: () => ({}) })

t.test('in-process: 1,000 tasks from 1,000 requests: each completes once or is reported failed once; none lost', async t => {
  const { app, reports } = await buildApp(t, { concurrency: 8 })
  const runs = new Map<number, number>()
  const effects = new Set<number>()
  app.faultline.background!.define('work', async ({ id }: { id: number }) => {
    runs.set(id, (runs.get(id) ?? 0) + 1)
    await new Promise(resolve => setImmediate(resolve))
    if (isForbidden(id)) throw new ForbiddenError(`task ${id} is forbidden`)
    effects.add(id)
  }, WORK_OPTIONS)
  app.post<{ Params: { id: string } }>('/tasks/:id', async (request, reply) => {
    reply.background('work', { id: Number(request.params.id) })
    return { queued: true }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  let next = 0
  const statuses: number[] = []
  await Promise.all(Array.from({ length: 32 }, async () => {
    while (next < TASKS) {
      const res = await fetch(`http://127.0.0.1:${port}/tasks/${next++}`, { method: 'POST' })
      await res.arrayBuffer()
      statuses.push(res.status)
    }
  }))
  await app.faultline.background!.idle()
  t.ok(statuses.length === TASKS && statuses.every(s => s === 200))
  t.equal(runs.size, TASKS, 'every task ran')
  t.ok([...runs.values()].every(n => n === 1), 'each exactly once')
  const failed = reports.map(r => (r.ctx.request as { params: { id: string } }).params.id).map(Number)
  t.equal(new Set(failed).size, failed.length, 'no task reported twice')
  t.same(failed.sort((a, b) => a - b), [...runs.keys()].filter(isForbidden).sort((a, b) => a - b), 'every failed task reported')
  t.equal(effects.size + failed.length, TASKS, 'the others completed: none lost')
  t.ok(reports.every(r => r.fault.code === 'FORBIDDEN' && r.ctx.attempts === 1 && r.ctx.task === 'work'))
})
