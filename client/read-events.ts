// Server-Sent Events, read with eventsource-parser, with faultline's error
// events turned back into faults: a final one throws (terminal: never
// retried; retryable: the loop reconnects with Last-Event-ID).
import { createParser, type EventSourceMessage } from 'eventsource-parser'
import { isFault, type Fault } from '../lib/fault.js'
import { faultFromProblem } from '../lib/problem.js'
import { FaultlineInvalidOptionError } from '../lib/errors.js'
import { bodyChunks } from './read-body.js'
import { malformed } from './response.js'
import { readWith, withHeader, type ReadOptions, type ReadSource, type Reader } from './source.js'

/** One SSE message, as `EventSource` gives it. */
export interface SseMessage {
  /** The `event:` name; `message` when the server gave none. */
  event: string
  /** The data lines, joined with `\n`: the raw string, not parsed. */
  data: string
  /** The last event id seen on this stream so far (this message's, or an earlier one's); `''` before any. */
  id: string
}

export interface ReadEventsOptions extends ReadOptions {
  /** The name of faultline's error event (faultlineSse's `errorEvent`). Default: `error`. */
  errorEvent?: string
  /** The prefix of a terminal error event's id (faultlineSse's `terminalIdPrefix`). Default: `faultline-terminal:`. */
  terminalIdPrefix?: string
}

const DEFAULT_TERMINAL_ID_PREFIX = 'faultline-terminal:'
// An event larger than this is not buffered further (eventsource-parser's maxBufferSize).
const MAX_EVENT = 16 * 1024 * 1024
const WHERE = 'fastify-faultline/client'

/**
 * The messages of an SSE stream. faultline's error event that ends the
 * stream throws its fault: a terminal one (a 4xx that is not retryable) at
 * once, a retryable one after the policy's retries, each reconnecting with
 * `Last-Event-ID`. An error event the stream goes on after (a route's
 * non-fatal `reply.sse.fault(err)`) is yielded like any message. A 204 (the
 * server's "stop reconnecting") or a clean end of the stream ends the
 * iteration; a connection cut mid-way is `StreamTruncatedError`, retried.
 */
export function readEvents (source: ReadSource, options: ReadEventsOptions = {}): AsyncGenerator<SseMessage, void, undefined> {
  const errorEvent = options.errorEvent ?? 'error'
  const terminalIdPrefix = options.terminalIdPrefix ?? DEFAULT_TERMINAL_ID_PREFIX
  if (typeof errorEvent !== 'string' || errorEvent === '') throw new FaultlineInvalidOptionError(WHERE, 'errorEvent', 'must be a non-empty event name')
  if (typeof terminalIdPrefix !== 'string' || terminalIdPrefix === '') throw new FaultlineInvalidOptionError(WHERE, 'terminalIdPrefix', 'must be a non-empty string')
  const init = options.init ?? {}
  const accept = new Headers(init.headers).has('accept') ? init : withHeader(init, 'accept', 'text/event-stream')
  return readWith(source, { ...options, init: accept }, eventsReader(errorEvent, terminalIdPrefix))
}

/** The fault an error event's data describes; data that is not JSON is a clear fault of its own. */
function faultOf (data: string): Fault {
  let problem: unknown
  try {
    problem = JSON.parse(data)
  } catch (err) {
    return malformed(`The SSE error event's data is not JSON: ${JSON.stringify(data.length > 80 ? data.slice(0, 80) + '…' : data)}`, err)
  }
  return faultFromProblem(problem)
}

interface Parsed {
  message: SseMessage
  /** A `retry:` field came with it: faultline marks the final event of a retryable fault so. */
  retry: boolean
}

function eventsReader (errorEvent: string, terminalIdPrefix: string): Reader<SseMessage> {
  let lastEventId = ''
  return {
    next: init => lastEventId === '' ? init : withHeader(init, 'last-event-id', lastEventId),
    async * read (response, context) {
      if (response.status === 204) return
      const type = response.headers.get('content-type') ?? ''
      if (!/^text\/event-stream\b/i.test(type)) {
        throw malformed(`Expected an event stream (text/event-stream), got ${JSON.stringify(type === '' ? 'no content type' : type)}`)
      }
      const queue: Parsed[] = []
      let retrySeen = false
      const parser = createParser({
        maxBufferSize: MAX_EVENT,
        onRetry: () => { retrySeen = true },
        onEvent: (event: EventSourceMessage) => {
          if (event.id !== undefined) lastEventId = event.id
          queue.push({ message: { event: event.event ?? 'message', data: event.data, id: lastEventId }, retry: retrySeen })
          retrySeen = false
        },
        onError: err => {
          // Unknown fields and bad retry values are ignored, as EventSource does; only size is fatal.
          if (err.type === 'max-buffer-size-exceeded') throw malformed(`An SSE event is larger than ${MAX_EVENT} characters`, err)
        }
      })
      const decoder = new TextDecoder()
      // An error event with neither a terminal id nor `retry:` may be final
      // (an unexposed 5xx) or not (a route's non-fatal fault): the next event,
      // or the end of the stream, says which.
      let pending: { message: SseMessage, fault: Fault } | undefined
      try {
        for await (const chunk of bodyChunks(response, context)) {
          parser.feed(decoder.decode(chunk, { stream: true }))
          for (let parsed = queue.shift(); parsed !== undefined; parsed = queue.shift()) {
            if (pending !== undefined) {
              yield pending.message
              pending = undefined
            }
            const { message, retry } = parsed
            if (message.event !== errorEvent) {
              yield message
              continue
            }
            const fault = faultOf(message.data)
            if (retry || message.id.startsWith(terminalIdPrefix)) throw fault
            pending = { message, fault }
          }
        }
      } catch (err) {
        // Cut right after an error event: that event was the stream's last word.
        throw pending !== undefined && isFault(err) && err.code === 'STREAM_TRUNCATED' ? pending.fault : err
      }
      if (pending !== undefined) throw pending.fault
    }
  }
}
