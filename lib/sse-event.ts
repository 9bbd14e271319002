import type { Fault } from './fault.js'
import { wellFormed, type ProblemDetails } from './problem.js'
import { stringifyProblem } from './problem-json.js'

// Pure SSE rendering for faults: problem -> the bytes of one error event.
// Nothing here knows about Fastify; the plugin decides when to write.

/** The prefix of the `id:` a terminal error event carries, unless configured. */
export const DEFAULT_TERMINAL_ID_PREFIX = 'faultline-terminal:'

// Everything an SSE parser (or a sloppy one) could read as a line break, plus
// NUL, which makes a spec parser drop an `id:` field.
const LINE_BREAKS = /[\r\n\u2028\u2029]/g
const UNSAFE_FIELD = /[\0\r\n\u2028\u2029]/g

const ESCAPES: Record<string, string> = {
  '\r': '\\r',
  '\n': '\\n',
  '\u2028': '\\u2028',
  '\u2029': '\\u2029'
}

/**
 * JSON text as one safe `data:` line. JSON serializers already escape CR and
 * LF inside strings, but leave U+2028/U+2029 raw; each becomes its JSON
 * escape, which parses back to the same string.
 */
export function sseJsonLine (json: string): string {
  return json.replace(LINE_BREAKS, ch => ESCAPES[ch]!)
}

/** A field value with everything that could end the line (or void an `id:`) removed. */
export function sseFieldValue (value: string): string {
  return value.replace(UNSAFE_FIELD, '')
}

/** Whether a fault ends the stream for good: below 500 and not retryable (retrying cannot help). */
export function isTerminalFault (fault: Pick<Fault, 'status' | 'retryable'>): boolean {
  return fault.status < 500 && !fault.retryable
}

/** The `id:` of a terminal error event: a prefix plus the URI-encoded fault code, stateless. */
export function terminalEventId (code: string, prefix: string = DEFAULT_TERMINAL_ID_PREFIX): string {
  return prefix + encodeURIComponent(wellFormed(code))
}

/** Whether a `Last-Event-ID` is one a terminal error event set: the client must stop reconnecting. */
export function isTerminalEventId (lastEventId: unknown, prefix: string = DEFAULT_TERMINAL_ID_PREFIX): boolean {
  return typeof lastEventId === 'string' && lastEventId.startsWith(prefix)
}

/**
 * The reconnect delay (ms) for the `retry:` line: only retryable faults get
 * one, from their `retryAfter` (seconds) or else `defaultRetry`.
 */
export function retryFor (fault: Pick<Fault, 'retryable' | 'retryAfter'>, defaultRetry: number): number | undefined {
  if (!fault.retryable) return undefined
  return fault.retryAfter === undefined ? defaultRetry : fault.retryAfter * 1000
}

export interface SseEventFields {
  /** Event name. Default: `error`. */
  event?: string | undefined
  /** `id:` field; omitted when undefined so the client keeps its last event id. */
  id?: string | undefined
  /** `retry:` field in ms; omitted when undefined. */
  retry?: number | undefined
}

/** One SSE event whose data is a JSON text: `event:`, optional `id:`, one `data:` line, optional `retry:`. */
export function sseJsonEvent (json: string, fields: SseEventFields = {}): string {
  let out = 'event: ' + sseFieldValue(fields.event ?? 'error') + '\n'
  if (fields.id !== undefined) out += 'id: ' + sseFieldValue(fields.id) + '\n'
  out += 'data: ' + sseJsonLine(json) + '\n'
  if (fields.retry !== undefined && Number.isFinite(fields.retry) && fields.retry >= 0) {
    out += 'retry: ' + Math.floor(fields.retry) + '\n'
  }
  return out + '\n'
}

export interface SseFaultEventOptions {
  /** Event name. Default: `error`. */
  event?: string | undefined
  /** Whether the stream ends after this event; only a final event gets `id:` and `retry:`. Default: true. */
  final?: boolean | undefined
  /** Prefix of a terminal event's id. Default: `faultline-terminal:`. */
  terminalIdPrefix?: string | undefined
  /** `retry:` (ms) for a retryable fault without `retryAfter`. Default: 3000. */
  defaultRetry?: number | undefined
}

/**
 * A fault as an SSE error event: the problem as one line of JSON. A final
 * event of a terminal fault carries the terminal `id:` (its reconnect is
 * answered 204); a final event of a retryable fault carries `retry:`.
 */
export function sseFaultEvent (fault: Fault, problem: ProblemDetails, options: SseFaultEventOptions = {}): string {
  const final = options.final !== false
  return sseJsonEvent(stringifyProblem(problem), {
    event: options.event,
    id: final && isTerminalFault(fault) ? terminalEventId(fault.code, options.terminalIdPrefix) : undefined,
    retry: final ? retryFor(fault, options.defaultRetry ?? 3000) : undefined
  })
}
