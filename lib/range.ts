// Byte ranges (RFC 9110 §14): the `Range`, `If-Range` and `Content-Range`
// header fields, for resumable raw streams. Isomorphic: the server plans its
// answer with it, the client checks a 206 with it. Nothing here throws,
// whatever header value it is given.

/** The answer to a request for a representation of `length` bytes. */
export type RangePlan =
  /** 200: the whole representation (no Range, or one this server ignores). */
  | { readonly status: 200, readonly start: 0, readonly end: number }
  /** 206: bytes `start` to `end`, both inclusive. */
  | { readonly status: 206, readonly start: number, readonly end: number }
  /** 416: no requested range overlaps the representation. */
  | { readonly status: 416 }

/** A `Range` header's one byte range, before it meets a length: `bytes=a-`, `bytes=a-b` or `bytes=-n`. */
export type ByteRangeSpec =
  | { readonly kind: 'int', readonly first: string, readonly last: string | undefined }
  | { readonly kind: 'suffix', readonly length: string }

// OWS (SP / HTAB) around list elements; DIGIT runs as in the grammar.
const OWS = /^[ \t]+|[ \t]+$/g
const INT_RANGE = /^([0-9]+)-([0-9]*)$/
const SUFFIX_RANGE = /^-([0-9]+)$/
// token (RFC 9110 §5.6.2), for the range unit.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
// entity-tag = [ weak ] opaque-tag; opaque-tag = DQUOTE *etagc DQUOTE; etagc = %x21 / %x23-7E / obs-text
const STRONG_ETAG = /^"[\x21\x23-\x7e\x80-\xff]*"$/
const ETAG_CHARS = /^[\x21\x23-\x7e\x80-\xff]+$/
// Number.MAX_SAFE_INTEGER has 16 digits: anything longer is beyond every length.
const MAX_DIGITS = 16

/**
 * The single byte range a `Range` header asks for, or undefined when the
 * header is to be ignored: absent, not a string, another unit, not valid
 * under the grammar (`bytes=5-2`, `bytes=x`), or several ranges (a server may
 * answer those with the whole body, RFC 9110 §14.2). Empty list elements are
 * skipped, as §5.6.1 asks.
 */
export function parseRangeHeader (header: unknown): ByteRangeSpec | undefined {
  if (typeof header !== 'string') return undefined
  const eq = header.indexOf('=')
  if (eq <= 0) return undefined
  const unit = header.slice(0, eq)
  if (!TOKEN.test(unit) || unit.toLowerCase() !== 'bytes') return undefined
  let spec: ByteRangeSpec | undefined
  let count = 0
  for (const raw of header.slice(eq + 1).split(',')) {
    const element = raw.replace(OWS, '')
    if (element === '') continue
    if (++count > 1) return undefined
    spec = parseSpec(element)
    if (spec === undefined) return undefined
  }
  return spec
}

function parseSpec (element: string): ByteRangeSpec | undefined {
  const int = INT_RANGE.exec(element)
  if (int !== null) {
    const first = int[1]!
    const last = int[2] === '' ? undefined : int[2]!
    // first-pos > last-pos is invalid: the whole field is ignored (§14.1.1).
    if (last !== undefined && compareDigits(first, last) > 0) return undefined
    return { kind: 'int', first, last }
  }
  const suffix = SUFFIX_RANGE.exec(element)
  // Anything else (an other-range, or not valid at all) is not a byte range we serve.
  return suffix === null ? undefined : { kind: 'suffix', length: suffix[1]! }
}

/** Compares two DIGIT strings as the (unbounded) numbers they spell. */
function compareDigits (a: string, b: string): number {
  const x = a.replace(/^0+(?=.)/, '')
  const y = b.replace(/^0+(?=.)/, '')
  if (x.length !== y.length) return x.length - y.length
  return x < y ? -1 : x > y ? 1 : 0
}

/** A DIGIT string as a number, or Infinity beyond the safe integers (past any length). */
function digits (value: string): number {
  const trimmed = value.replace(/^0+(?=.)/, '')
  if (trimmed.length > MAX_DIGITS) return Infinity
  const n = Number(trimmed)
  return n > Number.MAX_SAFE_INTEGER ? Infinity : n
}

/**
 * What to send for a parsed range against a representation of `length`
 * bytes (a non-negative safe integer): 206 with the clipped range, 416 when
 * it is unsatisfiable, or 200 for the whole body (no range, or an empty
 * representation, where no byte range can be expressed).
 */
export function planRange (spec: ByteRangeSpec | undefined, length: number): RangePlan {
  const whole = { status: 200, start: 0, end: length - 1 } as const
  if (spec === undefined || length === 0) return whole
  if (spec.kind === 'suffix') {
    const n = digits(spec.length)
    // A zero-length suffix selects nothing: unsatisfiable (§14.1.3).
    if (n === 0) return { status: 416 }
    return { status: 206, start: Math.max(0, length - n), end: length - 1 }
  }
  const first = digits(spec.first)
  if (first >= length) return { status: 416 }
  const last = spec.last === undefined ? Infinity : digits(spec.last)
  return { status: 206, start: first, end: Math.min(last, length - 1) }
}

/**
 * Whether an `If-Range` value lets a range request through: absent (no
 * condition), or an entity-tag that strongly matches `etag` (§13.1.5: weak
 * tags never match; a date never matches here, since these responses carry
 * no Last-Modified). When it does not, the server sends the whole body.
 */
export function ifRangeMatches (header: unknown, etag: string): boolean {
  if (header === undefined) return true
  return typeof header === 'string' && header.replace(OWS, '') === etag
}

/**
 * The whole decision for one GET of a resumable representation. Range
 * handling is defined for GET only (§14.2): other methods get the whole body.
 */
export function rangeFor (method: string, range: unknown, ifRange: unknown, etag: string, length: number): RangePlan {
  if (method !== 'GET' || range === undefined || !ifRangeMatches(ifRange, etag)) return planRange(undefined, length)
  return planRange(parseRangeHeader(range), length)
}

/** `Content-Range` for a 206 (`bytes a-b/length`) or a 416 (`bytes *\/length`). */
export function contentRange (plan: RangePlan, length: number): string {
  return plan.status === 416 ? `bytes */${length}` : `bytes ${plan.start}-${plan.end}/${length}`
}

/** A `Content-Range` header of a 206, parsed; undefined unless it is exactly `bytes a-b/length` (or `/*`) with a <= b < length. */
export function parseContentRange (header: unknown): { start: number, end: number, length: number | undefined } | undefined {
  if (typeof header !== 'string') return undefined
  const match = /^bytes ([0-9]+)-([0-9]+)\/([0-9]+|\*)$/i.exec(header.replace(OWS, ''))
  if (match === null) return undefined
  const start = digits(match[1]!)
  const end = digits(match[2]!)
  const length = match[3] === '*' ? undefined : digits(match[3]!)
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start) return undefined
  if (length !== undefined && !(Number.isSafeInteger(length) && end < length)) return undefined
  return { start, end, length }
}

/**
 * The strong entity-tag for an `etag` option: a quoted tag as it is
 * (`"v1"`), or bare tag characters quoted (`v1` -> `"v1"`). Undefined for a
 * weak tag or anything that is not a valid tag.
 */
export function strongEtag (value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined
  if (STRONG_ETAG.test(value)) return value
  return ETAG_CHARS.test(value) && !value.startsWith('W/') ? `"${value}"` : undefined
}

/** Whether `value` is a weak entity-tag (`W/"…"`). */
export function isWeakEtag (value: unknown): boolean {
  return typeof value === 'string' && value.startsWith('W/')
}
