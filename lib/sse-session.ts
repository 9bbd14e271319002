import { Readable } from 'node:stream'
import { ClientClosedError, ServerShutdownError, type Fault } from './fault.js'
import { responsePhase, type Phase } from './report.js'

// The lifecycle of one SSE response, behind small interfaces (the response,
// @fastify/sse's `reply.sse`, and a host for reports and renderings), so it
// is unit-tested with fakes; plugins/sse.ts is the Fastify adapter.

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
  send: (source: any) => Promise<void>
  sendHeaders: () => void
  close: () => void
}

/** What a session asks of its host (the plugin): reports, the error path, renderings. */
export interface SseHost {
  readonly response: SseResponse
  readonly channel: SseChannel
  /** Reports `err` (transport `sse`) and returns the fault; `extra` goes into the context. */
  report: (err: unknown, phase: Phase, extra?: Record<string, unknown>) => Fault
  /** Before the first event: answer with the (reported) fault through the framework's one error path. */
  failBefore: (fault: Fault) => void
  /** The fault as the bytes of one error event; `final` when the stream ends after it. */
  errorEvent: (fault: Fault, final: boolean) => string
  /**
   * One message of a `send()` (given alone or yielded by a source) as it may
   * be written: line breaks that cannot forge a field, or a thrown fault.
   */
  message: (message: unknown) => unknown
  /** The response was ended after a final error event: cut it if a client that stopped reading keeps it from leaving. */
  cutIfStuck: () => void
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

/** The open sessions of one app: counted for leak checks, ended together on shutdown. */
export class SseSessions {
  readonly open = new Set<SseSession>()

  /**
   * Ends every open stream with a retryable 503 `SERVER_SHUTDOWN` (an error event, or a
   * problem response before the first event), waits up to `closeTimeout` ms
   * for them to flush, then destroys those whose client does not read.
   */
  async shutdown (closeTimeout: number): Promise<void> {
    const closing: Array<Promise<void>> = []
    const open: Array<{ response: SseResponse, closed: boolean }> = []
    for (const session of [...this.open]) {
      const response = session.host.response
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

/**
 * One open SSE response. Every fault ends it one way (`end`): before the
 * first event, the host's error path; after it, the error event and the end
 * of the response. A client that leaves is a client abort; anything that
 * fails after the end is still reported once, never written.
 */
export class SseSession {
  /** The stream is over for us: a fault ended it, the client left, or the server is closing. */
  private over = false
  /** Stops every source an iterable `send()` is still reading. */
  private stops: Set<() => void> | undefined = undefined
  /** Settles pending `send()` calls once the stream is over. */
  private settle: (() => void) | undefined = undefined
  private overPromise: Promise<void> | undefined = undefined
  private readonly channelSend: SseChannel['send']

  constructor (readonly host: SseHost, private readonly sessions: SseSessions) {
    this.channelSend = host.channel.send
    sessions.open.add(this)
    host.response.once('close', this.onClose)
  }

  get done (): boolean {
    return this.over
  }

  /**
   * The one way a fault ends the stream. Before the first event: the host's
   * error path (a problem response with the fault's status). After it: the
   * error event, then the end of the response.
   */
  end (err: unknown, extra?: Record<string, unknown>): Fault {
    this.finish()
    const { response, channel } = this.host
    if (!response.headersSent) {
      const fault = this.host.report(err, 'before-response', extra)
      // Later sends must fail as on a closed stream; headers are not out, so this ends nothing.
      channel.close()
      this.host.failBefore(fault)
      return fault
    }
    const fault = this.host.report(err, 'mid-stream', extra)
    if (!response.writableEnded && !response.destroyed) {
      response.write(this.host.errorEvent(fault, true))
      // Stops the heartbeat and runs onClose callbacks; @fastify/sse ends the
      // response only while it thinks the client is there, so end it here too
      // (a no-op when already ended).
      channel.close()
      response.end()
      this.host.cutIfStuck()
    }
    return fault
  }

  /** The handler threw or rejected. */
  handlerFailed (err: unknown): void {
    if (this.over) this.late(err)
    else this.end(err)
  }

  /**
   * `reply.sse.send()`: a fault in what is sent (a failing iterable or
   * Readable, a serializer that throws) ends the stream and resolves; it
   * only rejects when the stream is already closed, as in @fastify/sse.
   */
  readonly send = (source: unknown): Promise<void> => {
    const channel = this.host.channel
    try {
      if (this.over) return this.channelSend.call(channel, source).then(undefined, this.onSendFailure)
      if (!isStreamSource(source)) return this.channelSend.call(channel, this.host.message(source)).then(undefined, this.onSendFailure)
      // @fastify/sse commits a Readable's headers at once; keep that.
      if (source instanceof Readable) channel.sendHeaders()
      const { iterable, release } = this.guard(source)
      // Settles when the source is done, or at once when the stream is over
      // (a send waiting for a drain that will never come is left behind).
      return Promise.race([this.channelSend.call(channel, iterable), this.whenOver()]).then(release, this.onSendFailure)
    } catch (err) {
      return Promise.resolve().then(() => this.onSendFailure(err))
    }
  }

  /**
   * `reply.sse.fault()`: reports `err` and writes an error event; the stream
   * goes on unless `close` is set. After the end it only reports.
   */
  readonly fault = (err: unknown, options?: SseFaultOptions): Fault => {
    if (!this.over) {
      if (options?.close === true) return this.end(err)
      if (this.host.channel.isConnected) {
        const found = this.host.report(err, 'mid-stream')
        this.host.channel.sendHeaders()
        this.host.response.write(this.host.errorEvent(found, false))
        return found
      }
    }
    return this.host.report(err, 'mid-stream')
  }

  private readonly onSendFailure = (err: unknown): void => {
    if (this.over || !this.host.channel.isConnected) {
      if (isClosedError(err)) throw err
      this.late(err)
      return
    }
    this.end(err)
  }

  private readonly onClose = (): void => {
    if (this.over) return
    const response = this.host.response
    // Ended by us (or the handler) = a normal end, even if the last bytes
    // were still in flight when the socket closed.
    if (!response.writableEnded) {
      this.host.report(new ClientClosedError('The client closed the SSE stream'), responsePhase(response.headersSent))
    }
    this.finish()
  }

  /** A failure after the stream was over: nothing can be written, but it is still reported once. */
  private late (err: unknown): void {
    if (!isClosedError(err)) this.host.report(err, 'mid-stream')
  }

  /** Marks the stream over: stops its sources and releases pending sends. */
  private finish (): void {
    this.over = true
    this.sessions.open.delete(this)
    if (this.stops !== undefined) {
      for (const stop of this.stops) stop()
      this.stops = undefined
    }
    if (this.settle !== undefined) this.settle()
  }

  private whenOver (): Promise<void> {
    this.overPromise ??= new Promise<void>(resolve => { this.settle = resolve })
    return this.overPromise
  }

  /**
   * The source as @fastify/sse will read it, and a stop that returns it
   * when the stream ends early: @fastify/sse never calls `return()` when its
   * write waits for a `drain` that a gone client never emits.
   */
  private guard (source: AsyncIterable<unknown>): { iterable: AsyncIterable<unknown>, release: () => void } {
    const iterator = source[Symbol.asyncIterator]()
    const stops = this.stops ??= new Set()
    let stopped = false
    const stop = (): void => {
      if (stopped) return
      stopped = true
      stops.delete(stop)
      this.callReturn(iterator)
    }
    stops.add(stop)
    const iterable = {
      [Symbol.asyncIterator] () { return this },
      next: async () => {
        const result = await iterator.next()
        return result.done === true ? result : { done: false, value: this.host.message(result.value) }
      },
      return: () => {
        stop()
        return Promise.resolve(DONE)
      }
    } as unknown as AsyncIterable<unknown>
    return { iterable, release: () => { stops.delete(stop) } }
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
