import t from 'tap'
import rateLimit from '@fastify/rate-limit'
import { guardProcess } from '../helpers/guard.js'
import { compatApp, isProblem } from '../helpers/compat-app.js'

guardProcess(t)

t.test('@fastify/rate-limit: the 429 is a problem, with Retry-After and the x-ratelimit-* headers kept', async t => {
  const { app, reports, faults } = await compatApp(t, async app => {
    await app.register(rateLimit, { max: 2, timeWindow: '1 minute' })
    app.get('/items', async () => ({ ok: true }))
  })

  for (let i = 0; i < 2; i++) {
    const ok = await app.inject('/items')
    t.equal(ok.statusCode, 200)
    t.equal(ok.headers['x-ratelimit-remaining'], String(1 - i))
  }
  const limited = await app.inject('/items')
  t.equal(limited.statusCode, 429)
  t.ok(isProblem(limited.headers['content-type']))
  t.equal(limited.headers['retry-after'], '60')
  t.equal(limited.headers['x-ratelimit-limit'], '2')
  t.equal(limited.headers['x-ratelimit-remaining'], '0')
  t.equal(limited.headers['x-ratelimit-reset'], '60')
  const body = limited.json()
  t.match(body, { status: 429, code: 'TOO_MANY_REQUESTS', title: 'Too Many Requests', detail: 'Rate limit exceeded, retry in 1 minute', instance: '/items' })
  t.equal(reports.length, 1)
  t.equal(reports[0]!.fault.retryable, true, 'a 429 is retryable')
  t.match(faults()[0], { level: 30, fault: { code: 'TOO_MANY_REQUESTS', status: 429 } }, 'logged once at info')
})
