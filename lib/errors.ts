import createError from '@fastify/error'

// Our own misuse errors: stable FST_-style codes, thrown at register or
// definition time, never sent to clients.

export const FaultlineInvalidOptionError = createError<'FST_FAULTLINE_INVALID_OPTION', 500, [string, string, string]>(
  'FST_FAULTLINE_INVALID_OPTION',
  '%s: invalid option %s: %s',
  500,
  TypeError
)

export const FaultlineInvalidFaultError = createError<'FST_FAULTLINE_INVALID_FAULT', 500, [string]>(
  'FST_FAULTLINE_INVALID_FAULT',
  'defineFault: %s',
  500,
  TypeError
)

export const FaultlineDuplicateCodeError = createError<'FST_FAULTLINE_DUPLICATE_CODE', 500, [string, number, number]>(
  'FST_FAULTLINE_DUPLICATE_CODE',
  "defineFault: code '%s' is already defined with status %s, cannot redefine it with status %s",
  500
)

export const FaultlinePeerRegisteredError = createError<'FST_FAULTLINE_PEER_REGISTERED', 500, [string, string, string, string]>(
  'FST_FAULTLINE_PEER_REGISTERED',
  '%s: %s is already registered on this instance. Remove your own registration of it and pass its options to %s instead (option `%s`), so faultline can wrap its handlers and own its errorHandler and preClose.',
  500
)
