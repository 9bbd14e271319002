import createError from '@fastify/error'

// Misuse of reply.streamSafe(): programmer errors, not client errors. They
// carry status 500, so toFault adopts them as an unexposed InternalError whose
// log line keeps the descriptive message and this code in its cause.

/** The source is not a Readable, an async iterable or a function returning one. */
export const FaultlineStreamSourceError = createError(
  'FST_FAULTLINE_STREAM_SOURCE',
  'reply.streamSafe(): %s',
  500,
  TypeError
)

/** A per-call option of reply.streamSafe() is invalid. */
export const FaultlineStreamOptionError = createError(
  'FST_FAULTLINE_STREAM_OPTION',
  'reply.streamSafe(): invalid option %s: %s',
  500,
  TypeError
)

/** A chunk the framing cannot write (an object in raw framing, a cyclic item in ndjson). */
export const FaultlineStreamChunkError = createError(
  'FST_FAULTLINE_STREAM_CHUNK',
  'reply.streamSafe(): %s',
  500,
  TypeError
)

/** The response went out before the stream's first chunk (an async handler that did not return the reply). */
export const FaultlineStreamAlreadySentError = createError(
  'FST_FAULTLINE_STREAM_ALREADY_SENT',
  'reply.streamSafe(): the response was already sent before the stream started; in an async handler, `return reply.streamSafe(...)` or `await` it',
  500
)
