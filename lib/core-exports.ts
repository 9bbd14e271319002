// The names both entry points export, from the one isomorphic core: the
// taxonomy and the wire -> fault functions. `index.ts` (fastify-faultline)
// and `client/index.ts` (fastify-faultline/client) re-export this module, so a
// fault class added here reaches both, as the same class. Server-only names
// (toProblem, closeCodeFor, ...) stay in index.ts; the client's own readers
// in client/index.ts.
export {
  Fault, defineFault, isFault,
  BadRequestError, UnauthorizedError, ForbiddenError, NotFoundError, MethodNotAllowedError,
  NotAcceptableError, RequestTimeoutError, ConflictError, GoneError, PayloadTooLargeError,
  UnsupportedMediaTypeError, RangeNotSatisfiableError, ValidationError, TooManyRequestsError, ClientClosedError,
  InternalError, NotImplementedError, BadGatewayError, ServiceUnavailableError, GatewayTimeoutError,
  StreamTruncatedError, ConnectionLostError, ServerShutdownError
} from './fault.js'
export type {
  FaultDetails, FaultOptions, FaultClass, FaultClassInfo, DefineFaultOptions, ValidationIssue, ValidationDetails
} from './fault.js'
export { faultFromProblem, parseRetryAfter } from './problem.js'
export type { ProblemDetails, ProblemInit } from './problem.js'
export { faultFromClose } from './close-codes.js'
