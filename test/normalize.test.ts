import t from 'tap'
import createHttpErrorTyped from 'http-errors'
import Boom from '@hapi/boom'
import createError from '@fastify/error'
import {
  toFault, Fault, NotFoundError, InternalError, ValidationError, ClientClosedError,
  PayloadTooLargeError, UnsupportedMediaTypeError, BadRequestError, ServiceUnavailableError,
  TooManyRequestsError
} from '../index.js'
import { guardProcess } from './helpers/guard.js'
import { carriedStatus, toFaultForReply } from '../lib/normalize.js'

// http-errors accepts a properties object in any position; its types do not say so.
const createHttpError = createHttpErrorTyped as unknown as (...args: unknown[]) => Error
import { hostileValues } from './helpers/hostile.js'

guardProcess(t)

t.test('hostile values never throw and become InternalError', async t => {
  for (const [name, value] of hostileValues()) {
    let fault: Fault | undefined
    t.doesNotThrow(() => { fault = toFault(value) }, name)
    t.ok(fault instanceof InternalError, `${name} -> InternalError`)
    t.equal(fault!.status, 500)
    t.equal(fault!.expose, false)
  }
})

t.test('hostile values are described, never kept when unsafe to read', async t => {
  t.equal(toFault(null).message, 'A non-error value was thrown: null')
  t.equal(toFault(undefined).message, 'A non-error value was thrown: undefined')
  t.equal(toFault('boom').message, 'A non-error value was thrown: "boom"')
  t.equal(toFault('y'.repeat(300)).message.length, 'A non-error value was thrown: '.length + 203)
  t.equal(toFault(Symbol('s')).message, 'A non-error value was thrown: Symbol(s)')
  t.equal(toFault(10n).message, 'A non-error value was thrown: 10n')
  t.equal(toFault(() => {}).message, 'A function was thrown')
  const proxy = new Proxy({}, { get () { throw new Error('trap') } })
  const fromProxy = toFault(proxy)
  t.equal(fromProxy.message, 'A Proxy was thrown')
  t.equal(fromProxy.cause, undefined, 'a Proxy is not kept as cause')
  const getters = Object.create(null, { message: { get () { throw new Error('x') } } })
  const fromGetters = toFault(getters)
  t.equal(fromGetters.message, 'A value was thrown whose properties could not be read')
  t.equal(fromGetters.cause, undefined, 'an unreadable object is not kept as cause')
  const err = new Error('db password=hunter2')
  const fault = toFault(err)
  t.equal(fault.message, 'db password=hunter2', 'the message is kept for logs')
  t.equal(fault.cause, err, 'the original error is the cause')
  t.equal(toFault(new Error('m'.repeat(10_000))).message.length, 8193, 'messages are bounded')
  t.equal(toFault({ message: 7 }).message, 'Internal Server Error', 'a non-string message')
})

t.test('an adopted fault captures no stack of its own: the cause has the real one', async t => {
  const limit = Error.stackTraceLimit
  const cause = new Error('db down')
  const fault = toFault(cause)
  t.equal(fault.stack, 'InternalError: db down', "no frames of faultline's own")
  t.match(cause.stack, /normalize\.test\.ts/, 'the cause keeps its frames')
  t.equal(Error.stackTraceLimit, limit, 'the limit is restored')
  t.match(new InternalError('direct').stack, /normalize\.test\.ts/, 'faults created by the app keep their stack')
})

t.test('faults are returned as they are', async t => {
  const f = new NotFoundError('x')
  t.equal(toFault(f), f)
  const foreign = Object.assign(Object.create(Fault.prototype), { status: 404 })
  t.equal(toFault(foreign), foreign)
  const branded = { [Symbol.for('fastify-faultline.fault')]: true, status: 409, code: 'X' }
  t.equal(toFault(branded), branded, 'a fault from another copy of the package')
})

t.test('client gone: AbortError and socket resets become 499', async t => {
  const abort = new DOMException('aborted', 'AbortError')
  for (const value of [
    abort,
    Object.assign(new Error('reset'), { code: 'ECONNRESET' }),
    Object.assign(new Error('pipe'), { code: 'EPIPE' }),
    Object.assign(new Error('premature'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }),
    Object.assign(new Error('undici'), { code: 'UND_ERR_SOCKET' }),
    Object.assign(new Error('abort'), { code: 'ABORT_ERR' })
  ]) {
    const f = toFault(value)
    t.ok(f instanceof ClientClosedError, String((value as Error).message))
    t.equal(f.status, 499)
    t.equal(f.cause, value)
  }
  t.ok(toFault(Object.assign(new Error('x'), { code: 'ENOENT' })) instanceof InternalError, 'other codes are ours')
})

t.test('ws protocol errors are the peer\'s fault: 413 for size, 400 otherwise', async t => {
  const big = toFault(Object.assign(new RangeError('Max payload size exceeded'), { code: 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' }))
  t.ok(big instanceof PayloadTooLargeError)
  t.equal(big.message, 'WebSocket protocol error: Max payload size exceeded')
  const utf8 = toFault(Object.assign(new Error('invalid UTF-8 sequence'), { code: 'WS_ERR_INVALID_UTF8' }))
  t.ok(utf8 instanceof BadRequestError)
  t.equal(utf8.expose, true)
  t.ok(utf8.cause instanceof Error)
})

t.test('Fastify validation errors become ValidationError with the entries', async t => {
  const err = Object.assign(new Error('body/name must be string'), {
    statusCode: 400,
    code: 'FST_ERR_VALIDATION',
    validationContext: 'body',
    validation: [
      { instancePath: '/name', keyword: 'type', params: { type: 'string', nested: { x: 1 }, list: ['a', 1], n: Infinity, ok: true, count: 2 }, message: 'must be string', schemaPath: '#/x' },
      { dataPath: '/legacy', message: 'old ajv' },
      { instancePath: 7, message: 8, params: [1] },
      null,
      'junk'
    ]
  })
  const f = toFault(err) as InstanceType<typeof ValidationError>
  t.ok(f instanceof ValidationError)
  t.equal(f.status, 400)
  t.equal(f.code, 'VALIDATION')
  t.equal(f.message, 'body/name must be string')
  t.same(f.details, {
    in: 'body',
    errors: [
      { instancePath: '/name', keyword: 'type', params: { type: 'string', list: ['a'], ok: true, count: 2 }, message: 'must be string' },
      { instancePath: '/legacy', message: 'old ajv' },
      { instancePath: '', message: 'is invalid' }
    ]
  })
  const many = toFault(Object.assign(new Error(''), { validation: Array.from({ length: 500 }, () => ({ instancePath: '', message: 'x' })) }))
  t.equal((many.details as { errors: unknown[] }).errors.length, 100, 'bounded')
  t.equal(many.message, 'Validation Failed')
  t.notOk('in' in (many.details as object), 'no context, no `in`')
})

t.test('http-errors, @fastify/sensible and @fastify/error keep status and expose', async t => {
  const nf = toFault(createHttpError(404, 'no such user'))
  t.ok(nf instanceof NotFoundError)
  t.equal(nf.message, 'no such user')
  t.equal(nf.expose, true)
  const hidden = toFault(createHttpError(400, 'secret', { expose: false }))
  t.ok(hidden instanceof BadRequestError)
  t.equal(hidden.expose, false, 'their own expose wins')
  const shown500 = toFault(createHttpError(503, 'maintenance', { expose: true, headers: { 'retry-after': '120' } }))
  t.ok(shown500 instanceof ServiceUnavailableError)
  t.equal(shown500.expose, true)
  t.equal(shown500.retryAfter, 120)
  t.equal(toFault(createHttpError(429, 'slow', { headers: { 'Retry-After': 30 } })).retryAfter, 30)
  t.equal(toFault(createHttpError(429, 'slow', { headers: { 'retry-after': 'Wed, 21 Oct 2015 07:28:00 GMT' } })).retryAfter, undefined, 'HTTP dates are not seconds')
  t.equal(toFault(createHttpError(429, 'slow', { headers: null })).retryAfter, undefined)
  const FstErr = createError('FST_ERR_CTP_BODY_TOO_LARGE', 'Request body is too large', 413)
  const big = toFault(new FstErr())
  t.ok(big instanceof PayloadTooLargeError)
  t.equal(big.message, 'Request body is too large')
  const MediaErr = createError('FST_ERR_CTP_INVALID_MEDIA_TYPE', 'Unsupported Media Type: %s', 415)
  t.ok(toFault(new MediaErr('text/x')) instanceof UnsupportedMediaTypeError)
  const json = toFault(Object.assign(new SyntaxError('Unexpected token'), { statusCode: 400 }))
  t.ok(json instanceof BadRequestError, 'invalid JSON bodies keep 400')
  t.ok(toFault({ status: 429, message: 'status field' }) instanceof TooManyRequestsError, '`status` is read when `statusCode` is absent')
})

t.test('carriedStatus: the status a value carries of its own, never throwing', async t => {
  t.equal(carriedStatus(createHttpError(404)), 404)
  t.equal(carriedStatus({ status: 429 }), 429)
  t.equal(carriedStatus({ statusCode: 200, status: 503 }), 503, 'an unusable statusCode falls back to status')
  t.equal(carriedStatus(Boom.badGateway()), 502)
  t.equal(carriedStatus({ isBoom: true, output: { statusCode: 'x' }, statusCode: 404 }), undefined, "a Boom's status is in output, or nowhere")
  t.equal(carriedStatus(new Error('plain')), undefined)
  t.equal(carriedStatus('404'), undefined)
  t.equal(carriedStatus(null), undefined)
  t.equal(carriedStatus(new Proxy({ statusCode: 404 }, {})), undefined, 'a Proxy is not read')
  t.equal(carriedStatus(Object.defineProperty({}, 'statusCode', { get () { throw new Error('trap') } })), undefined)
})

t.test('statuses without a built-in class keep their status', async t => {
  const teapot = toFault(createHttpError(418))
  t.equal(teapot.status, 418)
  t.equal(teapot.code, 'IM_A_TEAPOT')
  t.equal(teapot.title, "I'm a Teapot")
  t.equal(teapot.retryable, false)
  t.equal(teapot.name, 'Fault')
  const storage = toFault(Object.assign(new Error(''), { statusCode: 507 }))
  t.equal(storage.status, 507)
  t.equal(storage.message, 'Insufficient Storage')
  t.equal(storage.expose, false)
  const odd = toFault(Object.assign(new Error('odd'), { statusCode: 599 }))
  t.equal(odd.code, 'SERVER_ERROR')
  t.equal(toFault(Object.assign(new Error('odd'), { statusCode: 509 })).retryable, false)
})

t.test('Boom objects keep their status; Boom hides server messages', async t => {
  const nf = toFault(Boom.notFound('missing thing'))
  t.ok(nf instanceof NotFoundError)
  t.equal(nf.message, 'missing thing')
  t.equal(nf.expose, true)
  const internal = toFault(Boom.internal('db down'))
  t.ok(internal instanceof InternalError)
  t.equal(internal.expose, false)
  const unavailable = toFault(Boom.serverUnavailable('later'))
  t.equal(unavailable.status, 503)
  const limited = Boom.tooManyRequests('slow down')
  limited.output.headers['Retry-After'] = '9'
  t.equal(toFault(limited).retryAfter, 9)
  const broken = toFault({ isBoom: true, output: { statusCode: 'x' }, message: 'bad boom' })
  t.ok(broken instanceof InternalError, 'a Boom without a usable status')
  t.equal(broken.message, 'bad boom')
})

t.test('toFaultForReply: a status set on the reply is used for an error without its own, unexposed', async t => {
  const teapot = new Error('teapot')
  const fault = toFaultForReply(teapot, 418)
  t.match(fault, { status: 418, code: 'IM_A_TEAPOT', title: "I'm a Teapot", message: 'teapot', expose: false, retryable: false })
  t.equal(fault.cause, teapot)
  t.match(toFaultForReply(new Error('x'), 404), { constructor: NotFoundError, status: 404, expose: false })
  t.match(toFaultForReply(new Error('down'), 503), { constructor: ServiceUnavailableError, expose: false, retryable: true })
  t.match(toFaultForReply(Object.assign(new Error('own'), { statusCode: 409 }), 418), { status: 409, expose: true }, 'an error\'s own status wins, with its own expose rule')
  t.match(toFaultForReply(Object.assign(new Error('aborted'), { name: 'AbortError' }), 418), { status: 499 }, 'so does a client abort')
  for (const status of [200, 302, 399, 600, 404.5, Number.NaN]) {
    t.match(toFaultForReply(new Error('x'), status), { constructor: InternalError, status: 500 }, `not a fault status: ${status}`)
  }
  t.match(toFaultForReply('a string', 418), { constructor: InternalError }, 'only for error objects')
  t.equal(toFaultForReply(new NotFoundError('mine'), 503).status, 404, 'a fault keeps its own status')
})
