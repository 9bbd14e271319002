import { constants, type ServerHttp2Stream } from 'node:http2'
import { h2Stream, type RawResponse } from './h2-response.js'

/** How long a truncated (or failed and ended) response may wait, without progress, for a client that stopped reading. */
export const TRUNCATE_GRACE_MS = 3000

/**
 * Ends a response whose headers already went out so that the client sees an
 * incomplete body, never a clean end: every byte written so far is flushed,
 * then HTTP/1.1 closes the connection without the terminating chunk and
 * HTTP/2 resets the stream (`RST_STREAM` with `INTERNAL_ERROR`: HTTP/2 has
 * no chunked encoding, so ending the stream would look like success).
 * Destroying at once would drop bytes still queued; a client that stopped
 * reading is cut off after `graceMs` (HTTP/1.1: once the socket idles that
 * long, and Node may extend it once while a write is still queued).
 */
export function truncateResponse (res: RawResponse, graceMs = TRUNCATE_GRACE_MS): void {
  const stream = h2Stream(res)
  if (stream !== undefined) {
    resetStream(stream, graceMs)
    return
  }
  const socket = res.socket
  if (socket === null || socket.destroyed) {
    res.destroy()
    return
  }
  socket.setTimeout(graceMs, () => socket.destroy())
  socket.once('finish', () => socket.destroy())
  socket.end()
}

/** How often a truncated HTTP/2 response checks whether its queued bytes have reached the socket. */
const FLUSH_CHECK_MS = 5

/**
 * HTTP/2: resets the stream once every byte already written has reached
 * the socket (nothing left in the stream's writable queue: Node runs a
 * write's callback only after the session wrote its DATA to the socket), or
 * after `graceMs`, whichever comes first. Never `end()`: that would send
 * `END_STREAM`, a clean end. Never an empty write as the signal: its
 * callback runs once nghttp2 has framed the bytes before it, before they are
 * written, and when Node batches it with earlier string writes (one writev)
 * it frees their bytes then, so the client got freed memory (Node 20).
 */
function resetStream (stream: ServerHttp2Stream, graceMs: number): void {
  if (stream.closed) return
  if (stream.writableLength === 0 || stream.writableEnded) {
    stream.close(constants.NGHTTP2_INTERNAL_ERROR)
    return
  }
  const reset = (): void => {
    clearTimeout(timer)
    clearInterval(check)
    stream.close(constants.NGHTTP2_INTERNAL_ERROR)
  }
  const timer = setTimeout(reset, graceMs)
  // No event says "written": a write's callback only lowers writableLength, so it is polled.
  const check = setInterval(() => { if (stream.writableLength === 0 || stream.closed) reset() }, FLUSH_CHECK_MS)
  // The stream keeps its session open; the timers need not hold the process.
  timer.unref()
  check.unref()
}

/**
 * A failed response whose last bytes (an ndjson error record, an SSE error
 * event) were queued with `end()`: a client that stopped reading would keep
 * it open for good. While the bytes move (the queue under the response
 * changes size: it shrinks as the client reads, or grows as a compressor
 * refills it) it waits; after `graceMs` without a change it cuts the
 * response as `truncateResponse` would (HTTP/1.1: the connection is
 * destroyed; HTTP/2: `RST_STREAM` with `INTERNAL_ERROR`), so the client sees
 * an incomplete body. Call it right after `end()`.
 */
export function cutIfStuck (res: RawResponse, graceMs = TRUNCATE_GRACE_MS): void {
  const stream = h2Stream(res)
  const out = stream ?? res.socket
  if (res.writableFinished || out === null || out.destroyed) return
  let queued = out.writableLength
  const check = (): void => {
    const now = out.writableLength
    if (now !== queued) {
      queued = now
      timer.refresh()
      return
    }
    done()
    if (stream !== undefined) stream.close(constants.NGHTTP2_INTERNAL_ERROR)
    else res.destroy()
  }
  const timer = setTimeout(check, graceMs)
  // The response keeps its socket open; the timer need not hold the process.
  timer.unref()
  const done = (): void => {
    clearTimeout(timer)
    res.off('finish', done)
    res.off('close', done)
  }
  res.once('finish', done)
  res.once('close', done)
}
