// Type-level API tests for faultlineSse: `npm test` type-checks this file
// (tsc --noEmit); the runtime asserts keep it honest too.
import t from 'tap'
import Fastify from 'fastify'
import {
  faultlineHttp, faultlineSse, sseFaultEvent, isTerminalEventId, terminalEventId, isTerminalFault,
  ForbiddenError, toProblem, type Fault, type FaultlineSse, type FaultlineSseOptions, type SseFaultOptions,
  type SseFaultEventOptions
} from '../index.js'
import { guardProcess } from './helpers/guard.js'

t.test('options, decorators and helpers are typed', async t => {
  guardProcess(t)
  const opts: FaultlineSseOptions = {
    sse: { heartbeatInterval: 1000, serializer: (data: unknown) => JSON.stringify(data) },
    errorEvent: 'error',
    terminalIdPrefix: 'stop:',
    defaultRetry: 2000,
    closeTimeout: 1000
  }
  // @ts-expect-error errorEvent is a string
  const badEvent: FaultlineSseOptions = { errorEvent: 1 }
  // @ts-expect-error unknown @fastify/sse option
  const badSse: FaultlineSseOptions = { sse: { heartbeat: 1 } }
  t.ok(badEvent && badSse)

  const app = Fastify()
  await app.register(faultlineHttp)
  await app.register(faultlineSse, opts)
  const sse: FaultlineSse | undefined = app.faultline.sse
  const open: number | undefined = app.faultline.sse.open
  t.equal(open, 0)
  t.ok(sse)
  if (sse !== undefined) {
    t.throws(() => {
      // @ts-expect-error `open` is read-only
      sse.open = 3
    }, TypeError)
  }

  app.get('/events', { sse: 'only' }, async (request, reply) => {
    const nonFatal: Fault = reply.sse.fault(new ForbiddenError())
    const close: SseFaultOptions = { close: true }
    const fatal: Fault = reply.sse.fault(new Error('x'), close)
    // @ts-expect-error `close` is a boolean
    reply.sse.fault(new Error('x'), { close: 'yes' })
    return [nonFatal, fatal].length
  })
  await app.ready()
  await app.close()

  const fault = new ForbiddenError()
  const eventOpts: SseFaultEventOptions = { event: 'error', final: true, terminalIdPrefix: 'p:', defaultRetry: 1 }
  const bytes: string = sseFaultEvent(fault, toProblem(fault), eventOpts)
  const terminal: boolean = isTerminalEventId(terminalEventId(fault.code)) && isTerminalFault(fault)
  t.ok(bytes.startsWith('event: error'))
  t.ok(terminal)
})
