// faultline's ndjson framing, read back: `{"type":"data","data":…}` records,
// then `{"type":"end"}`, or `{"type":"error","error":<problem>}` that throws
// its fault. Anything else is truncation or a malformed record.
import { faultFromProblem } from '../lib/problem.js'
import { bodyChunks, truncatedBody } from './read-body.js'
import { StreamTruncatedError } from '../lib/fault.js'
import { malformed, requestIdOf } from './response.js'
import { readWith, withHeader, type ReadOptions, type ReadSource, type Reader } from './source.js'

// One record larger than this is not buffered further: a stream that never sends a newline is an attack, not data.
const MAX_RECORD = 16 * 1024 * 1024

type Line = { kind: 'data', data: unknown, id: string | undefined } | { kind: 'end' }

/** One line as a record; throws the error record's fault or a clear fault for anything malformed. */
function parseLine (text: string, n: number): Line {
  let record: unknown
  try {
    record = JSON.parse(text)
  } catch (err) {
    throw malformed(`ndjson line ${n} is not JSON: ${preview(text)}`, err)
  }
  const r = record as { type?: unknown, data?: unknown, error?: unknown, id?: unknown } | null
  if (typeof r === 'object' && r !== null) {
    if (r.type === 'data') return { kind: 'data', data: r.data, id: typeof r.id === 'string' && r.id !== '' ? r.id : undefined }
    if (r.type === 'end') return { kind: 'end' }
    if (r.type === 'error') throw faultFromProblem(r.error)
  }
  throw malformed(`ndjson line ${n} is not a faultline record (type "data", "end" or "error"): ${preview(text)}`)
}

function preview (text: string): string {
  return JSON.stringify(text.length > 80 ? text.slice(0, 80) + '…' : text)
}

/**
 * The `data` payloads of a faultline ndjson stream
 * (`reply.streamSafe(source, { framing: 'ndjson' })`). An error record throws
 * its fault (the class the server threw, when this process knows it); a body
 * that ends without `{"type":"end"}` throws `StreamTruncatedError`; a line
 * that is not a record throws a non-retryable `BadGatewayError`. A URL
 * source resumes after a retryable fault with `Last-Event-ID: <id of the
 * last record given out>` when the records carry ids (`{ id }` on the
 * server); without ids, once records were given out, it throws the fault:
 * it cannot go on without repeating or losing one.
 */
export function readNdjson<T = unknown> (source: ReadSource, options: ReadOptions = {}): AsyncGenerator<T, void, undefined> {
  return readWith(source, options, ndjsonReader()) as AsyncGenerator<T, void, undefined>
}

function ndjsonReader (): Reader<unknown> {
  let items = 0
  // The id of the last record given out, while every record so far had one.
  let lastId: string | undefined
  // The id of the first record given out: a resume that starts with it again was ignored by the server.
  let firstId: string | undefined
  // The Last-Event-ID of the request in flight, if it is a resume.
  let resumedAfter: string | undefined
  return {
    next (init) {
      if (items === 0) return init
      // Records given out cannot be taken back: only a resume may go on.
      if (lastId === undefined) return undefined
      resumedAfter = lastId
      return withHeader(init, 'last-event-id', lastId)
    },
    async * read (response, context) {
      const decoder = new TextDecoder()
      let buffer = ''
      let n = 0
      let checkFirst = resumedAfter
      for await (const chunk of bodyChunks(response, context)) {
        buffer += decoder.decode(chunk, { stream: true })
        let start = 0
        for (let nl = buffer.indexOf('\n'); nl !== -1; nl = buffer.indexOf('\n', start)) {
          const text = buffer.slice(start, nl)
          start = nl + 1
          n++
          if (text.trim() === '') continue
          const line = parseLine(text, n)
          if (line.kind === 'end') return
          if (checkFirst !== undefined && (line.id === checkFirst || line.id === firstId)) {
            // A record given out already: the server did not start after the id (it ignores Last-Event-ID).
            const requestId = requestIdOf(response, context.requestIdHeader)
            throw new StreamTruncatedError(`The ndjson stream could not be resumed after record ${JSON.stringify(checkFirst)}: the server sent record ${JSON.stringify(line.id)} again`, {
              retryable: false, details: requestId === undefined ? undefined : { requestId }, exposeDetails: true
            })
          }
          checkFirst = undefined
          if (items === 0) firstId = line.id
          items++
          lastId = line.id
          yield line.data
        }
        buffer = buffer.slice(start)
        if (buffer.length > MAX_RECORD) throw malformed(`ndjson line ${n + 1} is longer than ${MAX_RECORD} characters`)
      }
      throw truncatedBody(response, context)
    }
  }
}
