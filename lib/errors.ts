// Our own misuse errors, all in one place (as Fastify's lib/errors.js): stable
// FST_-style codes, thrown at register, definition or call time, never sent
// to clients. Plain Error subclasses, so the isomorphic core (and the client)
// can throw them in a browser. They carry status 500: one that escapes into a
// route is adopted by toFault as an unexposed InternalError whose log line
// keeps the descriptive message and this code in its cause.

/** An error of ours: `code` is stable, `message` says what to do. */
export interface FaultlineError<C extends string = string> extends Error {
  readonly code: C
  readonly statusCode: 500
}

export interface FaultlineErrorConstructor<C extends string, A extends unknown[]> {
  /** The format's arguments, then optionally `{ cause }`. */
  new (...args: A | [...A, ErrorOptions]): FaultlineError<C>
  readonly prototype: FaultlineError<C>
  readonly code: C
}

function misuseError<C extends string, A extends unknown[]> (
  code: C, format: (...args: A) => string, Base: ErrorConstructor = Error
): FaultlineErrorConstructor<C, A> {
  const cls = class extends Base {
    static readonly code = code
    readonly code = code
    readonly statusCode = 500 as const
    constructor (...args: unknown[]) {
      const n = format.length
      super(format(...args.slice(0, n) as A), args.length > n ? args[n] as ErrorOptions : undefined)
    }
  }
  Object.defineProperty(cls.prototype, 'name', { value: 'FaultlineError', writable: true, configurable: true })
  return cls as unknown as FaultlineErrorConstructor<C, A>
}

// -- register time ------------------------------------------------------------

/** A plugin option is invalid: `(plugin, option, what is wrong)`. */
export const FaultlineInvalidOptionError = misuseError('FST_FAULTLINE_INVALID_OPTION',
  (plugin: string, option: string, problem: string) => `${plugin}: invalid option ${option}: ${problem}`, TypeError)

/** A companion plugin (@fastify/sse, @fastify/websocket) was registered by the app as well. */
export const FaultlinePeerRegisteredError = misuseError('FST_FAULTLINE_PEER_REGISTERED',
  (plugin: string, peer: string, ours: string, option: string) =>
    `${plugin}: ${peer} is already registered on this instance. Remove your own registration of it and pass its options to ${ours} instead (option \`${option}\`), so faultline can wrap its handlers and own its errorHandler and preClose.`)

/** An option needs an optional peer dependency that is not installed: `(plugin, option, package, install)`. */
export const FaultlineMissingPeerError = misuseError('FST_FAULTLINE_MISSING_PEER',
  (plugin: string, option: string, pkg: string, install: string) =>
    `${plugin}: option \`${option}\` needs the package '${pkg}', which is not installed. Install it: npm install ${install}`)

/** A second faultlineWebsocket on the same HTTP server. */
export const FaultlineWebsocketTwiceError = misuseError('FST_FAULTLINE_WEBSOCKET_TWICE',
  () => 'faultline-websocket: already registered on this HTTP server (in another encapsulation context). Register it once, at the root: each registration adds an upgrade listener, and two would both route every WebSocket request.')

// -- definition time (isomorphic) -----------------------------------------------

/** `defineFault` was given a bad definition. */
export const FaultlineInvalidFaultError = misuseError('FST_FAULTLINE_INVALID_FAULT',
  (problem: string) => `defineFault: ${problem}`, TypeError)

/** `defineFault` reused a code with another status. */
export const FaultlineDuplicateCodeError = misuseError('FST_FAULTLINE_DUPLICATE_CODE',
  (code: string, existing: number, status: number) =>
    `defineFault: code '${code}' is already defined with status ${existing}, cannot redefine it with status ${status}`)

// -- call time -----------------------------------------------------------------

/** reply.streamSafe(): the source is not a Readable, an async iterable or a function returning one. */
export const FaultlineStreamSourceError = misuseError('FST_FAULTLINE_STREAM_SOURCE',
  (problem: string) => `reply.streamSafe(): ${problem}`, TypeError)

/** reply.streamSafe(): a per-call option is invalid. */
export const FaultlineStreamOptionError = misuseError('FST_FAULTLINE_STREAM_OPTION',
  (option: string, problem: string) => `reply.streamSafe(): invalid option ${option}: ${problem}`, TypeError)

/** reply.streamSafe(): a chunk the framing cannot write (an object in raw framing, a cyclic item in ndjson). */
export const FaultlineStreamChunkError = misuseError('FST_FAULTLINE_STREAM_CHUNK',
  (problem: string) => `reply.streamSafe(): ${problem}`, TypeError)

/** reply.streamSafe(): a resumable source yielded more or fewer bytes than its declared `length`. */
export const FaultlineStreamLengthError = misuseError('FST_FAULTLINE_STREAM_LENGTH',
  (problem: string) => `reply.streamSafe(): ${problem}`)

/** reply.streamSafe(): the response went out before the stream's first chunk. */
export const FaultlineStreamAlreadySentError = misuseError('FST_FAULTLINE_STREAM_ALREADY_SENT',
  () => 'reply.streamSafe(): the response was already sent before the stream started; in an async handler, `return reply.streamSafe(...)` or `await` it')

/** fastify.faultline.background.define(): the name, handler or options are invalid, or it came too late. */
export const FaultlineInvalidTaskDefinitionError = misuseError('FST_FAULTLINE_INVALID_TASK_DEFINITION',
  (problem: string) => `background.define: ${problem}`, TypeError)

/** reply.background(): the task or its options are invalid. */
export const FaultlineInvalidTaskError = misuseError('FST_FAULTLINE_INVALID_TASK',
  (problem: string) => `reply.background: ${problem}`, TypeError)
