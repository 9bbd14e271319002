import type { Socket } from 'node:net'
import type { FastifyInstance } from 'fastify'
import type { Fault } from '../lib/fault.js'
import { statusTitle } from '../lib/status-titles.js'
import { toClientErrorFault } from '../lib/normalize.js'
import { renderProblem } from '../lib/problem-json.js'
import { responsePhase } from '../lib/report.js'

/** What Fastify's `clientErrorHandler` is given: a Node `'clientError'` error. */
export interface FaultlineClientError extends Error {
  code?: string
}

/** The response Node may have in flight on a socket (`ServerResponse`), as its own `'clientError'` fallback reads it (`_httpMessage`, private to Node: test/dependency-internals.test.ts checks it). */
interface InFlight { headersSent?: unknown }

/**
 * For Fastify's `clientErrorHandler` option: what the HTTP parser refuses
 * before there is a request (a header section over `maxHeaderSize`, a
 * malformed request line, chunk extensions over their limit,
 * `requestTimeout` elapsed) never reaches an error handler. With this, it is
 * answered as problem+json (431, 400, 413, 408), `Connection: close`, and
 * reported once at debug (the peer's doing, and often a scanner's: a line
 * per occurrence at info would flood the log). When a response is already
 * on its way on that connection (a pipelined request after it could not be
 * read), nothing is written into it: the connection is closed, so its
 * client sees truncation rather than a problem spliced into a body.
 *
 * ```ts
 * const app = Fastify({ clientErrorHandler: faultlineClientErrors })
 * await app.register(faultlineHttp)
 * ```
 */
export function faultlineClientErrors (this: unknown, error: FaultlineClientError, socket: Socket): void {
  // Fastify binds the handler to the root instance; faultlineHttp decorates it when registered there.
  const faultline = typeof this === 'object' && this !== null ? (this as Partial<FastifyInstance>).faultline : undefined
  const inFlight = (socket as Socket & { _httpMessage?: InFlight | null })._httpMessage
  const headersSent = inFlight !== undefined && inFlight !== null && inFlight.headersSent === true
  let fault: Fault
  try {
    fault = faultline === undefined
      ? toClientErrorFault(error)
      : faultline.report(toClientErrorFault(error), { transport: 'http', phase: responsePhase(headersSent), level: 'debug', clientError: true })
  } catch {
    // The report path failed (its logger threw): the peer still gets its answer.
    fault = toClientErrorFault(error)
  }
  if (socket.writable && !headersSent && fault.status !== 499) {
    const body = renderProblem(fault)
    socket.write(`HTTP/1.1 ${fault.status} ${statusTitle(fault.status)}\r\ncontent-type: application/problem+json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`)
  }
  socket.destroy()
}
