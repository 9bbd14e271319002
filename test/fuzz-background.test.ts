// Property-based tests over thrown values through faultline-background:
// whatever a task throws or rejects with, the response is untouched, the
// failure is reported exactly once (transport `background`, a 400-599
// status, the request id) and the process never sees it.
import t from 'tap'
import fc from 'fast-check'
import Fastify from 'fastify'
import { faultlineHttp, faultlineBackground, type Fault, type FaultContext } from '../index.js'
import { guardProcess } from './helpers/guard.js'
import { RUNS, thrownOrFault } from './helpers/arbitraries.js'

guardProcess(t)

t.test('anything a background task throws is reported once and never escapes', async t => {
  const reports: Array<{ fault: Fault, context: FaultContext }> = []
  const app = Fastify({ logger: { level: 'debug', stream: { write () {} } } })
  await app.register(faultlineHttp, { onFault: (fault, context) => { reports.push({ fault, context }) } })
  await app.register(faultlineBackground, { concurrency: 8 })
  t.teardown(() => app.close())
  let current: unknown
  app.get('/sync', async (_req, reply) => {
    reply.background(() => { throw current })
    return { ok: true }
  })
  app.get('/async', async (_req, reply) => {
    reply.background(async () => {
      await new Promise(resolve => setImmediate(resolve))
      throw current
    })
    return { ok: true }
  })
  let failure: string | undefined
  await fc.assert(fc.asyncProperty(thrownOrFault, fc.constantFrom('/sync', '/async'), async (value, path) => {
    current = value
    reports.length = 0
    const res = await app.inject(path)
    await app.faultline.background.idle()
    const [report] = reports
    failure = res.statusCode !== 200
      ? `response ${res.statusCode}`
      : reports.length !== 1
        ? `${reports.length} reports`
        : report!.context.transport !== 'background' || report!.fault.status < 400 || report!.fault.status > 599 || report!.context.request?.id === undefined
          ? `report ${report!.fault.code} ${report!.fault.status} ${String(report!.context.transport)}`
          : undefined
    return failure === undefined
  }), { numRuns: RUNS * 2, endOnFailure: true }).catch(err => { throw new Error(`${String(failure)}\n${String(err)}`) })
  t.pass(`${RUNS * 2} thrown values reported once`)
})
