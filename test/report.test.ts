import t from 'tap'
import { NotFoundError, InternalError, ClientClosedError, toFault, type FaultContext } from '../index.js'
import { createReport, levelFor, serializeFault, type FaultLogger } from '../lib/report.js'
import { guardProcess } from './helpers/guard.js'

guardProcess(t)

interface Entry { level: string, obj: Record<string, unknown>, msg: string | undefined }

function fakeLogger (enabled: (level: string) => boolean = () => true, withCheck = true): FaultLogger & { entries: Entry[] } {
  const entries: Entry[] = []
  const at = (level: string) => (obj: object, msg?: string) => { entries.push({ level, obj: obj as Record<string, unknown>, msg }) }
  const log = { entries, trace: at('trace'), debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), fatal: at('fatal') }
  return withCheck ? Object.assign(log, { isLevelEnabled: enabled }) : log
}

t.test('levelFor: 4xx info, 5xx error, client aborts debug, overridable by class and code', async t => {
  t.equal(levelFor(new NotFoundError(), undefined), 'info')
  t.equal(levelFor(new InternalError(), undefined), 'error')
  t.equal(levelFor(new ClientClosedError(), undefined), 'debug')
  const levels = { '4xx': 'warn', '5xx': 'fatal', clientAbort: 'trace', NOT_FOUND: 'silent', toString: undefined } as const
  t.equal(levelFor(new NotFoundError(), levels), 'silent', 'by code first')
  t.equal(levelFor(toFault(Object.assign(new Error(), { statusCode: 409 })), levels), 'warn')
  t.equal(levelFor(new InternalError(), levels), 'fatal')
  t.equal(levelFor(new ClientClosedError(), levels), 'trace')
  t.equal(levelFor(new NotFoundError(), {}), 'info', 'empty map: defaults')
  t.equal(levelFor(new InternalError(), {}), 'error')
  t.equal(levelFor(new ClientClosedError(), {}), 'debug')
})

t.test('logs once per request with the contract fields, then calls every reporter', async t => {
  const log = fakeLogger()
  const calls: Array<[unknown, FaultContext]> = []
  const report = createReport({ reporters: [(f, c) => { calls.push([f, c]) }, (f, c) => { calls.push([f, c]) }], log })
  const request = { id: 'req-1', log }
  const raw = new Error('db down')
  const fault = toFault(raw)
  t.equal(report(fault, { transport: 'stream', phase: 'mid-stream', request, bytes: 10 }, raw), true)
  t.equal(log.entries.length, 1)
  const [entry] = log.entries
  t.equal(entry!.level, 'error')
  t.equal(entry!.msg, 'db down')
  t.match(entry!.obj, { fault: { code: 'INTERNAL', status: 500 }, transport: 'stream', phase: 'mid-stream', handled: true, bytes: 10 })
  t.notOk('request' in entry!.obj, 'the request object is not logged (pino adds reqId)')
  t.match(entry!.obj.err, { name: 'InternalError', message: 'db down', code: 'INTERNAL', status: 500, stack: /InternalError: db down/, cause: [{ message: 'db down' }] })
  t.equal(Object.getPrototypeOf(entry!.obj.err), null)
  t.equal(calls.length, 2)
  t.equal(calls[0]![0], fault)
  t.match(calls[0]![1], { transport: 'stream', phase: 'mid-stream', request })

  t.equal(report(fault, { transport: 'http', phase: 'before-response', request }), false, 'same fault, same request: not again')
  t.equal(report(toFault(raw), { transport: 'http', phase: 'before-response', request }, raw), false, 'same original value: not again')
  const second = new NotFoundError('other')
  t.equal(report(second, { transport: 'http', phase: 'before-response', request }, second), true, 'another fault on the same request')
  const third = new NotFoundError('third')
  t.equal(report(third, { transport: 'http', phase: 'before-response', request }, new Error('orig')), true)
  t.equal(log.entries.length, 3)
  t.equal(calls.length, 6)

  const shared = new NotFoundError('preallocated')
  t.equal(report(shared, { transport: 'http', phase: 'before-response', request: { id: 'a', log } }), true)
  t.equal(report(shared, { transport: 'http', phase: 'before-response', request: { id: 'b', log } }), true, 'a shared fault instance is reported for every request')
})

t.test('dedupe: false reports every occurrence; the per-request memory is bounded', async t => {
  const log = fakeLogger()
  const report = createReport({ reporters: [], log })
  const request = { id: 'socket', log }
  const shared = new NotFoundError('bad message')
  t.equal(report(shared, { transport: 'websocket', phase: 'message', request, dedupe: false }), true)
  t.equal(report(shared, { transport: 'websocket', phase: 'message', request, dedupe: false }), true)
  t.notOk('dedupe' in log.entries[0]!.obj)
  const first = new NotFoundError('first')
  report(first, { transport: 'websocket', phase: 'message', request }, new Error('orig'))
  for (let i = 0; i < 20; i++) report(new NotFoundError(`n${i}`), { transport: 'websocket', phase: 'message', request }, new Error('o'))
  t.equal(report(first, { transport: 'websocket', phase: 'message', request }), true, 'an old fault has left the window')
  t.equal(log.entries.length, 24)
})

t.test('4xx lines carry no stack; raised levels do', async t => {
  const log = fakeLogger()
  const report = createReport({ reporters: [], log, logLevel: { '4xx': 'warn' } })
  report(new NotFoundError('gone'), { transport: 'http', phase: 'before-response' })
  t.equal(log.entries[0]!.level, 'warn')
  t.match((log.entries[0]!.obj.err as { stack: string }).stack, /NotFoundError: gone/)
  const plain = fakeLogger()
  createReport({ reporters: [], log: plain })(new NotFoundError('gone'), { transport: 'http', phase: 'before-response' })
  t.equal(plain.entries[0]!.obj.err, undefined, 'an info line has no err record (pino would add an empty stack)')
})

t.test('a report can set its own level (expected faults, e.g. shutdown)', async t => {
  const log = fakeLogger()
  const report = createReport({ reporters: [], log })
  report(new InternalError('going away'), { transport: 'sse', phase: 'mid-stream', level: 'info', reason: 'shutdown' })
  t.equal(log.entries[0]!.level, 'info')
  t.notOk('level' in log.entries[0]!.obj, 'the level is not copied as a field (pino owns `level`)')
  t.equal(log.entries[0]!.obj.reason, 'shutdown')
})

t.test('builds nothing when the level is off; silent never logs', async t => {
  const log = fakeLogger(level => level !== 'error')
  let called = 0
  const report = createReport({ reporters: [() => { called++ }], log, logLevel: { '4xx': 'silent' } })
  report(new InternalError('x'), { transport: 'http', phase: 'before-response' })
  report(new NotFoundError('x'), { transport: 'http', phase: 'before-response' })
  t.equal(log.entries.length, 0)
  t.equal(called, 2, 'reporters run whatever the log level')
  const noCheck = fakeLogger(undefined, false)
  createReport({ reporters: [], log: noCheck })(new NotFoundError('x'), { transport: 'http', phase: 'before-response' })
  t.equal(noCheck.entries.length, 1, 'a logger without isLevelEnabled is just called')
})

t.test('a reporter that throws or rejects is logged and ignored', async t => {
  const log = fakeLogger()
  let after = 0
  const report = createReport({
    log,
    reporters: [
      () => { throw new Error('sentry down') },
      async () => { throw new TypeError('async down') },
      () => { throw 'a string' }, // eslint-disable-line no-throw-literal
      () => { throw new Proxy({}, { get () { throw new Error('trap') } }) },
      () => Promise.reject(Object.assign(Object.create(null), { name: 7, message: 8 })),
      () => ({ then: 'not a function' }),
      () => { after++ }
    ]
  })
  t.equal(report(new NotFoundError('x'), { transport: 'http', phase: 'before-response' }), true)
  await new Promise(resolve => setImmediate(resolve))
  t.equal(after, 1, 'later reporters still run')
  const warnings = log.entries.filter(e => e.level === 'warn')
  t.equal(warnings.length, 5)
  t.match(warnings.map(w => w.obj.reporterError), [
    { type: 'Error', message: 'sentry down', stack: /sentry down/ },
    { type: 'string', message: 'a string' },
    { type: 'unknown', message: 'an unreadable value' },
    { type: 'TypeError', message: 'async down' },
    { type: 'Object', message: '' }
  ])
  t.match(warnings[0]!.obj, { fault: { code: 'NOT_FOUND', status: 404 } })
  t.equal(warnings[0]!.msg, 'faultline: an onFault reporter failed; ignored')
})

t.test('a server fault\'s details are in the log (previewed), never only in memory', async t => {
  const f = new InternalError('x', { details: { connection: 'postgres://u:secret@db' } })
  t.equal(serializeFault(f, true).details, '{"connection":"postgres://u:secret@db"}')
  t.equal(serializeFault(new InternalError('x'), true).details, undefined)
  t.equal(serializeFault(f, false).details, undefined)
})

t.test('a logger without isLevelEnabled (Fastify\'s logger: false) gets stacks computed only when read', async t => {
  const noCheck = fakeLogger(undefined, false)
  const report = createReport({ reporters: [], log: noCheck })
  const cause = new Error('root')
  report(new InternalError('x', { cause }), { transport: 'http', phase: 'before-response' })
  const err = noCheck.entries[0]!.obj.err as Record<string, unknown>
  const descriptor = Object.getOwnPropertyDescriptor(err, 'stack')!
  t.equal(typeof descriptor.get, 'function', 'not formatted yet')
  t.match(err.stack, /InternalError: x/, 'computed on first read')
  t.equal(Object.getOwnPropertyDescriptor(err, 'stack')!.value, err.stack, 'then kept as a plain value')
  t.match(err.cause, [{ message: 'root' }])
  t.match(JSON.parse(JSON.stringify(err)), { name: 'InternalError', stack: /InternalError/, cause: [{ message: 'root' }] }, 'serializers see them')

  report(new InternalError('no cause'), { transport: 'http', phase: 'before-response' })
  t.notOk('cause' in (noCheck.entries[1]!.obj.err as object))
  const hostile = new InternalError('hostile cause', { cause: new Proxy({}, { get () { throw new Error('trap') } }) })
  Object.defineProperty(hostile, 'stack', { value: 7 })
  report(hostile, { transport: 'http', phase: 'before-response' })
  const hostileErr = noCheck.entries[2]!.obj.err as Record<string, unknown>
  t.equal(hostileErr.stack, undefined)
  t.equal(hostileErr.cause, undefined, 'an unreadable chain is no chain')
})

t.test('serializeFault', async t => {
  const f = new NotFoundError('x')
  Object.defineProperty(f, 'stack', { value: 42 })
  t.same({ ...serializeFault(f, true) }, { name: 'NotFoundError', message: 'x', code: 'NOT_FOUND', status: 404 })
})

t.test('the log line keeps the code of the error a fault adopted (the client never sees it)', async t => {
  const log = fakeLogger()
  const report = createReport({ reporters: [], log })
  const summary = (fault: ReturnType<typeof toFault>): unknown => {
    report(fault, { transport: 'http', phase: 'before-response' })
    return log.entries.at(-1)!.obj.fault
  }
  t.same(summary(toFault(Object.assign(new Error('no header'), { statusCode: 401, code: 'FST_JWT_NO_AUTHORIZATION_IN_HEADER' }))),
    { code: 'UNAUTHORIZED', status: 401, causeCode: 'FST_JWT_NO_AUTHORIZATION_IN_HEADER' })
  t.same(summary(new NotFoundError('x')), { code: 'NOT_FOUND', status: 404 }, 'no cause: no causeCode')
  t.same(summary(new NotFoundError('x', { cause: new NotFoundError('y') })), { code: 'NOT_FOUND', status: 404 }, 'the same code is not repeated')
  t.same(summary(new NotFoundError('x', { cause: { code: 42 } })), { code: 'NOT_FOUND', status: 404 }, 'only string codes')
  t.equal((summary(new NotFoundError('x', { cause: { code: 'C'.repeat(500) } })) as { causeCode: string }).causeCode.length, 101, 'bounded')
  const hostile = new Proxy({}, { get () { throw new Error('trap') } })
  t.same(summary(new NotFoundError('x', { cause: hostile })), { code: 'NOT_FOUND', status: 404 }, 'a cause whose getter throws')
})
