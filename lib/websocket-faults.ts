// Faults the WebSocket transport raises itself (the peer's behaviour, not a thrown value).
import { RequestTimeoutError, ClientClosedError, TooManyRequestsError, type Fault } from './fault.js'
import { BACKPRESSURE_CLOSE_CODE } from './close-codes.js'

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

/** The peer sends faulting messages but does not read the error frames: `buffered` bytes queued, over `limit`. */
export function peerNotReading (buffered: number, limit: number): Fault {
  return new TooManyRequestsError(`The WebSocket peer does not read its error frames: ${buffered} bytes queued, over the limit of ${limit} (maxBufferedAmount); closed with ${BACKPRESSURE_CLOSE_CODE}`)
}
