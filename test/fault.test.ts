import t from 'tap'
import * as faultline from '../index.js'
import {
  Fault, defineFault, isFault, isSendableCloseCode, ValidationError, InternalError,
  NotFoundError, ClientClosedError, ServiceUnavailableError
} from '../index.js'
import { describe, codeForStatus, statusTitle, faultCatalog, faultClassFor } from '../lib/fault.js'
import { guardProcess } from './helpers/guard.js'

guardProcess(t)

const BUILTINS: Array<[string, number, string]> = [
  ['BadRequestError', 400, 'BAD_REQUEST'],
  ['UnauthorizedError', 401, 'UNAUTHORIZED'],
  ['ForbiddenError', 403, 'FORBIDDEN'],
  ['NotFoundError', 404, 'NOT_FOUND'],
  ['MethodNotAllowedError', 405, 'METHOD_NOT_ALLOWED'],
  ['NotAcceptableError', 406, 'NOT_ACCEPTABLE'],
  ['RequestTimeoutError', 408, 'REQUEST_TIMEOUT'],
  ['ConflictError', 409, 'CONFLICT'],
  ['GoneError', 410, 'GONE'],
  ['PayloadTooLargeError', 413, 'PAYLOAD_TOO_LARGE'],
  ['UnsupportedMediaTypeError', 415, 'UNSUPPORTED_MEDIA_TYPE'],
  ['RangeNotSatisfiableError', 416, 'RANGE_NOT_SATISFIABLE'],
  ['ValidationError', 400, 'VALIDATION'],
  ['TooManyRequestsError', 429, 'TOO_MANY_REQUESTS'],
  ['ClientClosedError', 499, 'CLIENT_CLOSED'],
  ['InternalError', 500, 'INTERNAL'],
  ['NotImplementedError', 501, 'NOT_IMPLEMENTED'],
  ['BadGatewayError', 502, 'BAD_GATEWAY'],
  ['ServiceUnavailableError', 503, 'SERVICE_UNAVAILABLE'],
  ['GatewayTimeoutError', 504, 'GATEWAY_TIMEOUT'],
  ['StreamTruncatedError', 502, 'STREAM_TRUNCATED'],
  ['ConnectionLostError', 502, 'CONNECTION_LOST'],
  ['ServerShutdownError', 503, 'SERVER_SHUTDOWN']
]

t.test('every built-in has its status, its code, its name and the defaults', async t => {
  const exported = faultline as unknown as Record<string, faultline.FaultClass>
  for (const [name, status, code] of BUILTINS) {
    const Cls = exported[name]
    t.ok(Cls, `${name} is exported`)
    t.equal(Cls.status, status, `${name}.status`)
    t.equal(Cls.code, code, `${name}.code`)
    t.equal(Cls.name, name, `${name}.name`)
    const fault = new Cls()
    t.ok(fault instanceof Fault && fault instanceof Error && fault instanceof Cls, `${name} instanceof`)
    t.equal(fault.name, name)
    t.equal(fault.status, status)
    t.equal(fault.code, code)
    t.equal(fault.message, Cls.title, 'message defaults to the title')
    t.equal(fault.expose, status < 500, `${name} expose default`)
    t.equal(fault.exposeDetails, fault.expose)
    t.equal(fault.retryable, [408, 429, 502, 503, 504].includes(status), `${name} retryable default`)
    t.equal(fault.retryAfter, undefined)
    t.equal(fault.details, undefined)
    t.equal(fault.cause, undefined)
    t.match(fault.stack, new RegExp(`^${name}: `))
  }
  t.equal(new NotFoundError('').message, 'Not Found', 'an empty message also defaults to the title')
  t.equal(ClientClosedError.title, 'Client Closed Request')
  t.equal(ValidationError.title, 'Validation Failed')
})

t.test('the client-side built-ins and the shutdown fault', async t => {
  const { StreamTruncatedError, ConnectionLostError, ServerShutdownError, BadGatewayError } = faultline
  t.equal(StreamTruncatedError.title, 'Stream Truncated')
  t.equal(ConnectionLostError.title, 'Connection Lost')
  t.equal(ServerShutdownError.title, 'Server Shutting Down')
  t.equal(new StreamTruncatedError('x', { retryable: false }).retryable, false, 'still overridable per instance')
  t.equal(faultline.toFault({ statusCode: 502 }).constructor, BadGatewayError, 'a carried 502 stays a BadGatewayError')
  t.equal(faultline.toFault({ statusCode: 503 }).constructor, ServiceUnavailableError, 'a carried 503 stays a ServiceUnavailableError')
  t.equal(faultline.toFault({ statusCode: 416 }).constructor, faultline.RangeNotSatisfiableError)
})

t.test('the reason-phrase table covers every registered 4xx and 5xx status', async t => {
  const { STATUS_CODES } = await import('node:http')
  for (const [status, phrase] of Object.entries(STATUS_CODES)) {
    if (Number(status) >= 400) t.equal(statusTitle(Number(status)), phrase, status)
  }
  t.equal(statusTitle(499), 'Client Error', 'an unregistered 4xx')
  t.equal(statusTitle(599), 'Server Error', 'an unregistered 5xx')
})

t.test('constructor options', async t => {
  const cause = new Error('root')
  const f = new ServiceUnavailableError('down', { cause, details: { region: 'eu' }, expose: true, exposeDetails: false, retryAfter: 1.2, retryable: false })
  t.equal(f.message, 'down')
  t.equal(f.cause, cause)
  t.same(f.details, { region: 'eu' })
  t.equal(f.expose, true)
  t.equal(f.exposeDetails, false)
  t.equal(f.retryAfter, 2, 'retryAfter is whole seconds, rounded up')
  t.equal(f.retryable, false)
  t.notOk(Object.hasOwn(new NotFoundError('x', {}), 'cause'), 'no own cause unless given')
  for (const bad of [-1, Number.NaN, Infinity, '5', null, 1e21, Number.MAX_SAFE_INTEGER + 2]) {
    t.equal(new ServiceUnavailableError('x', { retryAfter: bad as number }).retryAfter, undefined, `retryAfter ${String(bad)} is ignored`)
  }
  t.equal(new ServiceUnavailableError('x', {}).retryable, true, 'class default when options omit it')
  t.equal(new InternalError('x', { expose: true }).exposeDetails, true, 'exposeDetails follows expose')
})

t.test('a plain Fault is a 500 INTERNAL', async t => {
  const f = new Fault('plain')
  t.equal(f.status, 500)
  t.equal(f.code, 'INTERNAL')
  t.equal(f.name, 'Fault')
  t.equal(f.expose, false)
})

t.test('defineFault makes real, typed, subclassable classes', async t => {
  const PaymentRequiredError = defineFault<{ invoice: string }>({ code: 'PAYMENT_REQUIRED', status: 402 })
  const f = new PaymentRequiredError('pay first', { details: { invoice: 'inv-1' } })
  t.ok(f instanceof PaymentRequiredError && f instanceof Fault && f instanceof Error)
  t.equal(PaymentRequiredError.name, 'PaymentRequiredError', 'name from the code')
  t.equal(f.name, 'PaymentRequiredError')
  t.equal(f.code, 'PAYMENT_REQUIRED')
  t.equal(f.status, 402)
  t.equal(f.title, 'Payment Required', 'title from the status')
  t.equal(f.details?.invoice, 'inv-1')
  t.equal(f.expose, true)
  t.equal(f.retryable, false)

  class CardDeclinedError extends PaymentRequiredError {}
  const d = new CardDeclinedError('declined')
  t.ok(d instanceof CardDeclinedError && d instanceof PaymentRequiredError)
  t.equal(d.code, 'PAYMENT_REQUIRED', 'subclasses inherit the taxonomy fields')
  t.equal(d.name, 'PaymentRequiredError', 'an undecorated subclass keeps the parent name on the prototype')

  const Quota = defineFault({ code: 'QUOTA_EXHAUSTED', status: 503, title: 'Quota exhausted', name: 'QuotaError', retryable: false, expose: true, closeCode: 4503 })
  const q = new Quota()
  t.equal(Quota.name, 'QuotaError')
  t.equal(q.title, 'Quota exhausted')
  t.equal(q.message, 'Quota exhausted')
  t.equal(q.retryable, false, 'class retryable overrides the status default')
  t.equal(q.expose, true, 'class expose overrides the status default')
  t.equal(Quota.closeCode, 4503)
  t.equal(new Quota('x', { expose: false, retryable: true }).expose, false, 'instance options override the class')

  t.equal(defineFault({ code: '123', status: 400 }).name, 'CustomFaultError', 'codes that cannot name a class')
  t.equal(defineFault({ code: '支払い失敗', status: 400 }).name, 'CustomFaultError')
  t.equal(defineFault({ code: 'rate.limited', status: 429 }).name, 'RateLimitedError')
  t.equal(defineFault({ code: 'odd-599', status: 599 }).title, 'Server Error', 'statuses without a reason phrase')
  t.equal(defineFault({ code: 'odd-499', status: 499 }).title, 'Client Error')
})

t.test('defineFault rejects bad definitions with FST_FAULTLINE_INVALID_FAULT', async t => {
  const bad: Array<[unknown, RegExp]> = [
    [null, /options must be an object/],
    ['x', /options must be an object/],
    [{ status: 400 }, /code must be/],
    [{ code: '', status: 400 }, /code must be/],
    [{ code: 'A\nB', status: 400 }, /code must be/],
    [{ code: 'x'.repeat(201), status: 400 }, /code must be/],
    [{ code: 'LONE_\ud83d', status: 400 }, /code must be/],
    [{ code: 'A', status: 200 }, /status must be an integer from 400 to 599, got 200/],
    [{ code: 'A', status: 600 }, /status must be/],
    [{ code: 'A', status: 404.5 }, /status must be/],
    [{ code: 'A', status: '404' }, /status must be.*"404"/],
    [{ code: 'A', status: 400, title: '' }, /title must be/],
    [{ code: 'A', status: 400, title: 7 }, /title must be/],
    [{ code: 'A', status: 400, name: 'not a name' }, /name must be/],
    [{ code: 'A', status: 400, retryable: 'yes' }, /retryable must be a boolean/],
    [{ code: 'A', status: 400, expose: 1 }, /expose must be a boolean/],
    [{ code: 'A', status: 400, closeCode: 1006 }, /closeCode must be a sendable/],
    [{ code: 'A', status: 400, closeCode: 5000 }, /closeCode/]
  ]
  for (const [options, message] of bad) {
    t.throws(() => defineFault(options as faultline.DefineFaultOptions), { code: 'FST_FAULTLINE_INVALID_FAULT', message }, describe(options))
  }
})

t.test('a code cannot be redefined with another status', async t => {
  defineFault({ code: 'TWICE', status: 409 })
  t.doesNotThrow(() => defineFault({ code: 'TWICE', status: 409 }), 'same code and status: allowed (module reloads)')
  t.throws(() => defineFault({ code: 'TWICE', status: 410 }), { code: 'FST_FAULTLINE_DUPLICATE_CODE', message: /'TWICE' is already defined with status 409/ })
  t.throws(() => defineFault({ code: 'NOT_FOUND', status: 400 }), { code: 'FST_FAULTLINE_DUPLICATE_CODE' }, 'built-in codes are taken')
})

t.test('the catalog lists built-ins and defined faults, by status', async t => {
  defineFault({ code: 'CATALOGUED', status: 422, title: 'Catalogued' })
  const catalog = faultCatalog()
  t.same(catalog.find(e => e.code === 'CATALOGUED'), { code: 'CATALOGUED', status: 422, title: 'Catalogued', name: 'CataloguedError' })
  t.same(catalog.find(e => e.code === 'NOT_FOUND'), { code: 'NOT_FOUND', status: 404, title: 'Not Found', name: 'NotFoundError' })
  for (let i = 1; i < catalog.length; i++) t.ok(catalog[i - 1]!.status <= catalog[i]!.status, 'sorted by status')
  t.equal(faultClassFor('NOT_FOUND'), NotFoundError)
  t.equal(faultClassFor('NOPE'), undefined)
})

t.test('isFault', async t => {
  t.ok(isFault(new NotFoundError()))
  t.ok(isFault(new (defineFault({ code: 'IS_FAULT', status: 400 }))()))
  t.notOk(isFault(new Error('x')))
  t.notOk(isFault(null))
  t.notOk(isFault('NOT_FOUND'))
  t.notOk(isFault({ code: 'NOT_FOUND', status: 404 }))
  t.ok(isFault({ [Symbol.for('fastify-faultline.fault')]: true }), 'a fault from another copy of the package')
  const hostile = new Proxy({}, { getPrototypeOf () { throw new Error('trap') }, get () { throw new Error('trap') } })
  t.notOk(isFault(hostile), 'a hostile Proxy is not a fault, and does not throw')
})

t.test('isSendableCloseCode', async t => {
  for (const ok of [1000, 1001, 1003, 1007, 1011, 1014, 3000, 4000, 4999]) t.ok(isSendableCloseCode(ok), String(ok))
  for (const no of [999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 4000.5, '4000', null]) t.notOk(isSendableCloseCode(no), String(no))
})

t.test('status helpers and describe', async t => {
  t.equal(statusTitle(418), "I'm a Teapot")
  t.equal(codeForStatus(418), 'IM_A_TEAPOT')
  t.equal(codeForStatus(599), 'SERVER_ERROR')
  t.equal(describe('x'.repeat(100)), JSON.stringify('x'.repeat(60) + '…'))
  t.equal(describe('ok'), '"ok"')
  t.equal(describe(null), 'null')
  t.equal(describe([]), 'an array')
  t.equal(describe({}), 'an object')
  t.equal(describe(() => {}), 'a function')
  t.equal(describe(12), '12')
  t.equal(describe(Symbol('s')), 'Symbol(s)')
  const { proxy, revoke } = Proxy.revocable([], {})
  revoke()
  t.equal(describe(proxy), 'an unprintable value')
})
