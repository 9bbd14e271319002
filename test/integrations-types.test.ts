// Type-level API tests for the integrations (tsc checks this file in `npm test`).
import t from 'tap'
import Fastify from 'fastify'
import { faultlineHttp, defineFault, NotFoundError, type FaultReporter, type DetailsSchema } from '../index.js'
import { otelReporter, type OtelReporterOptions } from '../otel/index.js'

t.test('the faults route option is typed on shorthand and full route options', async t => {
  const app = Fastify()
  await app.register(faultlineHttp, { openapi: true })
  const Gone = defineFault<{ sku: string }>({ code: 'TYPES_INT_GONE', status: 410, detailsSchema: { type: 'object', properties: { sku: { type: 'string' } } } })
  app.get('/a', { faults: [NotFoundError, Gone] }, async () => 'a')
  app.get('/b', { faults: false }, async () => 'b')
  app.route({ method: 'GET', url: '/c', faults: [Gone], handler: async () => 'c' })
  // @ts-expect-error faults lists classes, not codes
  t.throws(() => app.get('/d', { faults: ['NOT_FOUND'] }, async () => 'd'))
  // @ts-expect-error an instance is not a class
  t.throws(() => app.get('/e', { faults: [new NotFoundError()] }, async () => 'e'))
  // @ts-expect-error true is not an opt-out
  t.throws(() => app.get('/f', { faults: true }, async () => 'f'))
  const schema: DetailsSchema | undefined = Gone.detailsSchema
  t.ok(schema)
  // @ts-expect-error details schemas describe objects
  t.throws(() => defineFault({ code: 'TYPES_INT_BAD', status: 400, detailsSchema: { type: 'string' } }))
  await app.ready()
  const [entry] = app.faultline.catalogJson().filter(e => e.code === 'TYPES_INT_GONE')
  const routes: string[] = entry!.routes
  const closeCode: number = entry!.closeCode
  t.same(routes, ['GET /a', 'GET /c'])
  t.equal(closeCode, 4410)
  const md: string = app.faultline.catalogMarkdown()
  t.ok(md.length > 0)
  await app.close()
})

t.test('otelReporter is an onFault reporter', async t => {
  const options: OtelReporterOptions = {}
  const reporter: FaultReporter = otelReporter(options)
  const app = Fastify()
  await app.register(faultlineHttp, { onFault: [reporter, otelReporter()] })
  t.equal(typeof reporter, 'function')
  await app.close()
})
