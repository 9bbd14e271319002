import { types } from 'node:util'
import {
  Fault, InternalError, ClientClosedError, ValidationError, PayloadTooLargeError, BadRequestError,
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
  try {
    if (typeof value === 'object' && value !== null && types.isProxy(value)) return new InternalError('A Proxy was thrown')
    if (value instanceof Fault) return value
    // An adopted fault's own frames are faultline's (toFault <- the error
    // handler): the stack worth logging is the cause's. Skip capturing ours.
    const limit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    try {
      return adopt(value)
    } finally {
      Error.stackTraceLimit = limit
    }
  } catch {
    return new InternalError('A value was thrown whose properties could not be read')
  }
}

function adopt (value: unknown): Fault {
  if (typeof value !== 'object' || value === null) {
    if (typeof value === 'function') return new InternalError('A function was thrown')
    return new InternalError(`A non-error value was thrown: ${preview(value)}`)
  }
  if (isFault(value)) return value as Fault

  const err = value as Bag
  const message = safeMessage(err.message)

  if (typeof err.code === 'string' && err.code.startsWith('WS_ERR_')) {
    const Cls = WS_TOO_BIG_CODES.has(err.code) ? PayloadTooLargeError : BadRequestError
    return new Cls(`WebSocket protocol error: ${message}`, { cause: value })
  }

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

  const status = statusOf(err)
  if (status === undefined) return new InternalError(message, { cause: value })
  const boom = boomOutput(err)
  if (boom !== undefined) {
    // Boom hides 5xx messages, so do we.
    return faultForStatus(status, message, { cause: value, expose: status < 500, retryAfter: retryAfterOf(boom.headers) })
  }
  // http-errors, @fastify/sensible, @fastify/error and Fastify's own errors keep their own expose.
  const expose = typeof err.expose === 'boolean' ? err.expose : status < 500
  return faultForStatus(status, message, { cause: value, expose, retryAfter: retryAfterOf(err.headers) })
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

function preview (value: unknown): string {
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
