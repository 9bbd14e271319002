// A response body as chunks: a body cut mid-way is a StreamTruncatedError,
// never a clean end; a cancelled signal stops the read at once.
import type { Fault } from '../lib/fault.js'
import { requestIdOf, truncated } from './response.js'
import { readWith, type ReadContext, type ReadOptions, type ReadSource, type Reader } from './source.js'

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
      if (result.done) {
        finished = true
        return
      }
      yield result.value
    }
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
 * A response body as `Uint8Array` chunks. A URL source is fetched (and
 * retried on a retryable fault until the first byte arrives); a non-2xx
 * response throws its fault; a body cut mid-way throws `StreamTruncatedError`.
 */
export function readBody (source: ReadSource, options: ReadOptions = {}): AsyncGenerator<Uint8Array, void, undefined> {
  return readWith(source, options, bodyReader())
}

function bodyReader (): Reader<Uint8Array> {
  let received = 0
  return {
    // Bytes already given out cannot be taken back: after the first one,
    // only a resumed request (Range) may go on, and that is not built yet.
    next: init => received === 0 ? init : undefined,
    async * read (response, context) {
      for await (const chunk of bodyChunks(response, context)) {
        received += chunk.byteLength
        yield chunk
      }
    }
  }
}
