// Fastify's error-handler chain, as one reply walks it. When an error handler
// sends and an onSend hook fails, Fastify hands the hook's error to the *next*
// handler of the chain (the parent scope's, else its default handler, which
// answers plain JSON with the error's message), never to the one that was
// sending. There is no public way to name that next handler; Fastify keeps it
// on the reply, under a symbol it sets before calling each handler, found by
// its description in lib/fastify-private.ts. If a Fastify version renames it,
// `handFailuresTo` does nothing and the chain runs as Fastify built it
// (test/dependency-internals.test.ts and the tests of the fallback then fail,
// so an upgrade cannot lose it silently).

import { REPLY_NEXT_ERROR_HANDLER, replySymbol } from './fastify-private.js'

/** A handler in Fastify's chain: an object with `func`, whose prototype is the next one. */
export interface ChainedErrorHandler {
  func: (error: unknown, request: unknown, reply: any) => void
}

// What comes after a handler made by `chainEnd`: nothing (no `func`), so that
// if it ever threw, Fastify would fall back to its last resort rather than
// run a handler that already failed once.
const END = Object.freeze(Object.create(null) as object)

/** A handler object for Fastify's chain that is the last one faultline lets run. */
export function chainEnd (func: ChainedErrorHandler['func']): ChainedErrorHandler {
  const handler = Object.create(END) as ChainedErrorHandler
  handler.func = func
  return handler
}

/**
 * From inside an error handler Fastify called: makes `handler` the one that
 * receives whatever fails next on `reply` (an onSend hook failing while the
 * handler's answer is sent). Returns false when Fastify's chain is not in use
 * (the handler was called directly) or not found.
 */
export function handFailuresTo (reply: object, handler: ChainedErrorHandler): boolean {
  // Fastify sets the symbol on the reply before it calls a handler of the chain.
  const key = replySymbol(reply, REPLY_NEXT_ERROR_HANDLER)
  if (key === undefined) return false
  ;(reply as Record<symbol, unknown>)[key] = handler
  return true
}
