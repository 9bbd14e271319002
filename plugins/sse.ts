import { Readable } from 'node:stream'
import fp from 'fastify-plugin'
import fastifySseModule from '@fastify/sse'
import type { SSEPluginOptions, SSEReplyInterface, SSESource } from '@fastify/sse'
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest, RouteHandlerMethod } from 'fastify'
import { ClientClosedError, ServiceUnavailableError, type Fault } from '../lib/fault.js'
import { DEFAULT_TERMINAL_ID_PREFIX, isTerminalEventId, sseFaultEvent } from '../lib/sse-event.js'
import { FaultlineInvalidOptionError, FaultlinePeerRegisteredError } from '../lib/errors.js'
import type { Faultline } from './http.js'

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

export interface SseFaultOptions {
  /** End the stream after the error event (a fatal fault). Default: false: the stream goes on. */
  close?: boolean
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

// The package's CommonJS export is the fastify-plugin-wrapped function (its
// `fastifySSE` / `default` members are the unwrapped one, which would be
// encapsulated); its types describe the module instead.
const fastifySse = fastifySseModule as unknown as FastifyPluginAsync<SSEPluginOptions>

const PLUGIN = 'faultline-sse'
const PEER = '@fastify/sse'
const VISIBLE_ASCII = /^[\x21-\x7e]{1,64}$/
const CONNECTION_CLOSED = 'FST_ERR_SSE_CONNECTION_CLOSED'
// A planned shutdown is expected: logged at info, not as a server error with a stack.
const SHUTDOWN = Object.freeze({ reason: 'shutdown', level: 'info' as const })
const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined })

/** What this plugin tracks for one open SSE response. */
interface OpenStream {
  readonly request: FastifyRequest
  readonly reply: FastifyReply
  readonly sse: SSEReplyInterface
  /** The stream is over for us: a fault ended it, the client left, or the server is closing. */
  done: boolean
  /** Stops every source an iterable `send()` is still reading. */
  stops: Set<() => void> | undefined
  /** Settles pending `send()` calls once the stream is over. */
  settle: (() => void) | undefined
  over: Promise<void> | undefined
}

// Open streams per `fastify.faultline` object: shared by every scope that
// registers this plugin, so `faultline.sse.open` counts all of them.
const registries = new WeakMap<Faultline, Set<OpenStream>>()

interface Settings {
  errorEvent: string
  terminalIdPrefix: string
  defaultRetry: number
  closeTimeout: number
}

function validate (opts: FaultlineSseOptions): Settings {
  if (opts === null || typeof opts !== 'object') throw new FaultlineInvalidOptionError(PLUGIN, 'options', 'must be an object')
  const { sse, errorEvent, terminalIdPrefix, defaultRetry, closeTimeout } = opts
  if (sse !== undefined && (sse === null || typeof sse !== 'object' || Array.isArray(sse))) {
    throw new FaultlineInvalidOptionError(PLUGIN, 'sse', 'must be an object of @fastify/sse options, e.g. { heartbeatInterval: 15000 }')
  }
  if (errorEvent !== undefined && (typeof errorEvent !== 'string' || !VISIBLE_ASCII.test(errorEvent))) {
    throw new FaultlineInvalidOptionError(PLUGIN, 'errorEvent', 'must be an event name of 1-64 visible ASCII characters (no spaces or line breaks), e.g. "error"')
  }
  if (terminalIdPrefix !== undefined && (typeof terminalIdPrefix !== 'string' || !VISIBLE_ASCII.test(terminalIdPrefix))) {
    throw new FaultlineInvalidOptionError(PLUGIN, 'terminalIdPrefix', 'must be 1-64 visible ASCII characters (no spaces or line breaks), e.g. "faultline-terminal:"')
  }
  if (defaultRetry !== undefined && !(Number.isInteger(defaultRetry) && defaultRetry >= 0)) {
    throw new FaultlineInvalidOptionError(PLUGIN, 'defaultRetry', 'must be an integer number of milliseconds >= 0')
  }
  if (closeTimeout !== undefined && !(Number.isInteger(closeTimeout) && closeTimeout > 0)) {
    throw new FaultlineInvalidOptionError(PLUGIN, 'closeTimeout', 'must be an integer number of milliseconds > 0')
  }
  return {
    errorEvent: errorEvent ?? 'error',
    terminalIdPrefix: terminalIdPrefix ?? DEFAULT_TERMINAL_ID_PREFIX,
    defaultRetry: defaultRetry ?? 3000,
    closeTimeout: closeTimeout ?? 5000
  }
}

/** A rejection that only says "this stream is already closed": the caller's cue to stop, not a new fault. */
function isClosedError (err: unknown): boolean {
  const e = err as { code?: unknown, message?: unknown } | null
  return typeof e === 'object' && e !== null && (e.code === CONNECTION_CLOSED || e.message === 'SSE connection is closed')
}

function isStreamSource (source: unknown): source is AsyncIterable<unknown> {
  return source !== null && typeof source === 'object' &&
    typeof (source as Record<symbol, unknown>)[Symbol.asyncIterator] === 'function' &&
    !Buffer.isBuffer(source) && !('data' in source)
}

async function faultlineSse_ (fastify: FastifyInstance, opts: FaultlineSseOptions): Promise<void> {
  const settings = validate(opts)
  if (fastify.hasPlugin(PEER)) {
    throw new FaultlinePeerRegisteredError(PLUGIN, PEER, 'faultlineSse', 'sse')
  }
  const faultline = fastify.faultline
  let streams = registries.get(faultline)
  if (streams === undefined) {
    const open = new Set<OpenStream>()
    streams = open
    registries.set(faultline, open)
    faultline.sse = { get open () { return open.size } }
  }
  const registry = streams

  function eventFor (stream: OpenStream, fault: Fault, final: boolean): string {
    return sseFaultEvent(fault, faultline.toProblem(fault, stream.request), {
      event: settings.errorEvent,
      final,
      terminalIdPrefix: settings.terminalIdPrefix,
      defaultRetry: settings.defaultRetry
    })
  }

  /** Marks the stream over: stops its sources and releases pending sends. */
  function finish (stream: OpenStream): void {
    stream.done = true
    registry.delete(stream)
    if (stream.stops !== undefined) {
      for (const stop of stream.stops) stop()
      stream.stops = undefined
    }
    if (stream.settle !== undefined) stream.settle()
  }

  /**
   * The one way a fault ends a stream. Before the first event: an ordinary
   * problem+json response with the fault's status. After it: the error
   * event, then the end of the stream.
   */
  function endWith (stream: OpenStream, err: unknown, extra?: Record<string, unknown>): Fault {
    finish(stream)
    const { reply, sse, request } = stream
    const raw = reply.raw
    if (!raw.headersSent) {
      // Later sends must fail as on a closed stream; headers are not out, so this ends nothing.
      sse.close()
      return faultline.sendProblem(reply, err, { ...extra, transport: 'sse', phase: 'before-response' })
    }
    const fault = faultline.report(err, { ...extra, transport: 'sse', phase: 'mid-stream', request })
    if (!raw.writableEnded && !raw.destroyed) {
      raw.write(eventFor(stream, fault, true))
      // Stops the heartbeat and runs onClose callbacks; @fastify/sse ends the
      // response only while it thinks the client is there, so end it here too
      // (a no-op when already ended).
      sse.close()
      raw.end()
    }
    return fault
  }

  /** A failure after the stream was over: nothing can be written, but it is still reported once. */
  function late (stream: OpenStream, err: unknown): void {
    if (!isClosedError(err)) faultline.report(err, { transport: 'sse', phase: 'mid-stream', request: stream.request })
  }

  function callReturn (stream: OpenStream, iterator: AsyncIterator<unknown>): void {
    try {
      const result = iterator.return?.()
      if (result !== undefined) Promise.resolve(result).then(undefined, err => late(stream, err))
    } catch (err) {
      late(stream, err)
    }
  }

  /**
   * The source as @fastify/sse will read it, and a stop that returns it
   * when the stream ends early: @fastify/sse never calls `return()` when its
   * write waits for a `drain` that a gone client never emits.
   */
  function guard (stream: OpenStream, source: AsyncIterable<unknown>): { iterable: AsyncIterable<string>, release: () => void } {
    const iterator = source[Symbol.asyncIterator]()
    const stops = stream.stops ??= new Set()
    let stopped = false
    const stop = (): void => {
      if (stopped) return
      stopped = true
      stops.delete(stop)
      callReturn(stream, iterator)
    }
    stops.add(stop)
    const iterable = {
      [Symbol.asyncIterator] () { return this },
      next: () => iterator.next(),
      return: () => {
        stop()
        return Promise.resolve(DONE)
      }
    } as unknown as AsyncIterable<string>
    return { iterable, release: () => { stops.delete(stop) } }
  }

  function overOf (stream: OpenStream): Promise<void> {
    stream.over ??= new Promise<void>(resolve => { stream.settle = resolve })
    return stream.over
  }

  function patch (stream: OpenStream): void {
    const { sse, reply } = stream
    const send = sse.send
    // A fault in what is sent (a failing iterable or Readable, a serializer
    // that throws) ends the stream through `endWith` and resolves: `send()`
    // only rejects when the stream is already closed, as in @fastify/sse.
    const onFailure = (err: unknown): void => {
      if (stream.done || !sse.isConnected) {
        if (isClosedError(err)) throw err
        late(stream, err)
        return
      }
      endWith(stream, err)
    }
    sse.send = function faultlineSend (source: SSESource): Promise<void> {
      try {
        if (stream.done || !isStreamSource(source)) return send.call(sse, source).then(undefined, onFailure)
        // @fastify/sse commits a Readable's headers at once; keep that.
        if (source instanceof Readable) sse.sendHeaders()
        const { iterable, release } = guard(stream, source)
        // Settles when the source is done, or at once when the stream is over
        // (a send waiting for a drain that will never come is left behind).
        return Promise.race([send.call(sse, iterable), overOf(stream)]).then(release, onFailure)
      } catch (err) {
        return Promise.resolve().then(() => onFailure(err))
      }
    }
    sse.fault = function fault (err: unknown, options?: SseFaultOptions): Fault {
      if (options?.close === true) {
        if (!stream.done) return endWith(stream, err)
      } else if (!stream.done && sse.isConnected) {
        const found = faultline.report(err, { transport: 'sse', phase: 'mid-stream', request: stream.request })
        sse.sendHeaders()
        reply.raw.write(eventFor(stream, found, false))
        return found
      }
      return faultline.report(err, { transport: 'sse', phase: 'mid-stream', request: stream.request })
    }
  }

  function track (request: FastifyRequest, reply: FastifyReply, sse: SSEReplyInterface): OpenStream {
    const stream: OpenStream = { request, reply, sse, done: false, stops: undefined, settle: undefined, over: undefined }
    registry.add(stream)
    const raw = reply.raw
    raw.once('close', () => {
      if (stream.done) return
      // Ended by us (or the handler) = a normal end, even if the last bytes
      // were still in flight when the socket closed.
      if (!raw.writableEnded) {
        const phase = raw.headersSent ? 'mid-stream' : 'before-response'
        faultline.report(new ClientClosedError('The client closed the SSE stream'), { transport: 'sse', phase, request })
      }
      finish(stream)
    })
    patch(stream)
    return stream
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
      faultline.tagRequestId(reply)
      const stream = track(request, reply, sse)
      // Once a fault (or the client) ended the stream, the reply is handled:
      // returning it keeps Fastify from sending whatever the handler returns.
      try {
        const result = await handler.call(this, request, reply)
        return stream.done ? reply : result
      } catch (err) {
        if (stream.done) late(stream, err)
        else endWith(stream, err)
        return reply
      }
    } as RouteHandlerMethod
  })

  fastify.addHook('preClose', async () => {
    const closing: Array<Promise<void>> = []
    const open: Array<{ raw: FastifyReply['raw'], closed: boolean }> = []
    for (const stream of [...registry]) {
      const raw = stream.reply.raw
      const entry = { raw, closed: false }
      open.push(entry)
      closing.push(new Promise(resolve => raw.once('close', () => { entry.closed = true; resolve() })))
      // A response already ending (the handler returned) only needs to flush.
      // `reason` goes into the log line and the reporter context: a deploy, not an outage.
      if (!raw.writableEnded) endWith(stream, new ServiceUnavailableError('The server is shutting down'), SHUTDOWN)
    }
    if (closing.length === 0) return
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<boolean>(resolve => { timer = setTimeout(() => resolve(true), settings.closeTimeout) })
    const expired = await Promise.race([Promise.all(closing).then(() => false), timedOut])
    clearTimeout(timer)
    if (expired) {
      // A client that does not read keeps its response from finishing: cut it.
      for (const entry of open) if (!entry.closed) entry.raw.destroy()
    }
  })

  await fastify.register(fastifySse, opts.sse ?? {})
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
