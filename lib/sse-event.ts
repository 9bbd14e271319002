import { InternalError, type Fault } from './fault.js'
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

// The line breaks of SSE itself: CRLF, a bare CR, a bare LF. @fastify/sse
// splits data on LF only, so a bare CR would end a `data:` line in the
// client's parser and start a field of the text's choosing.
const SSE_LINE_BREAK = /\r\n?/g
// What a field value must not hold: a line break ends the field, a NUL makes
// a spec parser drop an `id:`.
const FIELD_BREAKER = /[\0\r\n]/
/** The fields @fastify/sse writes raw, besides `data` (it writes them in this order). */
type Field = 'id' | 'event' | 'retry'

/**
 * Text as @fastify/sse may write it as data: every line break (CRLF, CR, LF)
 * becomes the LF it splits `data:` lines on, so each line of the text is a
 * `data:` line of its own and none can start another field.
 */
export function sseDataText (text: string): string {
  return text.replace(SSE_LINE_BREAK, '\n')
}

function preview (value: string): string {
  return JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)
}

/** A field value as @fastify/sse writes it (`${value}`), or a fault: never a second field. */
function fieldValue (field: Field, value: unknown, terminalIdPrefix: string): string {
  const text = `${value as string}`
  if (FIELD_BREAKER.test(text)) {
    throw new InternalError(`SSE event ${field} ${preview(text)} holds a line break (CR or LF) or NUL: refused, it would end the field and forge the next one`)
  }
  if (field === 'id' && text.startsWith(terminalIdPrefix)) {
    throw new InternalError(`SSE event id ${preview(text)} starts with the terminal prefix ${JSON.stringify(terminalIdPrefix)}: refused, only faultline's terminal error events carry it`)
  }
  return text
}

/**
 * One message given to `reply.sse.send()` as @fastify/sse may format it.
 * Text (a string or Buffer) gets its line breaks as LF; an `{ id, event,
 * data, retry }` message is copied with its fields checked (CR, LF or NUL in
 * `id`, `event` or `retry`, or an `id` with the terminal prefix, is an
 * InternalError, thrown). Its data is serialized later by @fastify/sse: see
 * `sseSerializer`. Anything else is returned as is (@fastify/sse refuses it
 * or writes nothing).
 */
export function sseMessage (message: unknown, terminalIdPrefix: string = DEFAULT_TERMINAL_ID_PREFIX): unknown {
  if (typeof message === 'string') return sseDataText(message)
  if (Buffer.isBuffer(message)) return sseDataText(message.toString('utf-8'))
  if (typeof message !== 'object' || message === null || !('data' in message)) return message
  const source = message as Record<Field | 'data', unknown>
  const safe: Partial<Record<Field | 'data', unknown>> = { data: source.data }
  // Each field read once, by name (one event after another: no keyed loads).
  // @fastify/sse writes a field only when it is truthy.
  const { id, event, retry } = source
  if (id) safe.id = fieldValue('id', id, terminalIdPrefix)
  if (event) safe.event = fieldValue('event', event, terminalIdPrefix)
  if (retry) safe.retry = fieldValue('retry', retry, terminalIdPrefix)
  return safe
}

/** A serializer whose text has every line break as LF, so each becomes a `data:` line of its own. */
export function sseSerializer (serialize: (data: unknown) => string): (data: unknown) => string {
  // JSON.stringify (@fastify/sse's default) never writes a raw CR or LF: it
  // escapes them inside strings. Nothing to check, on every event.
  if (serialize === JSON.stringify) return serialize
  return data => {
    const text = serialize(data)
    return typeof text === 'string' ? sseDataText(text) : text
  }
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
  return sseProblemEvent(fault, stringifyProblem(problem), options)
}

/** `sseFaultEvent` for a problem already rendered as one line of JSON. */
export function sseProblemEvent (fault: Fault, problemJson: string, options: SseFaultEventOptions = {}): string {
  const final = options.final !== false
  return sseJsonEvent(problemJson, {
    event: options.event,
    id: final && isTerminalFault(fault) ? terminalEventId(fault.code, options.terminalIdPrefix) : undefined,
    retry: final ? retryFor(fault, options.defaultRetry ?? 3000) : undefined
  })
}
