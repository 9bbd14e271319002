import type { ServerResponse } from 'node:http'
import { constants, type Http2ServerResponse, type ServerHttp2Stream } from 'node:http2'

/**
 * What differs between a response over HTTP/1.1 and one over HTTP/2 (Node's
 * compatibility API, as Fastify's `http2: true` servers give it), in one place.
 */

/** A response of either protocol, as Fastify's `reply.raw`. */
export type RawResponse = ServerResponse | Http2ServerResponse

/** The HTTP/2 stream under `res`, or undefined over HTTP/1.1 (only an Http2ServerResponse has a `stream`: public, cheap to read). */
export function h2Stream (res: RawResponse): ServerHttp2Stream | undefined {
  return (res as Partial<Http2ServerResponse>).stream
}

/** Whether the HTTP/2 response `res` on `stream` was sent whole: ended, flushed, and closed without a reset. */
export function h2Completed (res: RawResponse, stream: ServerHttp2Stream): boolean {
  // A stream the client reset is "finished" too (Node ends its writable side), but with an error code.
  return res.writableEnded && stream.writableFinished && stream.rstCode === constants.NGHTTP2_NO_ERROR
}

/** Header fields HTTP/2 forbids (RFC 9113 §8.2.2): Node drops `connection` with a warning and refuses the others. */
export const CONNECTION_SPECIFIC: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade'])

/**
 * Makes an HTTP/2 response ignore connection-specific header fields set on
 * it from now on (`setHeader`, as @fastify/sse sets `Connection: keep-alive`),
 * instead of warning or failing.
 */
export function dropConnectionHeaders (res: RawResponse): void {
  const h2 = res as Http2ServerResponse
  const setHeader = h2.setHeader
  h2.setHeader = function setHeaderOverHttp2 (this: Http2ServerResponse, name: string, value: number | string | readonly string[]) {
    if (typeof name === 'string' && CONNECTION_SPECIFIC.has(name.toLowerCase())) return this
    return setHeader.call(this, name, value)
  }
}
