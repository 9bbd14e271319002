import { types } from 'node:util'
import {
  Fault, InternalError, ClientClosedError, ValidationError, PayloadTooLargeError, BadRequestError,
  BadGatewayError, GatewayTimeoutError, RequestTimeoutError,
  faultForStatus, isFault, isFaultStatus,
  type ValidationIssue
} from './fault.js'

// Error codes that mean "the peer went away", not "we failed".
const CLIENT_GONE_CODES = new Set([
  'ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE',
  'ERR_STREAM_DESTROYED', 'UND_ERR_SOCKET', 'ABORT_ERR'
])

// `ws` protocol errors (it closes the socket itself with 1009 / 1002 / 1007):
// the peer's fault, 413 for size and 400 otherwise.
const WS_TOO_BIG_CODES = new Set(['WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH', 'WS_ERR_TOO_MANY_BUFFERED_PARTS'])

// @fastify/reply-from (behind @fastify/http-proxy) wraps an upstream's
// failure in an @fastify/error of its own: `FST_REPLY_FROM_*` codes, and
// three that reuse the network code with a status of their own.
const REPLY_FROM_PREFIX = 'FST_REPLY_FROM_'
const REPLY_FROM_NETWORK_CODES = new Set(['ECONNRESET', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT'])

const MAX_MESSAGE = 8192
const MAX_VALIDATION_ENTRIES = 100

type Bag = Record<string, unknown>

/**
 * Adopts anything thrown as a `Fault`. Never throws and never loops, whatever
 * `value` is: a hostile value (a Proxy, a getter that throws) becomes a plain
 * `InternalError` that does not keep the value, so nothing downstream (a
 * logger, a reporter) touches it again.
 */
export function toFault (value: unknown): Fault {
  return adoptSafely(value, undefined)
}

/**
 * `toFault` for a value that failed a reply whose status is `replyStatus`. As
 * in Fastify's own error handler, an error that carries no status of its own
 * takes the reply's when that is 400-599: a hook set it before failing (e.g.
 * `@fastify/auth`'s 401 when every strategy failed), or a route did
 * (`reply.code(418).send(new Error('teapot'))` answers 418). Its message
 * stays unexposed: the error never said it was meant for clients.
 */
export function toFaultForReply (value: unknown, replyStatus: number): Fault {
  return adoptSafely(value, isFaultStatus(replyStatus) ? replyStatus : undefined)
}

function adoptSafely (value: unknown, fallbackStatus: number | undefined, adopter = adopt): Fault {
  try {
    if (typeof value === 'object' && value !== null && types.isProxy(value)) return new InternalError('A Proxy was thrown')
    if (value instanceof Fault) return value
    // An adopted fault's own frames are faultline's (toFault <- the error
    // handler): the stack worth logging is the cause's. Skip capturing ours.
    const limit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    try {
      return adopter(value, fallbackStatus)
    } finally {
      Error.stackTraceLimit = limit
    }
  } catch {
    return new InternalError('A value was thrown whose properties could not be read')
  }
}

function adopt (value: unknown, fallbackStatus: number | undefined): Fault {
  if (typeof value !== 'object' || value === null) {
    if (typeof value === 'function') return new InternalError('A function was thrown')
    return new InternalError(`A non-error value was thrown: ${quotePrimitive(value)}`)
  }
  if (isFault(value)) return value as Fault

  const err = value as Bag
  const message = safeMessage(err.message)

  if (typeof err.code === 'string' && err.code.startsWith('WS_ERR_')) {
    const Cls = WS_TOO_BIG_CODES.has(err.code) ? PayloadTooLargeError : BadRequestError
    return new Cls(`WebSocket protocol error: ${message}`, { cause: value })
  }

  // Before the client-gone check: reply-from's reset is its upstream's, not our client's.
  const upstream = upstreamFault(err, value)
  if (upstream !== undefined) return upstream

  if (isClientGone(err)) {
    return new ClientClosedError('The client closed the connection', { cause: value })
  }

  if (Array.isArray(err.validation)) {
    return new ValidationError(message, {
      cause: value,
      details: {
        errors: validationIssues(err.validation),
        ...(typeof err.validationContext === 'string' ? { in: err.validationContext } : {})
      }
    })
  }

  const own = statusOf(err)
  const status = own ?? fallbackStatus
  if (status === undefined) return new InternalError(message, { cause: value })
  const boom = boomOutput(err)
  if (boom !== undefined) {
    // Boom hides 5xx messages, so do we.
    return faultForStatus(status, message, { cause: value, expose: status < 500, retryAfter: retryAfterOf(boom.headers) })
  }
  // http-errors, @fastify/sensible, @fastify/error and Fastify's own errors
  // keep their own expose. An error that took the reply's status never said
  // its message was meant for clients: only the status goes out.
  const expose = typeof err.expose === 'boolean' ? err.expose : own !== undefined && status < 500
  return faultForStatus(status, message, { cause: value, expose, retryAfter: retryAfterOf(err.headers) })
}

/**
 * A fault for an error of Node's HTTP server `'clientError'` event: the
 * peer sent what cannot be read as a request, or not in time, mapped as
 * Node's own answers are: a header section over `maxHeaderSize` 431,
 * chunk extensions over their limit 413, `requestTimeout` elapsed 408,
 * anything else the parser refused 400; a peer gone is a client abort (as
 * `toFault`). Only for that event: an `HPE_` code elsewhere (an upstream's
 * response undici could not parse) is not the client's fault. Never throws.
 */
export function toClientErrorFault (value: unknown): Fault {
  return adoptSafely(value, undefined, adoptClientError)
}

function adoptClientError (value: unknown, fallbackStatus: number | undefined): Fault {
  const code = typeof value === 'object' && value !== null ? (value as Bag).code : undefined
  if (typeof code !== 'string' || !(code.startsWith('HPE_') || code === 'ERR_HTTP_REQUEST_TIMEOUT')) return adopt(value, fallbackStatus)
  const options = { cause: value }
  switch (code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT': return new RequestTimeoutError('The request was not received in time', options)
    case 'HPE_HEADER_OVERFLOW': return faultForStatus(431, 'The request\'s header fields are too large', options)
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW': return new PayloadTooLargeError('The request\'s chunk extensions are too large', options)
    default: return new BadRequestError('The request could not be read as HTTP', options)
  }
}

/**
 * A proxied request whose upstream failed before its response: a timeout is a
 * `GatewayTimeoutError` (504); refused, reset, DNS and every other upstream
 * failure a `BadGatewayError` (502), never reply-from's own 500 or 503, nor a
 * client abort. The reply-from error (and through it the upstream's) is the cause.
 */
function upstreamFault (err: Bag, value: unknown): Fault | undefined {
  const code = err.code
  const status = err.statusCode
  if (typeof code !== 'string' || typeof status !== 'number' || status < 500) return undefined
  if (!code.startsWith(REPLY_FROM_PREFIX) && !(err.name === 'FastifyError' && REPLY_FROM_NETWORK_CODES.has(code))) return undefined
  const cause = err.cause
  const upstreamMessage = typeof cause === 'object' && cause !== null ? safeMessage((cause as Bag).message) : ''
  const message = `The upstream failed: ${upstreamMessage !== '' ? upstreamMessage : safeMessage(err.message)}`
  return status === 504 ? new GatewayTimeoutError(message, { cause: value }) : new BadGatewayError(message, { cause: value })
}

// Headers that frame the body or the connection (the problem response sets
// its own), and Retry-After (the fault's validated `retryAfter` sets it).
const NOT_CARRIED = new Set(['content-type', 'content-length', 'content-encoding', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'trailer', 'te', 'retry-after'])
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$/
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]{0,8192}$/
const MAX_CARRIED_HEADERS = 20

/**
 * The response headers a thrown value asks for, as Fastify's own error
 * handler sets them: http-errors' and @fastify/error's `headers` (e.g.
 * `Content-Range` on @fastify/static's 416, `Allow` on a 405), Boom's
 * `output.headers` (`WWW-Authenticate`); for a fault, its cause's. Never a
 * header that frames the body nor Retry-After, never an invalid name or value
 * (a CR/LF would split the response). Never throws.
 */
export function carriedHeaders (value: unknown): Array<[string, string]> {
  const out: Array<[string, string]> = []
  try {
    const source = value instanceof Fault ? value.cause : value
    if (typeof source !== 'object' || source === null || types.isProxy(source)) return out
    const err = source as Bag
    const headers = boomOutput(err)?.headers ?? err.headers
    if (typeof headers !== 'object' || headers === null || types.isProxy(headers)) return out
    for (const name of Object.keys(headers).slice(0, MAX_CARRIED_HEADERS)) {
      const raw = (headers as Bag)[name]
      const text = typeof raw === 'number' && Number.isFinite(raw) ? String(raw) : raw
      if (typeof text !== 'string' || !HEADER_NAME.test(name) || !HEADER_VALUE.test(text)) continue
      if (!NOT_CARRIED.has(name.toLowerCase())) out.push([name, text])
    }
  } catch {
    // Headers whose getters throw are dropped: the status and body still go out.
  }
  return out
}

/**
 * The HTTP status a thrown value carries of its own: a Boom's
 * `output.statusCode`, else `statusCode`, else `status`; undefined unless an
 * integer 400-599. Never throws.
 */
export function carriedStatus (value: unknown): number | undefined {
  if (typeof value !== 'object' || value === null || types.isProxy(value)) return undefined
  try {
    return statusOf(value as Bag)
  } catch {
    return undefined
  }
}

function statusOf (err: Bag): number | undefined {
  const boom = boomOutput(err)
  if (boom !== undefined) return isFaultStatus(boom.statusCode) ? boom.statusCode : undefined
  return isFaultStatus(err.statusCode) ? err.statusCode : isFaultStatus(err.status) ? err.status : undefined
}

/** hapi Boom keeps its status and headers in `output`. */
function boomOutput (err: Bag): Bag | undefined {
  return err.isBoom === true && typeof err.output === 'object' && err.output !== null ? err.output as Bag : undefined
}

function isClientGone (err: Bag): boolean {
  if (err.name === 'AbortError') return true
  const code = err.code
  return typeof code === 'string' && CLIENT_GONE_CODES.has(code)
}

function safeMessage (message: unknown): string {
  if (typeof message !== 'string') return ''
  return message.length > MAX_MESSAGE ? message.slice(0, MAX_MESSAGE) + '…' : message
}

/** A thrown primitive as it reads in a message: strings quoted and cut at 200 characters. */
function quotePrimitive (value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 200 ? value.slice(0, 200) + '…' : value)
  if (typeof value === 'symbol') return value.toString()
  if (typeof value === 'bigint') return `${value}n`
  return String(value)
}

function validationIssues (entries: unknown[]): ValidationIssue[] {
  const issues: ValidationIssue[] = []
  for (const entry of entries.slice(0, MAX_VALIDATION_ENTRIES)) {
    if (typeof entry !== 'object' || entry === null) continue
    const e = entry as Bag
    const issue: ValidationIssue = {
      instancePath: typeof e.instancePath === 'string' ? e.instancePath : typeof e.dataPath === 'string' ? e.dataPath : '',
      message: typeof e.message === 'string' ? e.message : 'is invalid'
    }
    if (typeof e.keyword === 'string') issue.keyword = e.keyword
    if (typeof e.params === 'object' && e.params !== null && !Array.isArray(e.params)) issue.params = plainParams(e.params as Bag)
    issues.push(issue)
  }
  return issues
}

// Ajv params are small records of primitives and arrays of strings; keep only
// those so a hostile entry cannot smuggle a cycle or a BigInt into the body.
function plainParams (params: Bag): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(params).slice(0, 20)) {
    const v = params[key]
    if (typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) out[key] = v
    else if (Array.isArray(v)) out[key] = v.filter(x => typeof x === 'string').slice(0, 50)
  }
  return out
}

function retryAfterOf (headers: unknown): number | undefined {
  if (typeof headers !== 'object' || headers === null) return undefined
  const h = headers as Bag
  const raw = h['retry-after'] ?? h['Retry-After']
  const seconds = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\d{1,10}$/.test(raw) ? Number(raw) : undefined
  return seconds
}
