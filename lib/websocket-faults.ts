// Faults the WebSocket transport raises itself (the peer's behaviour, not a thrown value).
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
