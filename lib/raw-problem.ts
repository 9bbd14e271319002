// The last resort for a problem that could not go out the normal way (an
// onSend hook failed while it was being sent): the response is written on the
// raw Node response, with no hook, no serializer and no error handler in the
// way, so nothing can fail it again or answer in its place.
import type { OutgoingHttpHeaders } from 'node:http'
import { CONNECTION_SPECIFIC, type RawResponse } from './h2-response.js'
import { invalidHeaderNames } from './headers.js'
import { truncateResponse } from './truncate.js'

/**
 * Headers that describe the body that failed (its type, length, encoding,
 * range, validators) or the fault it was meant to carry (`retry-after`): the
 * body written here is another one. `content-security-policy` and other
 * headers of the response as a whole stay.
 */
const OF_THE_FAILED_BODY = new Set([
  'content-type', 'content-length', 'content-encoding', 'content-range', 'content-language',
  'content-location', 'content-disposition', 'content-md5', 'etag', 'last-modified',
  'accept-ranges', 'transfer-encoding', 'trailer', 'retry-after'
])

/**
 * The headers the response keeps: those the application set (CORS, cookies,
 * security headers), minus the ones of the failed body, the ones Node would
 * refuse, and over HTTP/2 the connection-specific ones; then `own` on top.
 */
export function fallbackHeaders (current: Readonly<Record<string, unknown>>, own: Readonly<Record<string, string>>, http2: boolean): OutgoingHttpHeaders {
  const invalid = invalidHeaderNames(current)
  const out: OutgoingHttpHeaders = {}
  for (const name in current) {
    if (OF_THE_FAILED_BODY.has(name) || invalid.includes(name) || (http2 && CONNECTION_SPECIFIC.has(name))) continue
    out[name] = current[name] as OutgoingHttpHeaders[string]
  }
  return Object.assign(out, own)
}

/**
 * Writes `body` as the whole response on `res`: every header set on `res`
 * so far is replaced by `headers` (see `fallbackHeaders`). A HEAD request
 * gets the headers only. Never throws: a response that cannot be written is
 * cut, so the client sees a failure rather than a hang.
 */
export function writeRawResponse (res: RawResponse, status: number, headers: OutgoingHttpHeaders, body: string, head: boolean): void {
  try {
    for (const name of res.getHeaderNames()) res.removeHeader(name)
    res.writeHead(status, headers)
    if (head) res.end()
    else res.end(body)
  } catch {
    // Nothing written can be trusted: cut the response (HTTP/2: reset the stream).
    truncateResponse(res)
  }
}
