import t from 'tap'
import Fastify from 'fastify'
import { NotFoundError, InternalError, ClientClosedError, defineFault, toFault, type FaultContext } from '../index.js'
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
  // An adopted Error logs as itself: its name, where it was thrown, the message once.
  t.same({ ...entry!.obj.err as object }, { name: 'Error', message: 'db down', code: 'INTERNAL', status: 500, stack: raw.stack })
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

t.test('a logger whose method for the level is empty (Fastify\'s logger: false) gets no record built', async t => {
  // A fault whose details count their reads: the record is the only reader here.
  let reads = 0
  const fault = new InternalError('x', { details: { sku: 1 } })
  Object.defineProperty(fault, 'details', { get () { reads++; return { sku: 1 } } })
  let reported = 0
  const reporters = [() => { reported++ }]
  const empties: FaultLogger[] = [
    Fastify({ logger: false }).log,
    { trace () {}, debug () {}, info () {}, warn () {}, error () {}, fatal () {} },
    { trace: () => {}, debug: () => {}, info: () => {}, warn: () => {}, error: () => {}, fatal: () => {} },
    { trace: function () { }, debug: function () { }, info: function () { }, warn: function () { }, error: function () { }, fatal: function () { } }
  ]
  for (const log of empties) {
    t.equal(createReport({ reporters, log })(fault, { transport: 'http', phase: 'before-response' }), true)
  }
  t.equal(reads, 0, 'no record was built')
  t.equal(reported, empties.length, 'reporters still run')

  // A method with a body, or only the fault's level left empty: the record goes out.
  const lines: unknown[] = []
  const writes = (obj: object): void => { lines.push(obj) }
  const partly = { trace () {}, debug () {}, info () {}, warn () {}, error: writes, fatal () {} }
  createReport({ reporters: [], log: partly })(fault, { transport: 'http', phase: 'before-response' })
  createReport({ reporters: [], log: partly })(new NotFoundError('quiet'), { transport: 'http', phase: 'before-response' })
  t.equal(lines.length, 1, 'the 5xx line went to the method with a body; the 4xx to an empty one')
  t.ok(reads > 0, 'its record read the details')
  t.match(lines[0], { fault: { code: 'INTERNAL', status: 500, details: /sku/ }, transport: 'http', handled: true, err: { name: 'InternalError', stack: /InternalError: x/ } }, 'the same record as ever')
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
  const log = fakeLogger()
  const report = createReport({ reporters: [], log })
  report(new InternalError('x', { details: { connection: 'postgres://u:secret@db' } }), { transport: 'http', phase: 'before-response' })
  t.same(log.entries[0]!.obj.fault, { code: 'INTERNAL', status: 500, details: '{"connection":"postgres://u:secret@db"}' })
  report(new InternalError('x'), { transport: 'http', phase: 'before-response' })
  t.same(log.entries[1]!.obj.fault, { code: 'INTERNAL', status: 500 })
  const cyclic: Record<string, unknown> = { a: 'x'.repeat(5000) }
  cyclic.self = cyclic
  report(new InternalError('x', { details: cyclic }), { transport: 'http', phase: 'before-response' })
  const preview = (log.entries[2]!.obj.fault as { details: string }).details
  t.ok(preview.length < 5000 && preview.endsWith('…'), 'bounded')
})

t.test('a client fault\'s line carries its exposed details, previewed as for 5xx; never unexposed ones', async t => {
  const OutOfStockError = defineFault<{ sku: string }>({ code: 'OUT_OF_STOCK_LOG', status: 409 })
  const log = fakeLogger()
  const report = createReport({ reporters: [], log })
  report(new OutOfStockError('SKU A is out', { details: { sku: 'A' } }), { transport: 'http', phase: 'before-response' })
  t.equal(log.entries[0]!.level, 'info')
  t.same(log.entries[0]!.obj.fault, { code: 'OUT_OF_STOCK_LOG', status: 409, details: '{"sku":"A"}' })
  t.equal(log.entries[0]!.obj.err, undefined, 'still no err record on a 4xx line')
  report(new OutOfStockError('hidden', { details: { sku: 'S3CR3T' }, exposeDetails: false }), { transport: 'http', phase: 'before-response' })
  t.same(log.entries[1]!.obj.fault, { code: 'OUT_OF_STOCK_LOG', status: 409 }, 'details the client may not see stay out of info lines')
  const big = { sku: 'B', list: Array.from({ length: 10_000 }, (_, i) => i) }
  report(new OutOfStockError('big', { details: big }), { transport: 'http', phase: 'before-response' })
  const preview = (log.entries[2]!.obj.fault as { details: string }).details
  t.ok(preview.length < 2000 && preview.endsWith('…'), 'bounded as for 5xx')
})

t.test('an adopted error logs its own name and stack at the top; a wrapped fault keeps its own and its cause chain', async t => {
  const log = fakeLogger()
  const report = createReport({ reporters: [], log })
  const root = new RangeError('socket hang up')
  const thrown = new TypeError('cannot read balance', { cause: root })
  report(toFault(thrown), { transport: 'http', phase: 'before-response' }, thrown)
  const adopted = log.entries[0]!.obj.err as Record<string, unknown>
  t.equal(adopted.name, 'TypeError')
  t.equal(adopted.stack, thrown.stack, 'where it was thrown, not toFault\'s frameless InternalError')
  t.match(adopted.cause, [{ name: 'RangeError', message: 'socket hang up', stack: root.stack }], 'its own causes follow')
  t.equal((adopted.cause as unknown[]).length, 1)
  t.equal(JSON.stringify(adopted).split('cannot read balance').length - 1, 2, 'the message once (and once in the stack), not once per layer')

  const wrapped = new InternalError('ledger write failed', { cause: thrown })
  report(wrapped, { transport: 'http', phase: 'before-response' }, wrapped)
  const own = log.entries[1]!.obj.err as Record<string, unknown>
  t.equal(own.name, 'InternalError')
  t.equal(own.stack, wrapped.stack)
  t.match(own.cause, [{ name: 'TypeError', stack: thrown.stack }, { name: 'RangeError' }])
  t.equal((own.cause as unknown[]).length, 2, 'the whole chain, nothing more')

  const lazily = fakeLogger(undefined, false)
  const reportLazily = createReport({ reporters: [], log: lazily })
  reportLazily(toFault(thrown), { transport: 'http', phase: 'before-response' }, thrown)
  const lazy = lazily.entries[0]!.obj.err as Record<string, unknown>
  t.equal(typeof Object.getOwnPropertyDescriptor(lazy, 'stack')!.get, 'function', 'not read until a serializer reads it')
  t.same(JSON.parse(JSON.stringify(lazy)), JSON.parse(JSON.stringify(adopted)), 'the same record, lazily')

  const plain = new Error('no cause')
  reportLazily(toFault(plain), { transport: 'http', phase: 'before-response' }, plain)
  t.notOk('cause' in (lazily.entries[1]!.obj.err as object), 'no cause: no chain')

  // A value whose name, stack and cause getters work while toFault adopts it, then throw
  const hostile = { message: 'fine', statusCode: 502 }
  let armed = false
  for (const key of ['name', 'stack', 'cause']) {
    Object.defineProperty(hostile, key, { get () { if (armed) throw new Error('trap') } })
  }
  const fault = toFault(hostile)
  armed = true
  report(fault, { transport: 'http', phase: 'before-response' }, hostile)
  const last = log.entries.at(-1)!.obj.err as Record<string, unknown>
  t.same({ ...last }, { name: 'BadGatewayError', message: 'fine', code: 'BAD_GATEWAY', status: 502 }, 'getters that throw are skipped')
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
  t.equal((err.cause as unknown[]).length, 1)
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
  t.same({ ...serializeFault(f) }, { name: 'NotFoundError', message: 'x', code: 'NOT_FOUND', status: 404 })
})

t.test('an adopted error logs its code and own fields as pino would, bounded', async t => {
  const log = fakeLogger()
  const lazily = fakeLogger(undefined, false)
  const refused = Object.assign(new Error('connect ECONNREFUSED 10.0.3.7:5432'), { code: 'ECONNREFUSED', port: 5432, big: 'x'.repeat(5000) })
  for (const logger of [log, lazily]) {
    createReport({ reporters: [], log: logger })(toFault(refused), { transport: 'http', phase: 'before-response' }, refused)
  }
  const eager = log.entries[0]!.obj.err as Record<string, any>
  t.match(eager, { name: 'Error', code: 'ECONNREFUSED', status: 500, stack: refused.stack, fields: { port: 5432 } })
  t.ok(eager.fields.big.length < 5000, 'fields are previewed')
  t.same(JSON.parse(JSON.stringify(lazily.entries[0]!.obj.err)), JSON.parse(JSON.stringify(eager)), 'the same record, lazily')
  t.equal(log.entries[0]!.obj.fault && (log.entries[0]!.obj.fault as { code: string }).code, 'INTERNAL', 'the fault code stays in `fault`')

  const hostileCause = Object.defineProperty(new Error('x'), 'cause', { get () { throw new Error('trap') } })
  createReport({ reporters: [], log: lazily })(toFault(hostileCause), { transport: 'http', phase: 'before-response' }, hostileCause)
  const err = lazily.entries[1]!.obj.err as Record<string, unknown>
  t.notOk('cause' in err, 'a cause that cannot be read is no cause')
  t.equal(err.name, 'InternalError', 'an original that cannot be read safely is described by the fault')
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
