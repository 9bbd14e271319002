// The taxonomy. Isomorphic: no Node built-in, no Fastify (the client imports it in browsers).
import { FaultlineInvalidFaultError, FaultlineDuplicateCodeError } from './errors.js'
import { statusTitle, codeForStatus } from './status-titles.js'
import type { ProblemDetails } from './problem.js'

export { statusTitle, codeForStatus } from './status-titles.js'

/** Extension members a fault carries into its problem details. */
export type FaultDetails = Record<string, unknown>

export interface FaultOptions<D extends FaultDetails = FaultDetails> {
  /** The underlying error, kept for logs and `debug` output; never sent to clients otherwise. */
  cause?: unknown
  /** Extension members for the problem body (RFC 9457 section 3.2). */
  details?: D
  /** Whether `message` is safe to show to clients. Default: `status < 500`. */
  expose?: boolean
  /** Whether `details` are safe to show to clients. Default: the fault's `expose`. */
  exposeDetails?: boolean
  /** Seconds the client should wait before retrying; sent as `Retry-After`. */
  retryAfter?: number
  /** Whether retrying may succeed. Default: the class's, else true for 408, 429, 502, 503, 504. */
  retryable?: boolean
}

/** Static shape shared by every fault class (built-in or from `defineFault`). */
export interface FaultClassInfo {
  readonly code: string
  readonly status: number
  readonly title: string
  readonly retryable?: boolean | undefined
  readonly expose?: boolean | undefined
  /** WebSocket close code for this class, overriding the status mapping. */
  readonly closeCode?: number | undefined
  /** JSON schema of the class's `details` (its extension members), for OpenAPI documents. */
  readonly detailsSchema?: DetailsSchema | undefined
}

/** A JSON schema for a fault's `details`: an object schema whose `properties` become problem members. */
export interface DetailsSchema {
  type?: 'object'
  properties?: Record<string, unknown>
  required?: readonly string[]
  [keyword: string]: unknown
}

const RETRYABLE_STATUSES = new Set([408, 429, 502, 503, 504])

/** Whether a fault with this status may succeed on retry by default (408, 429, 502, 503, 504). */
export function isRetryableStatus (status: number): boolean {
  return RETRYABLE_STATUSES.has(status)
}
const kFault = Symbol.for('fastify-faultline.fault')

/** Whether a status is one a fault may carry: an integer 400-599. */
export function isFaultStatus (status: unknown): status is number {
  return typeof status === 'number' && Number.isInteger(status) && status >= 400 && status <= 599
}

/**
 * The base of the taxonomy. Subclasses set the static `code`, `status` and
 * `title`; instances copy them so a fault is self-describing in logs and
 * reporters. Fields are plain assignments in the constructor (readonly in
 * types only, and `declare`d: a class field would be defined on every
 * instance before the constructor writes it again): defining properties per
 * instance costs microseconds on the error path.
 */
export class Fault<D extends FaultDetails = FaultDetails> extends Error {
  static code = 'INTERNAL'
  static status = 500
  static title = 'Internal Server Error'
  static retryable: boolean | undefined = undefined
  static expose: boolean | undefined = undefined
  static closeCode: number | undefined = undefined
  static detailsSchema: DetailsSchema | undefined = undefined

  declare readonly code: string
  declare readonly status: number
  declare readonly title: string
  declare readonly expose: boolean
  declare readonly exposeDetails: boolean
  declare readonly retryable: boolean
  declare readonly retryAfter: number | undefined
  declare readonly details: D | undefined
  declare readonly cause: unknown
  /** Set on a fault the client rehydrated (`faultFromProblem`): the problem body as received, e.g. `fault.problem.requestId`. */
  declare readonly problem?: Partial<ProblemDetails> | undefined

  constructor (message?: string, options?: FaultOptions<D>) {
    const info = new.target as unknown as FaultClassInfo
    super(message === undefined || message === '' ? info.title : message)
    this.code = info.code
    this.status = info.status
    this.title = info.title
    if (options === undefined) {
      this.expose = info.expose ?? info.status < 500
      this.exposeDetails = this.expose
      this.retryable = info.retryable ?? isRetryableStatus(info.status)
      this.retryAfter = undefined
      this.details = undefined
    } else {
      this.expose = options.expose ?? info.expose ?? info.status < 500
      this.exposeDetails = options.exposeDetails ?? this.expose
      this.retryable = options.retryable ?? info.retryable ?? isRetryableStatus(info.status)
      this.retryAfter = validRetryAfter(options.retryAfter)
      this.details = options.details
      if (options.cause !== undefined) this.cause = options.cause
    }
  }
}
Object.defineProperty(Fault.prototype, kFault, { value: true })
Object.defineProperty(Fault.prototype, 'name', { value: 'Fault', writable: true, configurable: true })

function validRetryAfter (value: unknown): number | undefined {
  // Above 2^53 a number prints in exponent notation, which is not delay-seconds.
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > Number.MAX_SAFE_INTEGER) return undefined
  return Math.ceil(value)
}

/**
 * A fault class: constructible, with the static taxonomy fields. Its instances
 * are `Fault<D>` intersected with their `details` again: TypeScript counts
 * every `Fault<…>` as derived from every other, so `fault instanceof
 * OutOfStockError` on a plain `Fault` would keep `Fault` (untyped details);
 * the intersection makes the narrowing pick the class's own instance type.
 */
export type FaultClass<D extends FaultDetails = FaultDetails> =
  FaultClassInfo & (new (message?: string, options?: FaultOptions<D>) => Fault<D> & { readonly details: D | undefined })

/** Whether `value` is a fault (also one made by another copy of this package). */
export function isFault (value: unknown): value is Fault {
  try {
    return value instanceof Fault || (typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[kFault] === true)
  } catch {
    return false
  }
}

// ---------------------------------------------------------------------------
// The catalog: every fault class known to the process, by code.

export interface CatalogEntry {
  readonly code: string
  readonly status: number
  readonly title: string
  readonly name: string
}

const classesByCode = new Map<string, FaultClass<any>>()

function register (cls: FaultClass<any>): void {
  const existing = classesByCode.get(cls.code)
  if (existing !== undefined && existing.status !== cls.status) {
    throw new FaultlineDuplicateCodeError(cls.code, existing.status, cls.status)
  }
  classesByCode.set(cls.code, cls)
}

/** Every fault class defined so far: the built-ins and every `defineFault`. */
export function faultCatalog (): CatalogEntry[] {
  const entries: CatalogEntry[] = []
  for (const cls of classesByCode.values()) {
    entries.push({ code: cls.code, status: cls.status, title: cls.title, name: cls.name })
  }
  return entries.sort((a, b) => a.status - b.status || (a.code < b.code ? -1 : 1))
}

/** The class registered for `code`, if any. */
export function faultClassFor (code: string): FaultClass<any> | undefined {
  return classesByCode.get(code)
}

// ---------------------------------------------------------------------------
// defineFault

export interface DefineFaultOptions {
  /** Stable machine-readable code, e.g. `PAYMENT_REQUIRED`. */
  code: string
  /** HTTP status, 400-599. */
  status: number
  /** Short human summary; default: the status's reason phrase. */
  title?: string
  /** Class name; default: the code in PascalCase plus `Error`. */
  name?: string
  /** Whether retrying may help; default: true for 408, 429, 502, 503, 504. */
  retryable?: boolean
  /** Whether messages are safe for clients; default: `status < 500`. */
  expose?: boolean
  /** WebSocket close code for this class (1000-4999, never 1004-1006 or 1015). */
  closeCode?: number
  /** JSON schema of `details` (an object schema), shown in OpenAPI documents. */
  detailsSchema?: DetailsSchema
}

// Printable, at most 200 characters, no lone surrogates (they cannot be URI-encoded).
const CODE_PATTERN = /^(?!.*\p{Cs})[^\u0000-\u001f\u007f]{1,200}$/u // eslint-disable-line no-control-regex
const NAME_PATTERN = /^[A-Za-z_$][A-Za-z0-9_$]*$/

/** Whether `code` is one a WebSocket close frame may carry from a server. */
export function isSendableCloseCode (code: unknown): code is number {
  return typeof code === 'number' && Number.isInteger(code) &&
    ((code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) ||
      (code >= 3000 && code <= 4999))
}

function pascal (code: string): string {
  const words = code.split(/[^A-Za-z0-9]+/).filter(Boolean)
  const name = words.map(w => w[0]!.toUpperCase() + w.slice(1).toLowerCase()).join('')
  return /^[A-Za-z]/.test(name) ? name + 'Error' : 'CustomFaultError'
}

/**
 * Defines a fault class: a real class (subclassable, `instanceof` works) with
 * a typed `details` shape.
 *
 * ```ts
 * class PaymentRequiredError extends defineFault<{ invoice: string }>({ code: 'PAYMENT_REQUIRED', status: 402 }) {}
 * ```
 */
export function defineFault<D extends FaultDetails = FaultDetails> (options: DefineFaultOptions): FaultClass<D> {
  if (options === null || typeof options !== 'object') {
    throw new FaultlineInvalidFaultError('options must be an object')
  }
  const { code, status, title, name, retryable, expose, closeCode, detailsSchema } = options
  if (typeof code !== 'string' || !CODE_PATTERN.test(code)) {
    throw new FaultlineInvalidFaultError(`code must be a non-empty string of at most 200 printable characters, got ${describe(code)}`)
  }
  if (!isFaultStatus(status)) {
    throw new FaultlineInvalidFaultError(`status must be an integer from 400 to 599, got ${describe(status)}`)
  }
  if (title !== undefined && (typeof title !== 'string' || title === '')) {
    throw new FaultlineInvalidFaultError(`title must be a non-empty string, got ${describe(title)}`)
  }
  if (name !== undefined && (typeof name !== 'string' || !NAME_PATTERN.test(name))) {
    throw new FaultlineInvalidFaultError(`name must be a JavaScript identifier, got ${describe(name)}`)
  }
  if (retryable !== undefined && typeof retryable !== 'boolean') {
    throw new FaultlineInvalidFaultError(`retryable must be a boolean, got ${describe(retryable)}`)
  }
  if (expose !== undefined && typeof expose !== 'boolean') {
    throw new FaultlineInvalidFaultError(`expose must be a boolean, got ${describe(expose)}`)
  }
  if (closeCode !== undefined && !isSendableCloseCode(closeCode)) {
    throw new FaultlineInvalidFaultError(`closeCode must be a sendable WebSocket close code (1000-1014 except 1004-1006, or 3000-4999), got ${describe(closeCode)}`)
  }
  checkDetailsSchema(detailsSchema)
  const cls = class extends Fault<D> {
    static override code = code
    static override status = status
    static override title = title ?? statusTitle(status)
    static override retryable = retryable
    static override expose = expose
    static override closeCode = closeCode
    static override detailsSchema = detailsSchema
  }
  nameClass(cls, name ?? pascal(code))
  register(cls)
  return cls
}

function checkDetailsSchema (schema: unknown): void {
  if (schema === undefined) return
  const ok = schema !== null && typeof schema === 'object' && !Array.isArray(schema)
  if (!ok || ((schema as DetailsSchema).type !== undefined && (schema as DetailsSchema).type !== 'object')) {
    throw new FaultlineInvalidFaultError(`detailsSchema must be an object JSON schema ({ type: 'object', properties: {...} }), got ${describe(schema)}`)
  }
  try {
    JSON.stringify(schema)
  } catch {
    throw new FaultlineInvalidFaultError('detailsSchema must be plain JSON (no cycles, no BigInt)')
  }
}

function nameClass (cls: FaultClass<any>, name: string): void {
  Object.defineProperty(cls, 'name', { value: name })
  Object.defineProperty(cls.prototype, 'name', { value: name, writable: true, configurable: true })
}

/** A short, safe description of any value, for our own error messages. */
export function describe (value: unknown): string {
  try {
    if (typeof value === 'string') return JSON.stringify(value.length > 60 ? value.slice(0, 60) + '…' : value)
    if (typeof value === 'object') return value === null ? 'null' : Array.isArray(value) ? 'an array' : 'an object'
    if (typeof value === 'function') return 'a function'
    return String(value)
  } catch {
    return 'an unprintable value'
  }
}

// ---------------------------------------------------------------------------
// Built-ins. A built-in's code is its name in upper snake case without `Error`.

function builtin (name: string, status: number, code: string, title = statusTitle(status), retryable?: boolean, Base: FaultClass = Fault): FaultClass {
  const cls = class extends (Base as typeof Fault) {
    static override code = code
    static override status = status
    static override title = title
    static override retryable = retryable
  }
  nameClass(cls, name)
  register(cls)
  return cls
}

export const BadRequestError = builtin('BadRequestError', 400, 'BAD_REQUEST')
export const UnauthorizedError = builtin('UnauthorizedError', 401, 'UNAUTHORIZED')
export const ForbiddenError = builtin('ForbiddenError', 403, 'FORBIDDEN')
export const NotFoundError = builtin('NotFoundError', 404, 'NOT_FOUND')
export const MethodNotAllowedError = builtin('MethodNotAllowedError', 405, 'METHOD_NOT_ALLOWED')
export const NotAcceptableError = builtin('NotAcceptableError', 406, 'NOT_ACCEPTABLE')
export const RequestTimeoutError = builtin('RequestTimeoutError', 408, 'REQUEST_TIMEOUT')
export const ConflictError = builtin('ConflictError', 409, 'CONFLICT')
export const GoneError = builtin('GoneError', 410, 'GONE')
export const PayloadTooLargeError = builtin('PayloadTooLargeError', 413, 'PAYLOAD_TOO_LARGE')
export const UnsupportedMediaTypeError = builtin('UnsupportedMediaTypeError', 415, 'UNSUPPORTED_MEDIA_TYPE')
export const RangeNotSatisfiableError = builtin('RangeNotSatisfiableError', 416, 'RANGE_NOT_SATISFIABLE')
export const TooManyRequestsError = builtin('TooManyRequestsError', 429, 'TOO_MANY_REQUESTS')
export const ClientClosedError = builtin('ClientClosedError', 499, 'CLIENT_CLOSED', 'Client Closed Request')
export const InternalError = builtin('InternalError', 500, 'INTERNAL')
export const NotImplementedError = builtin('NotImplementedError', 501, 'NOT_IMPLEMENTED')
export const BadGatewayError = builtin('BadGatewayError', 502, 'BAD_GATEWAY')
export const ServiceUnavailableError = builtin('ServiceUnavailableError', 503, 'SERVICE_UNAVAILABLE')
export const GatewayTimeoutError = builtin('GatewayTimeoutError', 504, 'GATEWAY_TIMEOUT')

// Client-side built-ins: what a client concludes from the wire, never thrown by a server route.
/** A body that ended early: truncation, a missing ndjson end record, a broken resume. Retryable. */
export const StreamTruncatedError = builtin('StreamTruncatedError', 502, 'STREAM_TRUNCATED', 'Stream Truncated', true)
/** No response at all, or a WebSocket closed with 1006 (no close frame). Retryable. */
export const ConnectionLostError = builtin('ConnectionLostError', 502, 'CONNECTION_LOST', 'Connection Lost', true)
/**
 * The server is going away (a rolling deploy): streams end with it and
 * WebSockets close with 1001. A `ServiceUnavailableError` (subclass),
 * retryable, so a client resumes on another instance.
 */
export const ServerShutdownError = builtin('ServerShutdownError', 503, 'SERVER_SHUTDOWN', 'Server Shutting Down', true, ServiceUnavailableError)

/** One entry of `ValidationError`'s `details.errors`. */
export interface ValidationIssue {
  /** JSON pointer into the validated data, e.g. `/name`. */
  instancePath: string
  message: string
  keyword?: string
  params?: Record<string, unknown>
}

export interface ValidationDetails extends FaultDetails {
  errors: ValidationIssue[]
  /** Which part of the request failed: `body`, `querystring`, `params`, `headers`. */
  in?: string
}

/** 400 with the validation entries in `details.errors`. */
export class ValidationError extends Fault<ValidationDetails> {
  static override code = 'VALIDATION'
  static override status = 400
  static override title = 'Validation Failed'
}
nameClass(ValidationError as FaultClass<any>, 'ValidationError')
register(ValidationError as FaultClass<any>)

/** Status -> the built-in class for it, for adopting foreign errors. */
export const builtinByStatus: ReadonlyMap<number, FaultClass> = new Map([
  BadRequestError, UnauthorizedError, ForbiddenError, NotFoundError, MethodNotAllowedError,
  NotAcceptableError, RequestTimeoutError, ConflictError, GoneError, PayloadTooLargeError,
  UnsupportedMediaTypeError, RangeNotSatisfiableError, TooManyRequestsError, ClientClosedError, InternalError,
  NotImplementedError, BadGatewayError, ServiceUnavailableError, GatewayTimeoutError
].map(cls => [cls.status, cls]))

/** What `faultForStatus` may set beyond the status: the usual options plus a code and title of its own. */
export interface StatusFaultOptions extends FaultOptions {
  /** The fault's code when no built-in covers the status (or to override it). Default: from the reason phrase, e.g. `IM_A_TEAPOT`. */
  code?: string | undefined
  /** The fault's title when `code` is given or no built-in covers the status. Default: the reason phrase. */
  title?: string | undefined
}

/**
 * A fault for an HTTP status: the built-in class for it (`404` ->
 * `NotFoundError`), else a plain `Fault` that carries the status, with a code
 * and title derived from the reason phrase (418 -> `IM_A_TEAPOT`). With a
 * `code` of its own (a class this process does not know), always the plain
 * `Fault` with that code. `status` must be a fault status (400-599).
 * Used by the server to adopt foreign errors and by the client to rehydrate
 * problems whose code it does not know.
 */
export function faultForStatus (status: number, message: string, options: StatusFaultOptions = {}): Fault {
  const { code, title, ...faultOptions } = options
  const Builtin = code === undefined ? builtinByStatus.get(status) : undefined
  if (Builtin !== undefined) return new Builtin(message, faultOptions)
  const fault = new Fault(message || title || statusTitle(status), faultOptions) as { -readonly [K in keyof Fault]: Fault[K] }
  fault.status = status
  fault.code = code ?? codeForStatus(status)
  fault.title = title ?? statusTitle(status)
  fault.expose = faultOptions.expose ?? status < 500
  fault.exposeDetails = faultOptions.exposeDetails ?? fault.expose
  fault.retryable = faultOptions.retryable ?? isRetryableStatus(status)
  return fault
}
