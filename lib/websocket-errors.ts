import createError from '@fastify/error'
import { RequestTimeoutError, ClientClosedError, type Fault } from './fault.js'

/** The peer went away without a close frame (network drop, terminate). */
export function peerGone (): Fault {
  return new ClientClosedError('The WebSocket peer went away without a close frame')
}

/** The peer missed too many pings. */
export function peerUnresponsive (missed: number): Fault {
  return new ClientClosedError(`The WebSocket peer did not answer ${missed} ping(s); connection terminated`)
}

/** No message from the peer for `ms` milliseconds. */
export function peerIdle (ms: number): Fault {
  return new RequestTimeoutError(`No message from the WebSocket peer for ${ms} ms`)
}

/** Thrown at register time: a second faultlineWebsocket on the same HTTP server. */
export const FaultlineWebsocketTwiceError = createError(
  'FST_FAULTLINE_WEBSOCKET_TWICE',
  'faultline-websocket: already registered on this HTTP server (in another encapsulation context). Register it once, at the root: each registration adds an upgrade listener, and two would both route every WebSocket request.',
  500
)
