// Type-level API tests: `npm test` type-checks this file (tsc --noEmit), so a
// wrong type makes the suite fail; the runtime asserts keep it honest too.
import t from 'tap'
import Fastify from 'fastify'
import {
  defineFault, toFault, isFault, faultlineHttp, faultlineSse, faultlineBackground, NotFoundError, ValidationError, Fault,
  type FaultClass, type FaultlineSse, type FaultlineBackground, type Transport, type Phase, type ProblemDetails, type CatalogEntry
} from '../index.js'

const PaymentRequiredError = defineFault<{ invoice: string, amount: number }>({ code: 'TYPES_PAYMENT', status: 402 })

t.test('defineFault classes carry a typed details shape', async t => {
  const fault = new PaymentRequiredError('pay', { details: { invoice: 'inv-1', amount: 3 } })
  const invoice: string | undefined = fault.details?.invoice
  const amount: number | undefined = fault.details?.amount
  t.equal(invoice, 'inv-1')
  t.equal(amount, 3)
  // @ts-expect-error details must match the declared shape
  const wrong = new PaymentRequiredError('pay', { details: { invoice: 1, amount: 3 } })
  t.ok(wrong)
  // @ts-expect-error taxonomy fields are readonly
  fault.status = 200
  const cls: FaultClass<{ invoice: string, amount: number }> = PaymentRequiredError
  t.equal(cls.code, 'TYPES_PAYMENT')
  class Declined extends PaymentRequiredError {}
  const d: Fault<{ invoice: string, amount: number }> = new Declined()
  t.ok(d instanceof PaymentRequiredError)
})

t.test('instanceof a defineFault class narrows a Fault to that class, typed details and all', async t => {
  const found: Fault | undefined = toFault(new PaymentRequiredError('pay', { details: { invoice: 'inv-2', amount: 5 } }))
  if (found instanceof PaymentRequiredError) {
    const invoice: string | undefined = found.details?.invoice
    t.equal(invoice, 'inv-2')
  } else {
    t.fail('toFault keeps a fault as it is')
  }
  const thrown: unknown = new PaymentRequiredError('pay')
  if (thrown instanceof PaymentRequiredError) {
    // @ts-expect-error amount is a number
    const amount: string | undefined = thrown.details?.amount
    t.equal(amount, undefined)
  }
})

t.test('built-ins, toFault and isFault are typed', async t => {
  const v = new ValidationError('bad', { details: { errors: [{ instancePath: '/a', message: 'm' }] } })
  const path: string | undefined = v.details?.errors[0]?.instancePath
  t.equal(path, '/a')
  const unknownValue: unknown = new NotFoundError()
  if (isFault(unknownValue)) {
    const status: number = unknownValue.status
    t.equal(status, 404)
  }
  const f: Fault = toFault(Symbol('x'))
  t.equal(f.code, 'INTERNAL')
})

t.test('plugin options and the decorator are typed', async t => {
  const app = Fastify()
  await app.register(faultlineHttp, {
    typeBase: 'https://errors.example.com/',
    logLevels: { '4xx': 'info', '5xx': 'error', clientAbort: 'debug', NOT_FOUND: 'silent' },
    onFault: (fault, context) => {
      const transport: Transport = context.transport
      const phase: Phase = context.phase
      const id: string | undefined = context.request?.id
      return [fault.code, transport, phase, id]
    }
  })
  const problem: ProblemDetails = app.faultline.toProblem(new NotFoundError())
  const catalog: CatalogEntry[] = app.faultline.catalog
  const reported: Fault = app.faultline.report(new Error('x'), { transport: 'background', phase: 'after-response', task: 'mail' })
  t.equal(problem.status, 404)
  t.ok(catalog.length > 0)
  t.equal(reported.status, 500)
  // Checked by the type checker only (never called): each line must not compile.
  function mustNotCompile (): void {
    // @ts-expect-error debug is a boolean
    app.register(faultlineHttp, { debug: 'yes' })
    // @ts-expect-error unknown transports are rejected
    app.faultline.report(new Error('x'), { transport: 'smtp' })
    // @ts-expect-error log levels are pino's
    app.register(faultlineHttp, { logLevels: { '4xx': 'loud' } })
  }
  void mustNotCompile // eslint-disable-line no-void
})

t.test('the members other plugins add are typed present, and are undefined until their plugin is registered (as documented)', async t => {
  const app = Fastify()
  await app.register(faultlineHttp)
  // Declaration merging cannot see registration: both read without a check.
  const sse: FaultlineSse = app.faultline.sse
  const background: FaultlineBackground = app.faultline.background
  t.equal(sse, undefined, 'docs/sse.md: undefined without faultlineSse')
  t.equal(background, undefined, 'docs/background.md: undefined without faultlineBackground')
  await app.register(faultlineSse)
  await app.register(faultlineBackground)
  t.equal(app.faultline.sse.open, 0)
  t.equal(app.faultline.background.stats().pending, 0)
  await app.close()
})
