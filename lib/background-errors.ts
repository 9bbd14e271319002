import createError from '@fastify/error'

// Misuse of `reply.background()`: thrown at the call, in the route, so the
// programmer sees it at once (it becomes a 500 through the error handler).
export const FaultlineInvalidTaskError = createError(
  'FST_FAULTLINE_INVALID_TASK',
  'reply.background: %s',
  500,
  TypeError
)
