import t from 'tap'
import { createRequire } from 'node:module'
import createError from '@fastify/error'
import createHttpError from 'http-errors'
import Boom from '@hapi/boom'
import { toFault, BadGatewayError, GatewayTimeoutError, ClientClosedError, InternalError, UnauthorizedError, NotFoundError, toProblem } from '../index.js'
import { toFaultForReply, carriedHeaders } from '../lib/normalize.js'
import { guardProcess } from './helpers/guard.js'

guardProcess(t)

// @fastify/reply-from's own error classes, as its index.js creates them (the
// package has no exports map; this is the module it requires).
type ErrorClass = new (...args: unknown[]) => Error & { code: string, statusCode: number }
const replyFrom = createRequire(import.meta.url)('@fastify/reply-from/lib/errors.js') as Record<string, ErrorClass>

function sysError (code: string, message: string): Error {
  return Object.assign(new Error(message), { code })
}

t.test('reply-from: an upstream that failed before its response is a 502, never a 500, 503 or client abort', async t => {
  const refused = sysError('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:9')
  const dns = sysError('ENOTFOUND', 'getaddrinfo ENOTFOUND upstream.invalid')
  const reset = sysError('ECONNRESET', 'read ECONNRESET')
  const socket = sysError('UND_ERR_SOCKET', 'other side closed')
  const cases: Array<[string, Error, Error]> = [
    // Exactly what reply-from's request callback builds for each upstream error.
    ['refused', new replyFrom.InternalServerError!(refused.message, { cause: refused }), refused],
    ['dns', new replyFrom.ServiceUnavailableError!({ cause: dns }), dns],
    ['reset', new replyFrom.ConnectionResetError!({ cause: reset }), reset],
    ['socket', new replyFrom.UndiciSocketError!({ cause: socket }), socket],
    ['invalid upstream status', new replyFrom.BadGatewayError!(), undefined as unknown as Error]
  ]
  for (const [name, thrown, upstream] of cases) {
    const fault = toFault(thrown)
    t.ok(fault instanceof BadGatewayError, `${name} -> BadGatewayError`)
    t.equal(fault.status, 502, name)
    t.equal(fault.code, 'BAD_GATEWAY', name)
    t.equal(fault.retryable, true, name)
    t.equal(fault.expose, false, name)
    t.equal(fault.cause, thrown, `${name}: reply-from's error is the cause`)
    if (upstream !== undefined) {
      t.equal((fault.cause as Error).cause, upstream, `${name}: the upstream error is kept under it`)
      t.equal(fault.message, `The upstream failed: ${upstream.message}`, name)
    }
  }
  t.equal(toFault(new replyFrom.BadGatewayError!()).message, 'The upstream failed: Bad Gateway', 'no upstream error: reply-from\'s message')
  const problem = toProblem(toFault(cases[0]![1]))
  t.equal(problem.detail, 'Bad Gateway', 'the upstream address stays out of the body')
  t.notMatch(JSON.stringify(problem), /ECONNREFUSED|127\.0\.0\.1/)
})

t.test('reply-from: its timeouts are a 504', async t => {
  const headers = sysError('UND_ERR_HEADERS_TIMEOUT', 'Headers Timeout Error')
  const connect = sysError('UND_ERR_CONNECT_TIMEOUT', 'Connect Timeout Error')
  for (const [name, thrown] of [
    ['gateway timeout', new replyFrom.GatewayTimeoutError!({ cause: headers })],
    ['connect timeout', new replyFrom.ConnectTimeoutError!({ cause: connect })],
    ['request timeout', new replyFrom.HttpRequestTimeoutError!()],
    ['http2 session timeout', new replyFrom.Http2SessionTimeoutError!()]
  ] as const) {
    const fault = toFault(thrown)
    t.ok(fault instanceof GatewayTimeoutError, `${name} -> GatewayTimeoutError`)
    t.equal(fault.code, 'GATEWAY_TIMEOUT', name)
    t.equal(fault.retryable, true, name)
    t.equal(fault.cause, thrown, name)
  }
})

t.test('lookalikes are not upstream failures', async t => {
  t.ok(toFault(sysError('ECONNRESET', 'read ECONNRESET')) instanceof ClientClosedError, 'a bare socket reset is still the client leaving')
  t.ok(toFault(sysError('UND_ERR_SOCKET', 'x')) instanceof ClientClosedError)
  const NotReplyFrom = Object.assign(new Error('reset'), { code: 'ECONNRESET', statusCode: 500 })
  t.ok(toFault(NotReplyFrom) instanceof ClientClosedError, 'a plain Error with that code and a status: not an @fastify/error')
  const Client = createError('FST_REPLY_FROM_SOMETHING', 'bad input', 400)
  t.equal(toFault(new Client()).status, 400, 'a reply-from 4xx keeps its status')
  t.ok(toFault(Object.assign(new Error('x'), { code: 7, statusCode: 500 })) instanceof InternalError, 'a non-string code')
})

t.test('toFaultForReply: an error without a status takes the reply\'s 4xx/5xx, as in Fastify, without exposing its message', async t => {
  const plain = new Error('you are not admin')
  const fault = toFaultForReply(plain, 401)
  t.ok(fault instanceof UnauthorizedError, '@fastify/auth sets 401, then passes the strategy\'s plain Error')
  t.equal(fault.cause, plain)
  t.equal(fault.expose, false, 'the error never said its message was for clients')
  t.equal(toProblem(fault).detail, 'Unauthorized')
  t.equal(toFaultForReply(Object.assign(new Error('ok to show'), { expose: true }), 401).expose, true, 'unless it says so')
  t.ok(toFaultForReply(plain, 200) instanceof InternalError, 'a success status is no fault status')
  t.ok(toFaultForReply(plain, 500) instanceof InternalError)
  t.equal(toFaultForReply(Object.assign(new Error('x'), { statusCode: 404 }), 401).status, 404, 'an own status wins')
  t.equal(toFaultForReply(Object.assign(new Error('x'), { statusCode: 404 }), 401).expose, true)
  const nf = new NotFoundError('n')
  t.equal(toFaultForReply(nf, 401), nf, 'a fault is kept')
  t.ok(toFaultForReply('a string', 401) instanceof InternalError, 'a non-error value stays an InternalError')
  t.equal(toFaultForReply(plain, 418).code, 'IM_A_TEAPOT', 'a status without a built-in class')
})

t.test('carriedHeaders: the headers a thrown error asks for, as Fastify sets them, never unsafe ones', async t => {
  t.same(carriedHeaders(createHttpError(416, { headers: { 'Content-Range': 'bytes */3' } })), [['Content-Range', 'bytes */3']], 'http-errors (@fastify/static\'s 416)')
  t.same(carriedHeaders(Boom.unauthorized('no', 'Bearer')), [['WWW-Authenticate', 'Bearer error="no"']], 'Boom\'s output.headers')
  const fault = toFault(createHttpError(405, { headers: { Allow: 'GET' } }))
  t.same(carriedHeaders(fault), [['Allow', 'GET']], 'a fault: its cause\'s')
  t.same(carriedHeaders(new NotFoundError('x')), [], 'a fault without a cause')
  t.same(carriedHeaders({ headers: { 'x-n': 7, 'x-inf': Infinity, 'x-obj': {}, 'bad name': 'v', 'x-split': 'a\r\nSet-Cookie: s=1', 'Content-Type': 'text/html', 'content-length': '1', 'Retry-After': '5', 'x-ok': 'fine' } }),
    [['x-n', '7'], ['x-ok', 'fine']], 'only valid names and values; framing headers are the problem response\'s own, Retry-After the fault\'s')
  t.same(carriedHeaders({ headers: Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`x-${i}`, 'v'])) }).length, 20, 'bounded')
  for (const value of [null, 'str', 42, { headers: null }, { headers: 'x' }, new Proxy({}, {}), { headers: new Proxy({}, {}) }]) {
    t.same(carriedHeaders(value), [], String(value))
  }
  const hostile = { get headers () { throw new Error('trap') } }
  t.same(carriedHeaders(hostile), [], 'a getter that throws')
  t.same(carriedHeaders({ headers: { get 'x-a' () { throw new Error('trap') } } }), [], 'a header getter that throws')
})
