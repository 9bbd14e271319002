// `fastify-faultline/client`: every wire signal the plugins emit, back into
// the same fault classes. Runs unbundled in browsers and in Node >= 20: no
// Node built-in, no Fastify. The taxonomy is re-exported from the very
// module the server uses, so the classes are the root export's own.
export {
  Fault, defineFault, isFault,
  BadRequestError, UnauthorizedError, ForbiddenError, NotFoundError, MethodNotAllowedError,
  NotAcceptableError, RequestTimeoutError, ConflictError, GoneError, PayloadTooLargeError,
  UnsupportedMediaTypeError, RangeNotSatisfiableError, ValidationError, TooManyRequestsError, ClientClosedError,
  InternalError, NotImplementedError, BadGatewayError, ServiceUnavailableError, GatewayTimeoutError,
  StreamTruncatedError, ConnectionLostError, ServerShutdownError
} from '../lib/fault.js'
export type {
  FaultDetails, FaultOptions, FaultClass, FaultClassInfo, DefineFaultOptions, ValidationIssue, ValidationDetails
} from '../lib/fault.js'
export { faultFromProblem, parseRetryAfter } from '../lib/problem.js'
export type { ProblemDetails, ProblemInit } from '../lib/problem.js'
export { faultFromClose } from '../lib/close-codes.js'
export { faultFromResponse } from './response.js'
export { shouldRetry, retryDelay } from './retry.js'
export type { RetryPolicy, RetryOption } from './retry.js'
export { readBody } from './read-body.js'
export { readNdjson } from './read-ndjson.js'
export { readEvents } from './read-events.js'
export type { SseMessage, ReadEventsOptions } from './read-events.js'
export type { ReadSource, ReadOptions } from './source.js'
export { connectSocket } from './socket.js'
export type { SocketOptions, FaultlineSocket, WebSocketLike, WebSocketConstructor } from './socket.js'
