// The one place faultline finds a private symbol Fastify keeps on a reply.
// Fastify creates these symbols in its lib/symbols.js and exports none of
// them; each is found by its description among the reply's own symbols.
// Pure: no Fastify import; works on the reply it is given.
//
// The rule for "not found": `undefined`, never a throw. Each caller keeps its
// own documented fallback (`headersToWrite` reads `reply.getHeaders()`,
// `handFailuresTo` returns false). test/dependency-internals.test.ts checks
// against the installed Fastify that every description below still names a
// symbol where faultline expects it.

/** `kReplyHeaders`: the headers set with `reply.header()`, kept until `writeHead` (set in the Reply constructor). */
export const REPLY_HEADERS = 'fastify.reply.headers'

/** `kReplyNextErrorHandler`: the handler Fastify's error chain runs next for this reply (set before each handler runs). */
export const REPLY_NEXT_ERROR_HANDLER = 'fastify.reply.nextErrorHandler'

/** The descriptions of the private reply symbols faultline reads. */
export type ReplySymbolDescription = typeof REPLY_HEADERS | typeof REPLY_NEXT_ERROR_HANDLER

/** Every private reply symbol faultline depends on, by description. */
export const REPLY_SYMBOLS: readonly ReplySymbolDescription[] = [REPLY_HEADERS, REPLY_NEXT_ERROR_HANDLER]

// One cache: the symbol last found for each description. A reply of another
// copy of Fastify (its own symbols) misses it and is searched again.
const found = new Map<ReplySymbolDescription, symbol>()

/**
 * The private symbol with `description` that `reply` holds as an own
 * property, or undefined when it holds none (a Fastify that renamed or
 * dropped it, a reply Fastify has not set it on yet, not a reply at all).
 * Found once, then remembered. Never throws.
 */
export function replySymbol (reply: object, description: ReplySymbolDescription): symbol | undefined {
  const known = found.get(description)
  if (known !== undefined && Object.hasOwn(reply, known)) return known
  for (const key of Object.getOwnPropertySymbols(reply)) {
    if (key.description === description) {
      found.set(description, key)
      return key
    }
  }
  return undefined
}

/**
 * Whether `reply` holds the private symbol with `description` as an own
 * property: `replySymbol(reply, description) !== undefined`, without a
 * search once the symbol is known (a reply that does not hold it is the
 * common answer here). The one difference: once it is known, a reply of
 * another copy of Fastify answers false.
 */
export function holdsReplySymbol (reply: object, description: ReplySymbolDescription): boolean {
  const known = found.get(description)
  if (known !== undefined) return Object.hasOwn(reply, known)
  return replySymbol(reply, description) !== undefined
}
