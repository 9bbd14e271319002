import t from 'tap'
import underPressure from '@fastify/under-pressure'
import { guardProcess } from '../helpers/guard.js'
import { compatApp, isProblem } from '../helpers/compat-app.js'

guardProcess(t)

t.test('@fastify/under-pressure: the 503 is a problem with Retry-After', async t => {
  const { app, reports } = await compatApp(t, async app => {
    // Any heap is over one byte: every request is under pressure once sampled.
    await app.register(underPressure, { maxHeapUsedBytes: 1, sampleInterval: 5, retryAfter: 7 })
    app.get('/work', async () => ({ ok: true }))
  })
  await new Promise(resolve => setTimeout(resolve, 50))

  const res = await app.inject('/work')
  t.equal(res.statusCode, 503)
  t.ok(isProblem(res.headers['content-type']))
  t.equal(res.headers['retry-after'], '7', 'under-pressure\'s Retry-After is kept')
  t.match(res.json(), { status: 503, code: 'SERVICE_UNAVAILABLE', title: 'Service Unavailable', detail: 'Service Unavailable' })
  t.equal(reports.length, 1)
  t.equal(reports[0]!.fault.retryable, true)
  t.equal((reports[0]!.fault.cause as { code: string }).code, 'FST_UNDER_PRESSURE', 'the plugin\'s error is the cause')
})

t.test('@fastify/under-pressure: a failed health check on its status route is a 503 problem', async t => {
  let healthy = true
  const { app } = await compatApp(t, async app => {
    await app.register(underPressure, { retryAfter: 7, exposeStatusRoute: '/health', healthCheck: async () => healthy })
  })
  t.equal((await app.inject('/health')).statusCode, 200)
  healthy = false
  const health = await app.inject('/health')
  t.equal(health.statusCode, 503)
  t.ok(isProblem(health.headers['content-type']))
  t.equal(health.headers['retry-after'], '7')
  t.equal(health.json().code, 'SERVICE_UNAVAILABLE')
})
