import fp from 'fastify-plugin'
import type { Transform, TransformCallback } from 'node:stream'
import type { SSEPluginOptions, SSEReplyInterface } from '@fastify/sse'
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest, RouteHandlerMethod } from 'fastify'
import { NotAcceptableError, type Fault } from '../lib/fault.js'
import { DEFAULT_TERMINAL_ID_PREFIX, isTerminalEventId, sseProblemEvent, sseMessage, sseSerializer } from '../lib/sse-event.js'
import { FaultlinePeerRegisteredError } from '../lib/errors.js'
import { PluginOptions } from '../lib/options.js'
import { appendHook } from '../lib/hooks.js'
import { SseSession, SseSessions, type SseChannel, type SseFaultOptions } from '../lib/sse-session.js'
import { dropConnectionHeaders } from '../lib/h2-response.js'
import { cutIfStuck } from '../lib/truncate.js'
import type { Faultline } from './http.js'

export type { SseFaultOptions } from '../lib/sse-session.js'

export interface FaultlineSseOptions {
  /** Options for `@fastify/sse`, which this plugin registers itself (e.g. `{ heartbeatInterval }`). */
  sse?: SSEPluginOptions
  /** Name of the error event. Default: `error`. */
  errorEvent?: string
  /** Prefix of the `id:` that marks a terminal error event; a reconnect carrying it is answered 204. Default: `faultline-terminal:`. */
  terminalIdPrefix?: string
  /** `retry:` (ms) sent with a retryable fault that has no `retryAfter`. Default: 3000. */
  defaultRetry?: number
  /** On `fastify.close()`, how long (ms) to wait for open streams to flush their last event before destroying them. Default: 5000. */
  closeTimeout?: number
}

/** `fastify.faultline.sse`. */
export interface FaultlineSse {
  /** SSE streams open right now (for tests and leak checks). */
  readonly open: number
}

declare module '@fastify/sse' {
  interface SSEReplyInterface {
    /**
     * Reports `err` (transport `sse`) and writes an error event. By default
     * the stream goes on (a non-fatal error); with `{ close: true }` the
     * stream ends as after a thrown fault. Returns the fault.
     */
    fault: (err: unknown, options?: SseFaultOptions) => Fault
  }
}

declare module './http.js' {
  interface Faultline {
    /** Set by `faultlineSse`. */
    sse: FaultlineSse
  }
}

const PLUGIN = 'faultline-sse'
/** The companion plugin this one registers. */
const COMPANION = '@fastify/sse'
const VISIBLE_ASCII = /^[\x21-\x7e]{1,64}$/
const kGate = Symbol('faultline.sse.gate')
/** The session of a `reply.sse`, for the methods its prototype shares. */
const kSession = Symbol('faultline.sse.session')

/** `reply.sse` as this plugin sees it: @fastify/sse's context, its serializer, and its session. */
type Channel = SSEReplyInterface & { serializer: (data: unknown) => string, [kSession]: SseSession<FastifyReply> }

/** The context's own (@fastify/sse's) methods: the prototype above the one this plugin puts between. */
function channelProto (channel: SseChannel): SSEReplyInterface {
  return Object.getPrototypeOf(Object.getPrototypeOf(channel)) as SSEReplyInterface
}

/** @fastify/sse's context while its `close()` runs: its cleanup then is no sign that the response closed. */
let closing: object | undefined
/** The method @fastify/sse's context runs when its response closes or fails, and when it is closed. */
interface Cleanup { cleanup: () => void }

/** A non-enumerable method, as a class would have it. */
function method (value: (...args: any[]) => unknown): PropertyDescriptor {
  return { value, writable: true, configurable: true }
}

// Each serializer (the plugin's, or a route's) wrapped once, not per stream.
const safeSerializers = new WeakMap<(data: unknown) => string, (data: unknown) => string>()
function safeSerializer (serialize: (data: unknown) => string): (data: unknown) => string {
  let safe = safeSerializers.get(serialize)
  if (safe === undefined) safeSerializers.set(serialize, safe = sseSerializer(serialize))
  return safe
}

// The open streams of every registration per `fastify.faultline` object, so
// `faultline.sse.open` counts those of every scope that registers this plugin.
const registries = new WeakMap<Faultline, Array<SseSessions<FastifyReply>>>()

function validate (opts: FaultlineSseOptions): { errorEvent: string, terminalIdPrefix: string, defaultRetry: number, closeTimeout: number } {
  const options = new PluginOptions(PLUGIN, opts, ['sse', 'errorEvent', 'terminalIdPrefix', 'defaultRetry', 'closeTimeout'])
  options.object('sse', `an object of ${COMPANION} options, e.g. { heartbeatInterval: 15000 }`)
  return {
    errorEvent: options.string('errorEvent', VISIBLE_ASCII, 'an event name of 1-64 visible ASCII characters (no spaces or line breaks), e.g. "error"') ?? 'error',
    terminalIdPrefix: options.string('terminalIdPrefix', VISIBLE_ASCII, '1-64 visible ASCII characters (no spaces or line breaks), e.g. "faultline-terminal:"') ?? DEFAULT_TERMINAL_ID_PREFIX,
    defaultRetry: options.ms('defaultRetry', 0, 3000),
    closeTimeout: options.ms('closeTimeout', 1, 5000)
  }
}

/** A route @fastify/sse gates with a 406 for clients that refuse text/event-stream. */
function isOnlyRoute (sse: unknown): boolean {
  return sse === 'only' || (typeof sse === 'object' && sse !== null && (sse as { kind?: unknown }).kind === 'only')
}

async function faultlineSse_ (fastify: FastifyInstance, opts: FaultlineSseOptions): Promise<void> {
  const settings = validate(opts)
  if (fastify.hasPlugin(COMPANION)) throw new FaultlinePeerRegisteredError(PLUGIN, COMPANION, 'faultlineSse', 'sse')
  const faultline = fastify.faultline
  let registered = registries.get(faultline)
  if (registered === undefined) {
    const all: Array<SseSessions<FastifyReply>> = registered = []
    registries.set(faultline, all)
    faultline.sse = {
      get open () {
        let open = 0
        for (const sessions of all) open += sessions.open.size
        return open
      }
    }
  }

  // One host for every stream of this registration: each call names its reply.
  const sessions = new SseSessions<FastifyReply>({
    send: (channel, source) => channelProto(channel).send.call(channel as SSEReplyInterface, source as Parameters<SSEReplyInterface['send']>[0]),
    report: (reply, err, phase, extra) => faultline.report(err, { ...extra, transport: 'sse', phase, request: reply.request }),
    // Fastify's one error path: onError hooks (background tasks of a failed
    // route are skipped), then the central handler renders the problem; the
    // fault is already reported, so it is not logged twice.
    failBefore: (reply, fault) => { if (!reply.sent) reply.send(fault) },
    errorEvent: (reply, fault, final) => sseProblemEvent(fault, faultline.problemJson(fault, reply.request), {
      event: settings.errorEvent,
      final,
      terminalIdPrefix: settings.terminalIdPrefix,
      defaultRetry: settings.defaultRetry
    }),
    message: source => sseMessage(source, settings.terminalIdPrefix),
    cutIfStuck: reply => { cutIfStuck(reply.raw) }
  })
  registered.push(sessions)

  /**
   * `reply.sse` with faultline's `send`, `fault` and `stream`, and a word to
   * the session when the response closes: a prototype between
   * @fastify/sse's context and its class, made once, so a stream costs no
   * closure, listener or own property for them (each finds its session
   * through kSession).
   */
  const guardedProtos = new WeakMap<SSEReplyInterface, SSEReplyInterface>()
  function guarded (base: SSEReplyInterface): SSEReplyInterface {
    let proto = guardedProtos.get(base)
    if (proto === undefined) guardedProtos.set(base, proto = guard(base))
    return proto
  }

  function guard (base: SSEReplyInterface): SSEReplyInterface {
    const { stream, close } = base
    const cleanup = (base as unknown as Cleanup).cleanup
    return Object.create(base, {
      // @fastify/sse's context listens to its response: on `close` and
      // `error` (and when a write fails) it cleans up, as it does when it is
      // closed. The first ones are the session's cue that the response
      // closed: a second `close` listener of our own would cost each stream
      // an array of listeners.
      cleanup: method(function faultlineSseCleanup (this: Channel) {
        const byClose = closing === this
        cleanup.call(this)
        if (!byClose) this[kSession].closed()
      }),
      close: method(function faultlineSseClose (this: Channel) {
        const outer = closing
        closing = this
        try {
          close.call(this)
        } finally {
          closing = outer
        }
      }),
      send: method(function send (this: Channel, source: unknown) { return this[kSession].send(source) }),
      fault: method(function fault (this: Channel, err: unknown, options?: SseFaultOptions) { return this[kSession].fault(err, options) }),
      // @fastify/sse splits data on LF only and writes `id`, `event` and
      // `retry` raw: `send()` goes through the session, which checks each
      // message; the Transform of `reply.sse.stream()` gets the same treatment.
      stream: method(function faultlineSseStream (this: Channel) {
        const transform = stream.call(this) as Transform
        // @fastify/sse's Transform formats each chunk in `_transform` (its own
        // property, set from the constructor's `transform` option). This, the
        // context's `serializer`, its `cleanup()` and the 406 of refused 'only'
        // routes are internals of @fastify/sse: test/dependency-internals.test.ts
        // checks them.
        const format = transform._transform
        transform._transform = function (chunk: unknown, encoding: BufferEncoding, callback: TransformCallback) {
          let safe: unknown
          try {
            safe = sseMessage(chunk, settings.terminalIdPrefix)
          } catch (err) {
            callback(err as Error)
            return
          }
          format.call(this, safe, encoding, callback)
        }
        return transform
      })
    }) as SSEReplyInterface
  }

  /** A session for one SSE response: reports through faultline, fails before the first event through reply.send. */
  function open (reply: FastifyReply, sse: SSEReplyInterface): SseSession<FastifyReply> {
    const session = new SseSession(sessions, reply)
    const channel = sse as Channel
    // The serializer writes the data of object messages, on every path: its
    // text gets every line break as LF, each a `data:` line of its own.
    channel.serializer = safeSerializer(channel.serializer)
    // In this order: a property added after a prototype change gives each
    // context a map of its own (V8); before it, every context shares one.
    channel[kSession] = session
    Object.setPrototypeOf(channel, guarded(Object.getPrototypeOf(channel) as SSEReplyInterface))
    return session
  }

  fastify.addHook('onRoute', routeOptions => {
    if (routeOptions.sse === undefined || routeOptions.sse === false) return
    const handler = routeOptions.handler
    routeOptions.handler = async function faultlineSseHandler (this: FastifyInstance, request: FastifyRequest, reply: FastifyReply) {
      const sse = (reply as { sse?: SSEReplyInterface }).sse
      // Not an SSE request (a 'dual' route's other representation): plain HTTP.
      if (sse === undefined) return handler.call(this, request, reply)
      if (isTerminalEventId(sse.lastEventId, settings.terminalIdPrefix)) {
        // The browser's reconnect after a terminal fault: 204 is the spec's "stop reconnecting".
        reply.code(204).send()
        return reply
      }
      // @fastify/sse sets `Connection: keep-alive`, which HTTP/2 forbids (Node warns and drops it).
      if (request.raw.httpVersionMajor === 2) dropConnectionHeaders(reply.raw)
      faultline.tagRequestId(reply)
      const session = open(reply, sse)
      // Once a fault (or the client) ended the stream, the reply is handled:
      // returning it keeps Fastify from sending whatever the handler returns.
      try {
        const result = await handler.call(this, request, reply)
        return session.done ? reply : result
      } catch (err) {
        session.handlerFailed(err)
        return reply
      }
    } as RouteHandlerMethod
  })

  fastify.addHook('preClose', () => sessions.shutdown(settings.closeTimeout))

  // Loaded here, not at the top: importing the package root must not load
  // @fastify/sse for apps that do not use SSE. Its CommonJS export is the
  // fastify-plugin-wrapped function (its `fastifySSE` / `default` members are
  // the unwrapped one, which would be encapsulated); its types describe the module.
  const { default: fastifySse } = await import('@fastify/sse') as unknown as { default: FastifyPluginAsync<SSEPluginOptions> }
  await fastify.register(fastifySse, opts.sse ?? {})

  // `sse: 'only'` routes: @fastify/sse answers a client that refuses
  // text/event-stream with its own 406 before any handler runs. This hook,
  // added after @fastify/sse's, wraps its handler to mark the request; an
  // onSend hook then turns that answer into a fault on Fastify's error path.
  fastify.decorateReply(kGate, false)
  fastify.addHook('onRoute', routeOptions => {
    if (!isOnlyRoute(routeOptions.sse)) return
    const gated = routeOptions.handler
    routeOptions.handler = function faultlineSseGate (this: FastifyInstance, request: FastifyRequest, reply: FastifyReply) {
      (reply as unknown as Record<typeof kGate, boolean>)[kGate] = true
      return gated.call(this, request, reply)
    } as RouteHandlerMethod
    routeOptions.onSend = appendHook(routeOptions.onSend, onRefused)
  })

  async function onRefused (request: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<unknown> {
    const marked = reply as unknown as Record<typeof kGate, boolean>
    // Refused by @fastify/sse: its handler ran but set up no SSE context.
    if (!marked[kGate] || (reply as { sse?: unknown }).sse !== undefined) return payload
    marked[kGate] = false
    throw faultline.report(new NotAcceptableError('This endpoint only produces text/event-stream: send Accept: text/event-stream'), {
      transport: 'sse', phase: 'before-response', request
    })
  }
}

/**
 * Typed error events for `@fastify/sse` routes. Registers `@fastify/sse`
 * itself (pass its options as `sse`): do not register it separately.
 */
export const faultlineSse = fp(faultlineSse_, {
  name: PLUGIN,
  fastify: '5.x',
  dependencies: ['faultline-http']
})
