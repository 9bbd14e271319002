import t from 'tap'
import Fastify from 'fastify'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { faultlineHttp, faultlineBackground, type Fault } from '../index.js'
import { guardProcess } from './helpers/guard.js'

guardProcess(t)

const BURST = 10_000

t.test('10,000 tasks in one burst: the queue never holds more than maxQueued, the rest are refused and reported', async t => {
  const refused: Fault[] = []
  const app = Fastify()
  await app.register(faultlineHttp, { onFault: fault => { refused.push(fault) } })
  await app.register(faultlineBackground, { concurrency: 4, maxQueued: 500 })
  t.teardown(() => app.close())
  let ran = 0
  let peakQueued = 0
  let accepted = 0
  app.get('/burst', async (request, reply) => {
    for (let i = 0; i < BURST; i++) {
      if (reply.background(async () => { ran++ }, { name: `task-${i}` })) accepted++
      peakQueued = Math.max(peakQueued, app.faultline.background.stats().queued)
    }
    return 'ok'
  })
  const res = await app.inject('/burst')
  t.equal(res.statusCode, 200)
  await app.faultline.background.idle()
  t.equal(accepted, 500)
  t.equal(ran, 500)
  t.equal(refused.length, BURST - 500, 'every refusal is reported')
  t.ok(refused.every(f => f.code === 'SERVICE_UNAVAILABLE'))
  t.ok(peakQueued <= 500, `peak queued ${peakQueued} <= maxQueued`)
})

// Heap figures are taken in a child process with `--expose-gc`, away from
// the other tests' allocations.
const CHILD = `
const { faultlineHttp, faultlineBackground } = await import(process.env.FAULTLINE_INDEX)
const { default: Fastify } = await import('fastify')
// Let pending immediates run first: inject's own bookkeeping holds each
// response for a turn or two (bare Fastify shows ~90 MB without this).
const heap = async () => {
  for (let i = 0; i < 3; i++) await new Promise(resolve => setImmediate(resolve))
  gc(); gc()
  return process.memoryUsage().heapUsed
}
const app = Fastify()
await app.register(faultlineHttp)
await app.register(faultlineBackground, { concurrency: 8, maxQueued: ${BURST} })
let ran = 0
let peakQueued = 0
app.get('/', async (request, reply) => {
  // A payload per task, so leaked task closures would show in the heap.
  const payload = new Array(64).fill(request.id)
  reply.background(async () => { ran += payload.length > 0 ? 1 : 0 })
  peakQueued = Math.max(peakQueued, app.faultline.background.stats().queued)
  return 'ok'
})
await app.ready()
await Promise.all(Array.from({ length: 200 }, () => app.inject('/')))
await app.faultline.background.idle()
ran = 0
const before = await heap()
for (let sent = 0; sent < ${BURST}; sent += 1000) {
  await Promise.all(Array.from({ length: 1000 }, () => app.inject('/')))
}
await app.faultline.background.idle()
const after = await heap()
const stats = app.faultline.background.stats()
await app.close()
process.stdout.write('RESULT ' + JSON.stringify({ ran, peakQueued, stats, grown: after - before }) + '\\n')
`

t.test('10,000 requests each scheduling a task: all run, and the heap returns to where it was', async t => {
  const child = spawnSync(process.execPath, [...process.execArgv, '--expose-gc', '--input-type=module', '-e', CHILD], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    // The same loaders as this process (execArgv, NODE_OPTIONS): TypeScript, and coverage that maps like ours.
    env: { ...process.env, FAULTLINE_INDEX: new URL('../index.ts', import.meta.url).href },
    encoding: 'utf8',
    timeout: 100_000
  })
  const line = child.stdout.split('\n').find(l => l.startsWith('RESULT '))
  t.ok(line, `the child reported (exit ${child.status}, stderr: ${child.stderr.slice(0, 500)})`)
  const result = JSON.parse(line!.slice(7)) as { ran: number, peakQueued: number, stats: object, grown: number }
  t.equal(result.ran, BURST, 'every task ran')
  t.ok(result.peakQueued <= BURST)
  t.same(result.stats, { pending: 0, queued: 0, running: 0 })
  const grownMb = result.grown / 1024 / 1024
  t.ok(grownMb < 5, `heap grew ${grownMb.toFixed(2)} MB after 10,000 tasks (bound: 5 MB)`)
})
