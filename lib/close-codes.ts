import {
  isSendableCloseCode, faultClassFor, faultForStatus, ConnectionLostError, ServerShutdownError, PayloadTooLargeError,
  InternalError, ServiceUnavailableError, BadGatewayError, BadRequestError, type Fault, type FaultClass, type FaultClassInfo
} from './fault.js'

/** Close code for a server going away (RFC 6455 section 7.4.1). */
export const SHUTDOWN_CLOSE_CODE = 1001
/** Close reason sent with `SHUTDOWN_CLOSE_CODE`. */
export const SHUTDOWN_REASON = 'SERVER_SHUTDOWN'
/**
 * Close code for a peer cut off for not reading its error frames: 1008,
 * "policy violation" (RFC 6455 section 7.4.1), the peer's own behaviour broke
 * the server's policy. Not 1013 ("try again later", IANA registry): that
 * says the server is overloaded, and a client would reconnect and do the same.
 */
export const BACKPRESSURE_CLOSE_CODE = 1008
/** RFC 6455: a close frame's payload is at most 125 bytes, 2 of them the code. */
export const MAX_CLOSE_REASON_BYTES = 123

/**
 * Close codes by fault code (`"PAYMENT_REQUIRED"`) or by HTTP status
 * (`"402"`). A fault code wins over a status.
 */
export type CloseCodeMap = Readonly<Record<string, number>>

/**
 * The default mapping from an HTTP status: 4xx -> 4000 + status (413 ->
 * 1009, "message too big"); 502 -> 1014, 503 -> 1013, any other 5xx -> 1011.
 */
export function defaultCloseCode (status: number): number {
  if (status === 413) return 1009
  if (status >= 400 && status < 500) return 4000 + status
  if (status === 502) return 1014
  if (status === 503) return 1013
  return 1011
}

/**
 * The close code for a fault. Order: `overrides` by fault code, then by
 * status, then the fault class's static `closeCode` (`defineFault({ closeCode })`),
 * then the default map. A value that a server may not send (1004-1006, 1015,
 * anything outside 1000-1014 and 3000-4999) is skipped, so the result is
 * always sendable.
 */
export function closeCodeFor (fault: Fault, overrides?: CloseCodeMap): number {
  if (overrides !== undefined) {
    const byCode = Object.hasOwn(overrides, fault.code) ? overrides[fault.code] : undefined
    if (isSendableCloseCode(byCode)) return byCode
    const key = String(fault.status)
    const byStatus = Object.hasOwn(overrides, key) ? overrides[key] : undefined
    if (isSendableCloseCode(byStatus)) return byStatus
  }
  const byClass = classCloseCode(fault)
  if (isSendableCloseCode(byClass)) return byClass
  return defaultCloseCode(fault.status)
}

// A fault class may set `static closeCode` by hand, so it is read defensively.
function classCloseCode (fault: Fault): unknown {
  try {
    return (fault.constructor as Partial<FaultClassInfo> | undefined)?.closeCode
  } catch {
    return undefined
  }
}

/** The close reason for a fault: its code, cut to fit a close frame. */
export function closeReason (fault: Fault): string {
  return truncateUtf8(fault.code, MAX_CLOSE_REASON_BYTES)
}

/**
 * The longest prefix of `text` that is at most `maxBytes` bytes of UTF-8,
 * cut between code points (never inside a character or a surrogate pair).
 */
export function truncateUtf8 (text: string, maxBytes: number = MAX_CLOSE_REASON_BYTES): string {
  // Fast path: every UTF-16 unit is at most 3 bytes of UTF-8.
  if (text.length * 3 <= maxBytes) return text
  let bytes = 0
  let end = 0
  for (const char of text) {
    const cp = char.codePointAt(0)!
    const size = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4
    if (bytes + size > maxBytes) break
    bytes += size
    end += char.length
  }
  return end === text.length ? text : text.slice(0, end)
}

/**
 * Why `code` cannot be a configured close code, or undefined when it can.
 * For register-time option checks.
 */
export function whyUnsendableCloseCode (code: unknown): string | undefined {
  if (isSendableCloseCode(code)) return undefined
  if (code === 1005 || code === 1006 || code === 1015) {
    return `${String(code)} is reserved for reporting a missing or failed close and is never sent in a close frame`
  }
  return 'must be an integer close code a server may send: 1000-1014 except 1004-1006, or 3000-4999'
}

// ---------------------------------------------------------------------------
// Close code + reason -> fault: the client's way back (isomorphic).

/** Close codes with a meaning of their own, as the class a client rebuilds. */
const CLASS_BY_CLOSE_CODE: ReadonlyMap<number, FaultClass> = new Map([
  [SHUTDOWN_CLOSE_CODE, ServerShutdownError],
  [1002, BadRequestError], // protocol error
  [1003, BadRequestError], // unsupported data
  [1006, ConnectionLostError], // no close frame at all: the connection dropped
  [1007, BadRequestError], // invalid payload data
  [1009, PayloadTooLargeError],
  [1011, InternalError],
  [1012, ServiceUnavailableError], // service restart
  [1013, ServiceUnavailableError], // try again later
  [1014, BadGatewayError]
])

/**
 * A WebSocket close -> the fault it reports, the inverse of `closeCodeFor`:
 * `1000` (and `1005`, a close frame without a code) is a normal close,
 * `undefined`. A reason naming a known fault code wins; else 4000 + status
 * -> that status, 1009 -> 413, 1011 -> 500, 1013 -> 503, 1014 -> 502, 1001
 * -> `ServerShutdownError` (retryable), 1006 -> `ConnectionLostError`
 * (retryable); any other code is a 500. Never throws.
 */
export function faultFromClose (code: unknown, reason?: unknown): Fault | undefined {
  if (code === 1000 || code === 1005) return undefined
  const text = typeof reason === 'string' ? reason : ''
  const closeCode = typeof code === 'number' && Number.isInteger(code) ? code : 1006
  const message = `WebSocket closed with ${closeCode}${text === '' ? '' : ` ${text}`}`
  const Named = text === '' ? undefined : faultClassFor(text)
  if (Named !== undefined) return new Named(message)
  if (closeCode >= 4400 && closeCode <= 4599) return faultForStatus(closeCode - 4000, message)
  const Cls = CLASS_BY_CLOSE_CODE.get(closeCode) ?? InternalError
  return new Cls(message)
}
