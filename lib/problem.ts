// The problem shape (RFC 9457) and Fault -> problem. Isomorphic: the client
// reads the same shape back. Serialization lives in problem-json.ts (server).
import { faultClassFor, faultForStatus, isFaultStatus, type Fault, type FaultDetails } from './fault.js'

/** An RFC 9457 problem details object, with faultline's extension members. */
export interface ProblemDetails {
  type: string
  title: string
  status: number
  detail: string
  instance?: string
  code: string
  requestId?: string
  /** Seconds the client should wait before retrying (also sent as `Retry-After` over HTTP). */
  retryAfter?: number
  /** Only with `debug: true`. */
  stack?: string
  /** Only with `debug: true`: the cause chain, outermost first. */
  cause?: DebugCause[]
  [extension: string]: unknown
}

export interface DebugCause {
  name: string
  message: string
  code?: string
  stack?: string
  /** Other own fields (e.g. the headers an http-errors error carries), previewed and bounded. */
  fields?: Record<string, unknown>
}

export interface ProblemOptions {
  /** URI reference for this occurrence; faultline uses the request path, without the query. */
  instance?: string | undefined
  requestId?: string | undefined
  /** Prefix for `type`; the fault code is appended in kebab case. Default: `about:blank`. */
  typeBase?: string | undefined
  /** Adds the real message, stack and cause chain. Development only. */
  debug?: boolean | undefined
  /**
   * The most a fault's `details` may add to a problem, in bytes of UTF-8
   * JSON text. Larger details are dropped whole and the problem carries
   * `detailsOmitted` instead. Default: DEFAULT_MAX_DETAILS_BYTES (16 KiB).
   */
  maxDetailsBytes?: number | undefined
  /** Called when a fault's details were dropped for `maxDetailsBytes`. */
  onDetailsOmitted?: ((fault: Fault, limit: number) => void) | undefined
}

/** What a fault's `details` may add to a problem by default: 16 KiB of JSON text. */
export const DEFAULT_MAX_DETAILS_BYTES = 16 * 1024

/** The member a problem carries instead of details larger than `maxDetailsBytes`. */
export interface DetailsOmitted {
  reason: 'too-large'
  /** The limit they exceeded, in bytes. */
  limit: number
}

// Members a fault's details may not overwrite.
const RESERVED = new Set(['type', 'title', 'status', 'detail', 'instance', 'code', 'requestId', 'retryAfter', 'stack', 'cause', '__proto__', 'constructor', 'prototype'])
// ...nor the marker of dropped details, so it means only that (the client
// reads it back as a details member: it stands where the details were).
const RESERVED_NAMES = [...RESERVED, 'detailsOmitted']
const NOT_DETAILS = new Set(RESERVED_NAMES)
const MAX_CAUSES = 10

/**
 * Fault -> problem details. Redaction lives here: an unexposed fault shows
 * only its class's title and code, never its message, stack, cause or
 * details (unless the fault marks its details safe).
 */
export function toProblem (fault: Fault, options: ProblemOptions = {}): ProblemDetails {
  const problem = problemHead(fault, options)
  if (showsDetails(fault, options)) {
    const text = detailsJson(fault.details, options.maxDetailsBytes)
    if (text === TOO_LARGE) problem.detailsOmitted = omitted(fault, options)
    else if (text !== undefined) addDetails(problem, fault.details)
  }
  if (options.debug === true) addDebug(problem, fault)
  return problem
}

/** The standard members: what every problem carries, without details or debug output. */
export function problemHead (fault: Fault, options: ProblemOptions): ProblemDetails {
  const debug = options.debug === true
  const problem: ProblemDetails = {
    type: options.typeBase === undefined ? 'about:blank' : options.typeBase + typeSlug(fault.code),
    title: fault.title,
    status: fault.status,
    detail: debug || fault.expose ? fault.message : fault.title,
    code: fault.code
  }
  if (options.instance !== undefined) problem.instance = options.instance
  if (options.requestId !== undefined) problem.requestId = options.requestId
  // In the body too, so framed transports (ndjson, SSE, WebSocket) carry what the header carries over HTTP.
  if (fault.retryAfter !== undefined) problem.retryAfter = fault.retryAfter
  return problem
}

/** Whether a problem for `fault` shows its details: exposed ones, or all of them in debug. */
export function showsDetails (fault: Fault, options: ProblemOptions): boolean {
  return fault.details !== undefined && (options.debug === true || fault.exposeDetails)
}

/** The `detailsOmitted` member, after telling `onDetailsOmitted`. */
export function omitted (fault: Fault, options: ProblemOptions): DetailsOmitted {
  const limit = options.maxDetailsBytes ?? DEFAULT_MAX_DETAILS_BYTES
  options.onDetailsOmitted?.(fault, limit)
  return { reason: 'too-large', limit }
}

function addDebug (problem: ProblemDetails, fault: Fault): void {
  if (typeof fault.stack === 'string') problem.stack = fault.stack
  const chain = causeChain(fault.cause)
  if (chain.length > 0) problem.cause = chain
}

function typeSlug (code: string): string {
  return encodeURIComponent(wellFormed(code.toLowerCase().replace(/_/g, '-')))
}

/** `encodeURIComponent` throws on lone surrogates: replace them first. */
export function wellFormed (text: string): string {
  return text.replace(/\p{Cs}/gu, '\ufffd')
}

/** `detailsJson`'s answer for details larger than the limit. */
export const TOO_LARGE = Symbol('too large')

/**
 * A fault's details as the JSON text of an object holding the members a
 * problem adds (`{"a":1}`), rendered once, as they are (no copy) unless
 * something must be taken out, and checked against `limit` (bytes of
 * UTF-8). Undefined when there are none to add: not an object, no member
 * JSON keeps, or details that cannot be serialized (a throwing getter or
 * `toJSON`, a BigInt, a cycle), dropped whole: half a details object could
 * mislead (too large, when the rest of them already is). Linear in the size
 * of the details; over the limit, often in the size of the limit.
 */
export function detailsJson (details: unknown, limit: number = DEFAULT_MAX_DETAILS_BYTES): string | typeof TOO_LARGE | undefined {
  try {
    if (typeof details !== 'object' || details === null || Array.isArray(details)) return undefined
    const record = details as Record<string, unknown>
    if (surelyExceeds(record, limit)) return TOO_LARGE
    let json = needsCopy(record) ? undefined : JSON.stringify(record)
    // Not an object's JSON (a boxed primitive): its own members, as an object.
    if (json === undefined || json.charCodeAt(0) !== 0x7b) json = JSON.stringify(membersOf(record))
    if (json.length <= 2) return undefined
    return exceeds(json, limit) ? TOO_LARGE : json
  } catch {
    return undefined
  }
}

/** Above this `maxDetailsBytes`, large details are expected: `detailsJson` does not look for an early way out. */
const SCAN_LIMIT = 1024 * 1024

/**
 * Whether details with many members for the limit (under 64 bytes each
 * would fit) take more than `limit` bytes whatever their values hold, found
 * by counting the fewest characters each member writes, up to the limit:
 * details ten times too large cost a tenth of their rendering to drop.
 * Others are left to JSON.stringify: listing the members of a large object
 * costs a third of stringifying it, wasted on details that fit.
 */
function surelyExceeds (details: Record<string, unknown>, limit: number): boolean {
  if (limit > SCAN_LIMIT) return false
  const keys = Object.keys(details)
  if (keys.length * 64 <= limit) return false
  let fewest = 2
  for (const key of keys) {
    if (NOT_DETAILS.has(key)) continue
    fewest += leastMemberText(key, details[key])
    if (fewest > limit) return true
  }
  return false
}

/** Whether details hold a member a problem does not take (a reserved name) or render their own way (`toJSON`). */
function needsCopy (details: Record<string, unknown>): boolean {
  if (typeof details.toJSON === 'function') return true
  for (const name of RESERVED_NAMES) if (Object.hasOwn(details, name)) return true
  return false
}

/** The own enumerable members a problem takes from `details`. */
function membersOf (details: Record<string, unknown>): Record<string, unknown> {
  const copy: Record<string, unknown> = {}
  for (const key of Object.keys(details)) {
    if (NOT_DETAILS.has(key)) continue
    const value = details[key]
    // A toJSON method would make the copy render as something else.
    if (key === 'toJSON' && typeof value === 'function') continue
    copy[key] = value
  }
  return copy
}

/** Whether `text` takes more than `limit` bytes as UTF-8; counted only when its length leaves a doubt. */
function exceeds (text: string, limit: number): boolean {
  if (text.length > limit) return true
  if (text.length * 3 <= limit) return false
  let bytes = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    // A surrogate pair (two units) is 4 bytes: 2 each.
    bytes += c < 0x80 ? 1 : c < 0x800 || (c >= 0xd800 && c <= 0xdfff) ? 2 : 3
  }
  return bytes > limit
}

/** Details (already checked by `detailsJson`) as members of the problem object, values as they are. */
function addDetails (problem: ProblemDetails, details: unknown): void {
  try {
    Object.assign(problem, membersOf(details as Record<string, unknown>))
  } catch {
    // A getter that throws on this second read: dropped whole, as in detailsJson.
  }
}

/** The cause chain as plain records, bounded and cycle-safe. */
export function causeChain (cause: unknown): DebugCause[] {
  const chain: DebugCause[] = []
  const seen = new Set<unknown>()
  let current = cause
  while (current !== undefined && current !== null && chain.length < MAX_CAUSES && !seen.has(current)) {
    seen.add(current)
    const entry = describeCause(current)
    if (entry === undefined) break
    chain.push(entry.record)
    current = entry.next
  }
  return chain
}

function describeCause (value: unknown): { record: DebugCause, next: unknown } | undefined {
  try {
    if (typeof value !== 'object' && typeof value !== 'function') {
      return { record: { name: typeof value, message: String(value) }, next: undefined }
    }
    const v = value as Record<string, unknown>
    const record: DebugCause = {
      name: typeof v.name === 'string' ? v.name : 'Object',
      message: typeof v.message === 'string' ? v.message : ''
    }
    if (typeof v.code === 'string') record.code = v.code
    if (typeof v.stack === 'string') record.stack = v.stack
    const fields = ownFields(v)
    if (fields !== undefined) record.fields = fields
    return { record, next: v.cause }
  } catch {
    return undefined
  }
}

/**
 * The error record framed transports carry: `{"type":"error","error":<problem>}`
 * (the ndjson stream's last line, the WebSocket error frame).
 */
export function errorRecord (problemJson: string): string {
  return '{"type":"error","error":' + problemJson + '}'
}

const DESCRIBED = new Set(['name', 'message', 'code', 'stack', 'cause'])
const MAX_FIELDS = 20
const MAX_PREVIEW = 1000

/** A cause's other own fields, each previewed: what a log needs to explain it. */
function ownFields (value: Record<string, unknown>): Record<string, unknown> | undefined {
  let fields: Record<string, unknown> | undefined
  let n = 0
  for (const key of Object.keys(value)) {
    if (DESCRIBED.has(key) || key === '__proto__') continue
    if (n++ === MAX_FIELDS) break
    fields ??= {}
    fields[key] = preview(value[key])
  }
  return fields
}

/**
 * A bounded, serializable preview of any value; never throws. Its cost is
 * bounded too, for values of any size: once the text written so far must
 * be longer than the preview keeps, further members are skipped, not
 * serialized only to be cut off.
 */
export function preview (value: unknown): unknown {
  try {
    if (value === null || typeof value === 'number' || typeof value === 'boolean') return value
    if (typeof value === 'string') return value.length > MAX_PREVIEW ? value.slice(0, MAX_PREVIEW) + '…' : value
    if (typeof value !== 'object') return String(value)
    const seen = new WeakSet<object>()
    // A lower bound of the characters written so far.
    let written = 0
    const json = JSON.stringify(value, function (this: unknown, key, v: unknown) {
      if (written > MAX_PREVIEW) return undefined
      let fresh = false
      if (typeof v === 'bigint') v = `${v}n`
      else if (typeof v === 'object' && v !== null) {
        if (seen.has(v)) v = '[Circular]'
        else {
          seen.add(v)
          fresh = true
        }
      }
      written += lowerBound(v) + (Array.isArray(this) || v === undefined || typeof v === 'function' || typeof v === 'symbol' ? 0 : key.length + 3)
      // JSON.stringify calls this once per member, kept or not: a large
      // object or array is cut first to the members that can still be kept.
      return fresh ? keptMembers(v as object, MAX_PREVIEW - written) : v
    })
    return json === undefined ? String(json) : json.length > MAX_PREVIEW ? json.slice(0, MAX_PREVIEW) + '…' : json
  } catch {
    return '[unreadable]'
  }
}

/** Past this many members, `preview` cuts an object or array before JSON.stringify walks it. */
const CUT_MEMBERS = 32

/**
 * `value` with only the members whose text could still fit in `room`
 * characters: the same text as far as `preview` keeps it, since a member is
 * left out only when the fewest characters those before it write already
 * exceed `room`. Each member kept is read once; those left out never are.
 * Small values are returned as they are.
 */
function keptMembers (value: object, room: number): object {
  if (Array.isArray(value)) {
    if (value.length <= CUT_MEMBERS) return value
    let fewest = 0
    let n = 0
    const kept: unknown[] = []
    while (n < value.length && fewest <= room) {
      const member: unknown = value[n++]
      kept.push(member)
      fewest += leastText(member)
    }
    return n === value.length ? value : kept
  }
  const keys = Object.keys(value)
  if (keys.length <= CUT_MEMBERS) return value
  // No prototype: a member named __proto__ stays a member.
  const kept = Object.create(null) as Record<string, unknown>
  let fewest = 0
  for (const key of keys) {
    if (fewest > room) break
    const member = (value as Record<string, unknown>)[key]
    kept[key] = member
    fewest += leastMemberText(key, member)
  }
  return kept
}

/** The fewest characters `"key":value` writes in an object (nothing, for a value JSON may drop). */
function leastMemberText (key: string, member: unknown): number {
  const text = leastText(member)
  return text > 0 ? text + key.length + 3 : 0
}

/** The fewest characters a member's value writes, before its `toJSON` (one that may drop it counts nothing). */
function leastText (member: unknown): number {
  if (typeof member === 'object' && member !== null && typeof (member as { toJSON?: unknown }).toJSON === 'function') return 0
  return lowerBound(member)
}

/** The fewest characters JSON writes for `v` itself (its members count on their own). */
function lowerBound (v: unknown): number {
  if (typeof v === 'string') return v.length + 2
  if (typeof v === 'object') return v === null ? 4 : 2
  return typeof v === 'number' || typeof v === 'boolean' ? 1 : 0
}

// ---------------------------------------------------------------------------
// Problem -> fault: the client's way back (isomorphic).

/** What the transport knows beside the body: the response status and its `Retry-After`. */
export interface ProblemInit {
  /** The response's status; wins over the body's `status`, which RFC 9457 calls advisory. */
  status?: number | undefined
  /** Seconds, or a `Retry-After` header value (delay-seconds or an HTTP-date). Wins over the body's `retryAfter`. */
  retryAfter?: number | string | null | undefined
}

const MAX_CODE = 200

/**
 * Problem details -> the fault they describe. The class registered for
 * `problem.code` (a built-in or any `defineFault` loaded in this process);
 * else a plain `Fault` with that code, the status and title; else the
 * built-in class for the status. `message` is `detail`, `details` the
 * extension members, `retryAfter` from `init` or the body, and `problem` the
 * body as received. Never throws, whatever it is given: without a usable
 * status it is a 500.
 */
export function faultFromProblem (problem: unknown, init?: ProblemInit): Fault {
  try {
    return rehydrate(problem, init)
  } catch {
    // A hostile body (a Proxy, throwing getters): what is left is the status.
    return faultForStatus(statusOf(undefined, init), '')
  }
}

function rehydrate (problem: unknown, init: ProblemInit | undefined): Fault {
  const body = typeof problem === 'object' && problem !== null && !Array.isArray(problem) ? problem as Record<string, unknown> : undefined
  const code = typeof body?.code === 'string' && body.code !== '' && body.code.length <= MAX_CODE ? body.code : undefined
  const message = typeof body?.detail === 'string' ? body.detail : typeof body?.title === 'string' ? body.title : ''
  const retryAfter = parseRetryAfter(init?.retryAfter) ?? parseRetryAfter(body?.retryAfter)
  const details = body === undefined ? undefined : extensionMembers(body)
  const Registered = code === undefined ? undefined : faultClassFor(code)
  const fault = Registered !== undefined
    ? new Registered(message, { details, retryAfter })
    : faultForStatus(statusOf(body, init), message, {
      details,
      retryAfter,
      code,
      title: code !== undefined && typeof body?.title === 'string' && body.title !== '' ? body.title : undefined
    })
  if (body !== undefined) (fault as { problem?: unknown }).problem = body
  return fault
}

function statusOf (body: Record<string, unknown> | undefined, init: ProblemInit | undefined): number {
  if (isFaultStatus(init?.status)) return init.status
  if (isFaultStatus(body?.status)) return body.status
  return 500
}

/** The members that are not RFC 9457's or faultline's own: a fault's `details`. */
function extensionMembers (body: Record<string, unknown>): FaultDetails | undefined {
  let details: FaultDetails | undefined
  for (const key of Object.keys(body)) {
    if (RESERVED.has(key)) continue
    details ??= {}
    details[key] = body[key]
  }
  return details
}

/**
 * A `Retry-After` value as whole seconds from now: delay-seconds (a number
 * or a string of digits) or an HTTP-date (a date in the past is 0).
 * Undefined for anything else.
 */
export function parseRetryAfter (value: unknown, now: number = Date.now()): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 && value <= Number.MAX_SAFE_INTEGER ? Math.ceil(value) : undefined
  if (typeof value !== 'string') return undefined
  const text = value.trim()
  if (/^\d{1,15}$/.test(text)) return Number(text)
  // An HTTP-date always names a weekday and GMT; Date.parse alone is too lenient ("1" is a date).
  if (!/^[A-Za-z]{3}, .* GMT$/.test(text)) return undefined
  const at = Date.parse(text)
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000))
}
