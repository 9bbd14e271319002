// A response body as chunks: a body cut mid-way is a StreamTruncatedError,
// never a clean end; a cancelled signal stops the read at once.
import { StreamTruncatedError, type Fault } from '../lib/fault.js'
import { parseContentRange, strongEtag } from '../lib/range.js'
import { requestIdOf, truncated } from './response.js'
import { readWith, withHeader, type ReadContext, type ReadOptions, type ReadSource, type Reader } from './source.js'

type ChunkReader = ReadableStreamDefaultReader<Uint8Array>

/** One read that gives up at once when `signal` aborts (the read is cancelled, the reason thrown). */
function readOnce (reader: ChunkReader, signal: AbortSignal | undefined): ReturnType<ChunkReader['read']> {
  if (signal === undefined) return reader.read()
  signal.throwIfAborted()
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      reject(signal.reason)
      reader.cancel(signal.reason).catch(() => {})
    }
    signal.addEventListener('abort', onAbort, { once: true })
    reader.read().then(result => {
      signal.removeEventListener('abort', onAbort)
      resolve(result)
    }, (err: unknown) => {
      signal.removeEventListener('abort', onAbort)
      reject(err)
    })
  })
}

/**
 * The chunks of a response's body. A read that fails (the connection was
 * cut: no terminating chunk, fewer bytes than Content-Length) throws
 * `StreamTruncatedError` with the request id; leaving early cancels the body.
 */
export async function * bodyChunks (response: Response, context: ReadContext): AsyncGenerator<Uint8Array, void, undefined> {
  const body = response.body
  if (body === null) return
  const reader = body.getReader()
  let finished = false
  try {
    for (;;) {
      const result = await readOnce(reader, context.signal)
      if (result.done) break
      yield result.value
    }
    finished = true
  } catch (err) {
    if (context.signal?.aborted === true) throw context.signal.reason
    throw truncatedBody(response, context, err)
  } finally {
    if (!finished) reader.cancel().catch(() => {})
  }
}

/** The fault for a body that ended before it should have. */
export function truncatedBody (response: Response, context: ReadContext, cause?: unknown): Fault {
  const requestId = requestIdOf(response, context.requestIdHeader)
  return truncated(`The response body ended early${requestId === undefined ? '' : ` (request id ${requestId})`}`, requestId, cause)
}

/**
 * A response body as `Uint8Array` chunks. A URL source is fetched and
 * retried on a retryable fault; once bytes were given out, it resumes where
 * it stopped (`Range: bytes=<received>-` with `If-Range: <etag>`) when the
 * first response had a strong `ETag` and `Accept-Ranges: bytes`, and
 * accepts only a 206 of that entity starting exactly there. A non-2xx
 * response throws its fault; a body cut mid-way that cannot be resumed
 * throws `StreamTruncatedError`.
 */
export function readBody (source: ReadSource, options: ReadOptions = {}): AsyncGenerator<Uint8Array, void, undefined> {
  return readWith(source, options, bodyReader())
}

/** What the first response promised: the entity to resume, by its strong tag and (when known) its length. */
interface Entity {
  readonly etag: string
  readonly length: number | undefined
}

/** The entity a response lets us resume: a 200 with a strong ETag and `Accept-Ranges: bytes`. */
function resumableEntity (response: Response): Entity | undefined {
  const etag = response.headers.get('etag') ?? undefined
  const ranges = response.headers.get('accept-ranges') ?? ''
  if (response.status !== 200 || etag === undefined || strongEtag(etag) !== etag) return undefined
  if (!ranges.split(',').some(unit => unit.trim().toLowerCase() === 'bytes')) return undefined
  const declared = response.headers.get('content-length')
  const length = declared !== null && /^[0-9]{1,16}$/.test(declared) ? Number(declared) : undefined
  return { etag, length: length !== undefined && Number.isSafeInteger(length) ? length : undefined }
}

/** Why a response to `Range: bytes=<from>-` is not the rest of `entity`, or undefined when it is. */
function notTheRest (response: Response, from: number, entity: Entity): string | undefined {
  if (response.status !== 206) return `the server answered ${response.status}, not 206 (the entity changed, or it ignores Range)`
  if (response.headers.get('etag') !== entity.etag) return `its ETag ${JSON.stringify(response.headers.get('etag'))} is not ${entity.etag}`
  const range = parseContentRange(response.headers.get('content-range'))
  if (range === undefined) return `its Content-Range ${JSON.stringify(response.headers.get('content-range'))} is not a byte range`
  if (range.start !== from) return `it starts at byte ${range.start}, not ${from}`
  if (entity.length !== undefined && (range.length !== entity.length || range.end !== entity.length - 1)) {
    return `it covers bytes ${range.start}-${range.end}/${range.length ?? '*'}, not the rest of ${entity.length}`
  }
  return undefined
}

function bodyReader (): Reader<Uint8Array> {
  let received = 0
  let entity: Entity | undefined
  let first = true
  // The byte the request in flight asked to start at (a resume), if any.
  let from: number | undefined
  return {
    next (init) {
      // Nothing given out yet: the same request again (its response names the entity).
      if (received === 0) {
        first = true
        return init
      }
      // Bytes given out cannot be taken back: only a resume may go on, and
      // only one the first response allowed (a caller's own Range header: no).
      if (entity === undefined) return undefined
      from = received
      return withHeader(withHeader(init, 'range', `bytes=${received}-`), 'if-range', entity.etag)
    },
    async * read (response, context) {
      if (first) {
        first = false
        entity = resumableEntity(response)
      } else if (from !== undefined) {
        const why = notTheRest(response, from, entity!)
        if (why !== undefined) {
          response.body?.cancel().catch(() => {})
          // Never spliced: the bytes would come from another entity, or repeat.
          const requestId = requestIdOf(response, context.requestIdHeader)
          throw new StreamTruncatedError(`The response body ended at byte ${from} and could not be resumed: ${why}`, {
            retryable: false, details: requestId === undefined ? undefined : { requestId }, exposeDetails: true
          })
        }
      }
      for await (const chunk of bodyChunks(response, context)) {
        received += chunk.byteLength
        yield chunk
      }
    }
  }
}
