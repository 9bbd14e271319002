import { Readable } from 'node:stream'
import { ClientClosedError, ServerShutdownError, type Fault } from './fault.js'
import { responsePhase, type Phase } from './report.js'

// The lifecycle of one SSE response, behind small interfaces (the response,
// @fastify/sse's `reply.sse`, and a host for reports and renderings), so it
// is unit-tested with fakes; plugins/sse.ts is the Fastify adapter.
//
// An idle stream can stay open for hours, by the thousand: a session is one
// small object (its registry, its stream, its state) and holds no closure or
// listener of its own. The host is shared by every stream of a registration
// and gets the stream (the plugin's reply) with each call; the host tells
// the session when its response closes (`closed()`).

/** The part of a Node ServerResponse a session writes to and watches. */
export interface SseResponse {
  readonly headersSent: boolean
  readonly writableEnded: boolean
  readonly destroyed: boolean
  write: (chunk: string) => unknown
  end: () => unknown
  destroy: () => unknown
  once: (event: 'close', listener: () => void) => unknown
}

/** The part of `@fastify/sse`'s `reply.sse` a session drives. */
export interface SseChannel {
  readonly isConnected: boolean
  sendHeaders: () => void
  close: () => void
}

/** One SSE response as its host knows it (the plugin's reply): the response it writes, the channel it drives. */
export interface SseStream {
  readonly raw: SseResponse
  readonly sse: SseChannel
}

/**
 * What a session asks of its host (the plugin): reports, the error path,
 * renderings. One host serves every stream; each call names its stream.
 */
export interface SseHost<R extends SseStream> {
  /** The channel's own send, which the session's `send` stands in for. */
  send: (channel: SseChannel, source: unknown) => Promise<void>
  /** Reports `err` (transport `sse`) and returns the fault; `extra` goes into the context. */
  report: (stream: R, err: unknown, phase: Phase, extra?: Record<string, unknown>) => Fault
  /** Before the first event: answer with the (reported) fault through the framework's one error path. */
  failBefore: (stream: R, fault: Fault) => void
  /** The fault as the bytes of one error event; `final` when the stream ends after it. */
  errorEvent: (stream: R, fault: Fault, final: boolean) => string
  /**
   * One message of a `send()` (given alone or yielded by a source) as it may
   * be written: line breaks that cannot forge a field, or a thrown fault.
   */
  message: (message: unknown) => unknown
  /** The response was ended after a final error event: cut it if a client that stopped reading keeps it from leaving. */
  cutIfStuck: (stream: R) => void
}

export interface SseFaultOptions {
  /** End the stream after the error event (a fatal fault). Default: false: the stream goes on. */
  close?: boolean
}

/** The code `@fastify/sse` gives a send on a closed stream: the caller's cue to stop, not a new fault (undocumented: test/dependency-internals.test.ts). */
const CONNECTION_CLOSED = 'FST_ERR_SSE_CONNECTION_CLOSED'
// A planned shutdown is expected: logged at info, not as a server error with a stack.
const SHUTDOWN = Object.freeze({ reason: 'shutdown', level: 'info' as const })
const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined })

function isClosedError (err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === CONNECTION_CLOSED
}

/** A source `@fastify/sse` iterates (an async iterable or a Readable), not one message. */
function isStreamSource (source: unknown): source is AsyncIterable<unknown> {
  return source !== null && typeof source === 'object' &&
    typeof (source as Record<symbol, unknown>)[Symbol.asyncIterator] === 'function' &&
    !Buffer.isBuffer(source) && !('data' in source)
}

/** The open sessions of one registration: counted for leak checks, ended together on shutdown. */
export class SseSessions<R extends SseStream> {
  readonly open = new Set<SseSession<R>>()

  constructor (readonly host: SseHost<R>) {}

  /**
   * Ends every open stream with a retryable 503 `SERVER_SHUTDOWN` (an error event, or a
   * problem response before the first event), waits up to `closeTimeout` ms
   * for them to flush, then destroys those whose client does not read.
   */
  async shutdown (closeTimeout: number): Promise<void> {
    const closing: Array<Promise<void>> = []
    const open: Array<{ response: SseResponse, closed: boolean }> = []
    for (const session of [...this.open]) {
      const response = session.response
      const entry = { response, closed: false }
      open.push(entry)
      closing.push(new Promise(resolve => response.once('close', () => { entry.closed = true; resolve() })))
      // A response already ending (the handler returned) only needs to flush.
      // `reason` goes into the log line and the reporter context: a deploy, not an outage.
      if (!response.writableEnded) session.end(new ServerShutdownError('The server is shutting down; reconnect to another instance'), SHUTDOWN)
    }
    if (closing.length === 0) return
    let timer: ReturnType<typeof setTimeout> | undefined
    const timedOut = new Promise<boolean>(resolve => { timer = setTimeout(() => resolve(true), closeTimeout) })
    const expired = await Promise.race([Promise.all(closing).then(() => false), timedOut])
    clearTimeout(timer)
    if (expired) {
      // A client that does not read keeps its response from finishing: cut it.
      for (const entry of open) if (!entry.closed) entry.response.destroy()
    }
  }
}

/** What a session keeps only once it reads a source (an iterable or Readable `send()`). */
class Sources {
  /** Stops every source an iterable `send()` is still reading. */
  readonly stops = new Set<() => void>()
  /** Settles `over`: pending `send()` calls are released once the stream is over. */
  settle!: () => void
  readonly over = new Promise<void>(resolve => { this.settle = resolve })
}

/** A session's state once the stream is over for us: a fault ended it, the client left, or the server is closing. */
const OVER = 'over'

/**
 * One open SSE response. Every fault ends it one way (`end`): before the
 * first event, the host's error path; after it, the error event and the end
 * of the response. A client that leaves is a client abort; anything that
 * fails after the end is still reported once, never written.
 */
export class SseSession<R extends SseStream> {
  /** Open with no source read yet (most streams never read one), open with the sources being read, or over. */
  private state: Sources | typeof OVER | undefined = undefined

  constructor (private readonly sessions: SseSessions<R>, readonly stream: R) {
    sessions.open.add(this)
  }

  get response (): SseResponse {
    return this.stream.raw
  }

  get channel (): SseChannel {
    return this.stream.sse
  }

  get done (): boolean {
    return this.state === OVER
  }

  private get host (): SseHost<R> {
    return this.sessions.host
  }

  /**
   * The one way a fault ends the stream. Before the first event: the host's
   * error path (a problem response with the fault's status). After it: the
   * error event, then the end of the response.
   */
  end (err: unknown, extra?: Record<string, unknown>): Fault {
    this.finish()
    const { response, channel, host } = this
    if (!response.headersSent) {
      const fault = host.report(this.stream, err, 'before-response', extra)
      // Later sends must fail as on a closed stream; headers are not out, so this ends nothing.
      channel.close()
      host.failBefore(this.stream, fault)
      return fault
    }
    const fault = host.report(this.stream, err, 'mid-stream', extra)
    if (!response.writableEnded && !response.destroyed) {
      response.write(host.errorEvent(this.stream, fault, true))
      // Stops the heartbeat and runs onClose callbacks; @fastify/sse ends the
      // response only while it thinks the client is there, so end it here too
      // (a no-op when already ended).
      channel.close()
      response.end()
      host.cutIfStuck(this.stream)
    }
    return fault
  }

  /** The handler threw or rejected. */
  handlerFailed (err: unknown): void {
    if (this.done) this.late(err)
    else this.end(err)
  }

  /**
   * `reply.sse.send()`: a fault in what is sent (a failing iterable or
   * Readable, a serializer that throws) ends the stream and resolves; it
   * only rejects when the stream is already closed, as in @fastify/sse.
   */
  send (source: unknown): Promise<void> {
    const { channel, host } = this
    const failed = (err: unknown): void => this.sendFailed(err)
    try {
      if (this.done) return host.send(channel, source).then(undefined, failed)
      if (!isStreamSource(source)) return host.send(channel, host.message(source)).then(undefined, failed)
      // @fastify/sse commits a Readable's headers at once; keep that.
      if (source instanceof Readable) channel.sendHeaders()
      const { iterable, release, over } = this.guard(source)
      // Settles when the source is done, or at once when the stream is over
      // (a send waiting for a drain that will never come is left behind).
      return Promise.race([host.send(channel, iterable), over]).then(release, failed)
    } catch (err) {
      return Promise.resolve().then(() => failed(err))
    }
  }

  /**
   * `reply.sse.fault()`: reports `err` and writes an error event; the stream
   * goes on unless `close` is set. After the end it only reports.
   */
  fault (err: unknown, options?: SseFaultOptions): Fault {
    if (!this.done) {
      if (options?.close === true) return this.end(err)
      if (this.channel.isConnected) {
        const found = this.host.report(this.stream, err, 'mid-stream')
        this.channel.sendHeaders()
        this.response.write(this.host.errorEvent(this.stream, found, false))
        return found
      }
    }
    return this.host.report(this.stream, err, 'mid-stream')
  }

  /**
   * The host's word that the response closed (or failed, which closes it):
   * before the end, a client that left. Only the first call counts.
   */
  closed (): void {
    if (this.done) return
    const response = this.response
    // Ended by us (or the handler) = a normal end, even if the last bytes
    // were still in flight when the socket closed.
    if (!response.writableEnded) {
      this.host.report(this.stream, new ClientClosedError('The client closed the SSE stream'), responsePhase(response.headersSent))
    }
    this.finish()
  }

  private sendFailed (err: unknown): void {
    if (this.done || !this.channel.isConnected) {
      if (isClosedError(err)) throw err
      this.late(err)
      return
    }
    this.end(err)
  }

  /** A failure after the stream was over: nothing can be written, but it is still reported once. */
  private late (err: unknown): void {
    if (!isClosedError(err)) this.host.report(this.stream, err, 'mid-stream')
  }

  /** Marks the stream over: stops its sources and releases pending sends. */
  private finish (): void {
    const sources = this.state
    this.state = OVER
    this.sessions.open.delete(this)
    if (sources === undefined || sources === OVER) return
    for (const stop of sources.stops) stop()
    sources.settle()
  }

  /**
   * The source as @fastify/sse will read it, a stop that returns it when
   * the stream ends early (@fastify/sse never calls `return()` when its
   * write waits for a `drain` that a gone client never emits), and the
   * promise that settles when the stream is over.
   */
  private guard (source: AsyncIterable<unknown>): { iterable: AsyncIterable<unknown>, release: () => void, over: Promise<void> } {
    const iterator = source[Symbol.asyncIterator]()
    // `send()` guards a source only while the stream is open.
    const { stops, over } = (this.state ??= new Sources()) as Sources
    let stopped = false
    const stop = (): void => {
      if (stopped) return
      stopped = true
      stops.delete(stop)
      this.callReturn(iterator)
    }
    stops.add(stop)
    const host = this.host
    // One `then` per event, not an async function's promise and await.
    const checked = (result: IteratorResult<unknown>): IteratorResult<unknown> =>
      result.done === true ? result : { done: false, value: host.message(result.value) }
    const iterable = {
      [Symbol.asyncIterator] () { return this },
      // An iterator's `next` may answer a plain result, as `for await` allows.
      next: () => Promise.resolve(iterator.next()).then(checked),
      return: () => {
        stop()
        return Promise.resolve(DONE)
      }
    } as unknown as AsyncIterable<unknown>
    return { iterable, release: () => { stops.delete(stop) }, over }
  }

  private callReturn (iterator: AsyncIterator<unknown>): void {
    try {
      const result = iterator.return?.()
      if (result !== undefined) Promise.resolve(result).then(undefined, err => this.late(err))
    } catch (err) {
      this.late(err)
    }
  }
}
