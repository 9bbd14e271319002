// Response -> fault, and the faults a client concludes from the wire itself
// (no response, a body cut short, bytes that are not what was promised).
import { BadGatewayError, ConnectionLostError, StreamTruncatedError, faultForStatus, type Fault } from '../lib/fault.js'
import { faultFromProblem } from '../lib/problem.js'

/** The response header that carries the server's request id, unless configured (faultlineHttp's `requestIdHeader`). */
export const DEFAULT_REQUEST_ID_HEADER = 'x-request-id'

// A problem body is small; an error page larger than this is not read to its end.
const MAX_ERROR_BODY = 1024 * 1024

/**
 * The fault a response reports, or `undefined` when `response.ok`. Reads the
 * problem body (any other JSON or text body still gives the built-in class
 * for the status) and `Retry-After` (seconds or an HTTP-date). Never throws.
 */
export async function faultFromResponse (response: Response): Promise<Fault | undefined> {
  try {
    if (response.ok) return undefined
    const status = response.status
    const retryAfter = response.headers.get('retry-after')
    return faultFromProblem(parseJson(await readText(response)), { status, retryAfter })
  } catch {
    return faultForStatus(500, 'The response could not be read')
  }
}

function parseJson (text: string | undefined): unknown {
  if (text === undefined || text === '') return undefined
  try {
    return JSON.parse(text)
  } catch {
    return undefined // HTML from a proxy, plain text: the status alone decides
  }
}

/** At most MAX_ERROR_BODY characters of the body; undefined when there is none or it is longer. */
async function readText (response: Response): Promise<string | undefined> {
  const body = response.body
  if (body === null) return undefined
  const reader = body.getReader()
  const decoder = new TextDecoder()
  let text = ''
  try {
    while (text.length <= MAX_ERROR_BODY) {
      const { done, value } = await reader.read()
      text += done ? decoder.decode() : decoder.decode(value, { stream: true })
      if (done) break
    }
  } catch {
    // The body was cut: what arrived may still be a whole problem.
  }
  reader.cancel().catch(() => {})
  return text === '' || text.length > MAX_ERROR_BODY ? undefined : text
}

/** The server's request id from a response header, if it sent one. */
export function requestIdOf (response: Response | undefined, header: string | undefined): string | undefined {
  if (response === undefined || header === undefined) return undefined
  try {
    return response.headers.get(header) ?? undefined
  } catch {
    return undefined // a header name the platform refuses, or a hostile Headers: no id, never a throw
  }
}

/** No response at all: the request failed before one arrived. Retryable. */
export function connectionLost (cause: unknown): Fault {
  const reason = cause instanceof Error && cause.message !== '' ? `: ${cause.message}` : ''
  return new ConnectionLostError(`No response${reason}`, { cause })
}

/** A body that ended early, with the request id to quote to support (`details.requestId`). Retryable. */
export function truncated (message: string, requestId: string | undefined, cause?: unknown): Fault {
  return new StreamTruncatedError(message, { cause, details: requestId === undefined ? undefined : { requestId }, exposeDetails: true })
}

/** Bytes that are not the framing the reader expects. Not retryable: the same server says the same thing. */
export function malformed (message: string, cause?: unknown): Fault {
  return new BadGatewayError(message, { cause, retryable: false, expose: true })
}
