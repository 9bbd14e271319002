// Errors Fastify raises before routing never reach an error handler; the
// frameworkErrors helper renders them as problems, reported once.
import t from 'tap'
import Fastify from 'fastify'
import { faultlineHttp, faultlineFrameworkErrors, type FaultContext } from '../index.js'

t.test('a malformed URL is a 400 problem, reported once', async t => {
  const reports: Array<{ code: string, ctx: FaultContext<unknown> }> = []
  const app = Fastify({ frameworkErrors: faultlineFrameworkErrors })
  await app.register(faultlineHttp, { onFault: (fault, ctx) => { reports.push({ code: fault.code, ctx }) } })
  app.get('/:x', async () => 'ok')
  const res = await app.inject('/%ZZ')
  t.equal(res.statusCode, 400)
  t.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8')
  t.match(res.json(), { status: 400, code: 'BAD_REQUEST', detail: "'/%ZZ' is not a valid url component", instance: '/%ZZ' })
  t.equal(reports.length, 1)
  t.match(reports[0], { code: 'BAD_REQUEST', ctx: { transport: 'http', phase: 'before-response' } })
  t.equal((await app.inject('/fine')).body, 'ok', 'other routes are untouched')
})

t.test('without faultlineHttp at the root it falls back to Fastify\'s own handling', async t => {
  const app = Fastify({ frameworkErrors: faultlineFrameworkErrors })
  app.get('/:x', async () => 'ok')
  const res = await app.inject('/%ZZ')
  t.equal(res.statusCode, 400)
  t.match(res.json(), { code: 'FST_ERR_BAD_URL' })
})
