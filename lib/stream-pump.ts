import type { Readable } from 'node:stream'
import { GatewayTimeoutError, BadGatewayError, type Fault } from './fault.js'
import { NDJSON_END, ndjsonData, ndjsonError } from './ndjson.js'
import {
  invalidSource, isAsyncIterable, isNodeReadable, rawChunk, sourceFault,
  type ResolvedStreamOptions, type StreamResume
} from './stream-source.js'
import { FaultlineStreamAlreadySentError, FaultlineStreamLengthError } from './errors.js'
import { isThenable } from './thenable.js'

/** The part of a Node ServerResponse the pump writes to. */
export interface StreamSink {
  /** `end()` was called: by the pump, or by someone else who answered instead. */
  readonly writableEnded: boolean
  write: (chunk: string | Uint8Array) => boolean
  end: (chunk?: string | Uint8Array) => unknown
  on: (event: 'close' | 'drain', listener: () => void) => unknown
  off: (event: 'close' | 'drain', listener: () => void) => unknown
}

/** Extra report context for one ending (a planned shutdown: its reason and log level). */
export interface EndContext {
  readonly reason: string
  readonly level: 'info'
}

/** What the pump asks of its host (the Fastify plugin): headers, reports, renderings. */
export interface StreamHost {
  readonly sink: StreamSink
  /** Writes the status line and headers. Called once, right before the first byte. May throw. */
  commit: () => void
  /** The stream failed before the headers: report it and answer with a problem response. */
  failBefore: (fault: unknown, context?: EndContext) => void
  /** The stream failed after the headers: report it (phase mid-stream) and return the fault. */
  failAfter: (fault: unknown, context?: EndContext) => Fault
  /** Closes the response without its terminating chunk, after the bytes already written. */
  truncate: () => void
  /**
   * The error record was queued with `end()`: cut the response (as `truncate`)
   * if a client that stopped reading keeps it from leaving for the truncation grace.
   */
  cutIfStuck: () => void
  /** The client went away before the stream ended: report it as a client abort. */
  clientGone: (committed: boolean) => void
  /** A fault as one line of problem JSON, for the ndjson error record. */
  problemJson: (fault: Fault) => string
}

/** The bytes a resumable response must carry: from `offset`, `bytes` of the representation's `length`. */
export interface ExpectedBytes {
  readonly offset: number
  readonly bytes: number
  readonly length: number
}

export interface PumpOptions extends ResolvedStreamOptions {
  /** A HEAD request: send the headers once the source has produced its first chunk, then stop. */
  headOnly: boolean
  /**
   * A resumable raw response: exactly these bytes. A range that ends before
   * the representation does stops the source once it is sent; otherwise the
   * source must end right there (more or fewer bytes is a fault, never cut or padded).
   */
  expect?: ExpectedBytes | undefined
}

type State = 'opening' | 'streaming' | 'done'

/** Items pulled in a row before the pump yields to the event loop. */
const MAX_BURST = 128

/**
 * Moves one source into one response, with backpressure. Terminal paths are
 * one-shot (state `done`): success ends the response; a failure before the
 * first byte becomes a problem response; after it, raw framing truncates
 * (no terminating chunk, never a clean end) and ndjson framing writes an
 * error record and ends (truncated after all if the client does not take it);
 * a client that leaves stops the source at once. Whatever ends the stream
 * also stops the source (destroy / return()), aborts the signal and removes
 * every listener and timer the pump added to the response.
 */
export class StreamPump {
  private state: State = 'opening'
  private committed = false
  private waitingDrain = false
  private index = 0
  private burst = 0
  private sent = 0
  // A resumable body's last bytes, held until the source has ended (see write()).
  private held: Uint8Array | undefined = undefined
  private timer: NodeJS.Timeout | undefined = undefined
  private readable: Readable | undefined = undefined
  private iterator: AsyncIterator<unknown> | undefined = undefined
  // Only function sources get a signal: an AbortController per stream is not free.
  private controller: AbortController | undefined = undefined
  private readonly sink: StreamSink

  constructor (private readonly host: StreamHost, private readonly options: PumpOptions) {
    this.sink = host.sink
    this.onClose = this.onClose.bind(this)
    this.onDrain = this.onDrain.bind(this)
    this.onData = this.onData.bind(this)
    this.onEnd = this.onEnd.bind(this)
    this.onSourceError = this.onSourceError.bind(this)
    this.onSourceClose = this.onSourceClose.bind(this)
    this.onResult = this.onResult.bind(this)
    this.onIteratorError = this.onIteratorError.bind(this)
    this.onIdle = this.onIdle.bind(this)
    this.pull = this.pull.bind(this)
    this.sink.on('close', this.onClose)
    this.sink.on('drain', this.onDrain)
  }

  /** Whether a terminal path ran (a method, so the checks re-read the state after calls that change it). */
  private isDone (): boolean {
    return this.state === 'done'
  }

  /** Opens `source` (calling it with the signal and `resume` when it is a function) and starts pumping. */
  start (source: unknown, resume: StreamResume = START): void {
    if (typeof source !== 'function') {
      this.open(source, false)
      return
    }
    let opened: unknown
    this.controller = new AbortController()
    try {
      opened = source(this.controller.signal, resume)
      if (isThenable(opened)) {
        this.armIdle()
        opened.then(
          value => { if (this.isDone()) closeLate(value); else this.open(value, true) },
          err => { this.fail(sourceFault(err, true)) }
        )
        return
      }
    } catch (err) {
      // The function threw, or returned a thenable whose `then` throws.
      this.fail(err)
      return
    }
    this.open(opened, true)
  }

  private open (source: unknown, fromFunction: boolean): void {
    if (isNodeReadable(source)) {
      this.pumpReadable(source)
      return
    }
    if (isAsyncIterable(source)) {
      let iterator: AsyncIterator<unknown>
      try {
        iterator = source[Symbol.asyncIterator]()
      } catch (err) {
        this.fail(sourceFault(err, false))
        return
      }
      this.iterator = iterator
      this.pull()
      return
    }
    this.fail(invalidSource(source, fromFunction))
  }

  // -- Readable: its own events, like pipe() (the fastest way to move bytes).

  private pumpReadable (source: Readable): void {
    this.readable = source
    // Stays attached for good: a late 'error' from a source we stopped must not crash the process.
    source.on('error', this.onSourceError)
    if (source.errored != null) {
      this.fail(sourceFault(source.errored, false))
      return
    }
    if (source.destroyed) {
      if (source.readableEnded) this.succeed()
      else this.fail(new BadGatewayError('The stream source was destroyed before it started'))
      return
    }
    source.on('data', this.onData)
    source.on('end', this.onEnd)
    source.on('close', this.onSourceClose)
    this.armIdle()
    source.resume()
  }

  // Listeners on the source and the response are removed by finish(), so
  // they only run while the stream is live; fail() still guards late callers.

  private onData (chunk: unknown): void {
    this.armIdle()
    if (!this.write(chunk) && !this.isDone()) {
      this.readable!.pause()
      this.waitForDrain()
    }
  }

  private onEnd (): void {
    this.succeed()
  }

  private onSourceError (err: unknown): void {
    this.fail(sourceFault(err, false))
  }

  private onSourceClose (): void {
    this.fail(new BadGatewayError('The stream source closed before it ended'))
  }

  // -- Async iterables: one next() at a time, never ahead of the client.

  private pull (): void {
    if (this.isDone()) return
    this.armIdle()
    let next: unknown
    try {
      next = this.iterator!.next()
    } catch (err) {
      this.fail(sourceFault(err, false))
      return
    }
    Promise.resolve(next).then(this.onResult, this.onIteratorError)
  }

  private onResult (result: unknown): void {
    if (this.isDone()) return
    if (typeof result !== 'object' || result === null) {
      this.fail(new TypeError(`The stream source's iterator returned ${result === null ? 'null' : typeof result} instead of an iterator result`))
      return
    }
    const { done, value } = result as IteratorResult<unknown>
    if (done === true) {
      this.succeed()
      return
    }
    if (!this.write(value)) {
      if (!this.isDone()) this.waitForDrain()
    } else if (++this.burst < MAX_BURST) {
      this.pull()
    } else {
      // An iterator that resolves at once and a socket that keeps accepting
      // would loop in microtasks forever: let the event loop (and a client's
      // close) in now and then.
      this.burst = 0
      setImmediate(this.pull)
    }
  }

  private onIteratorError (err: unknown): void {
    this.fail(sourceFault(err, false))
  }

  // -- Writing, with backpressure.

  /** Writes one item; false when the caller must wait for 'drain' (or the stream ended). */
  private write (item: unknown): boolean {
    let data: string | Uint8Array
    let last = false
    try {
      const index = this.index++
      data = this.options.framing === 'ndjson' ? ndjsonData(item, index, this.options.id) : rawChunk(item, index)
      // An empty chunk carries no byte: nothing to commit to yet.
      if (data.length === 0) return true
      const expect = this.options.expect
      if (expect !== undefined) {
        const bytes = typeof data === 'string' ? Buffer.from(data) : data
        const room = expect.bytes - this.sent
        const toEnd = expect.offset + expect.bytes === expect.length
        if (bytes.length > room && toEnd) {
          throw new FaultlineStreamLengthError(`the source yielded more than the ${expect.bytes} bytes expected from offset ${expect.offset} (length ${expect.length}); ${LENGTH_HINT}`)
        }
        // A range that ends before the representation: send up to its end, then stop.
        data = bytes.length > room ? bytes.subarray(0, room) : bytes
        last = !toEnd && data.length === room
        this.sent += data.length
        // The bytes that complete the length wait for the source's end: with
        // Content-Length, writing them would make the body look complete
        // before we know the source does not yield more.
        if (toEnd && this.sent === expect.bytes) {
          this.held = data
          return true
        }
      }
      if (!this.committed) {
        this.host.commit()
        this.committed = true
        this.state = 'streaming'
        if (this.options.headOnly) {
          // HEAD: the headers are the whole answer; stop the source.
          this.succeed(true)
          return false
        }
      }
    } catch (err) {
      this.fail(err)
      return false
    }
    const more = this.sink.write(data)
    if (!last) return more
    this.succeed(true)
    return false
  }

  private waitForDrain (): void {
    this.waitingDrain = true
    // Waiting on a slow client is not the source being idle.
    this.disarmIdle()
  }

  private onDrain (): void {
    if (!this.waitingDrain) return
    this.waitingDrain = false
    if (this.readable !== undefined) {
      this.armIdle()
      this.readable.resume()
    } else {
      this.pull()
    }
  }

  // -- Idle timeout: armed while the pump waits on the source.

  private armIdle (): void {
    if (this.options.idleTimeout === 0) return
    if (this.timer === undefined) {
      this.timer = setTimeout(this.onIdle, this.options.idleTimeout)
      this.timer.unref()
    } else {
      this.timer.refresh()
    }
  }

  private disarmIdle (): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer)
      this.timer = undefined
    }
  }

  private onIdle (): void {
    this.timer = undefined
    this.fail(new GatewayTimeoutError(`The stream source produced nothing for ${this.options.idleTimeout} ms`))
  }

  // -- Endings. Each sets state 'done' first, so any later event is a no-op.

  private succeed (early = false): void {
    const expect = this.options.expect
    if (!early && expect !== undefined && this.sent < expect.bytes) {
      this.fail(new FaultlineStreamLengthError(`the source ended after ${this.sent} of the ${expect.bytes} bytes expected from offset ${expect.offset} (length ${expect.length}); ${LENGTH_HINT}`))
      return
    }
    try {
      if (!this.committed) {
        this.host.commit()
        this.committed = true
      }
    } catch (err) {
      this.fail(err)
      return
    }
    this.finish(early)
    let last: string | Uint8Array | undefined
    if (!this.options.headOnly) last = this.options.framing === 'ndjson' ? NDJSON_END : early ? undefined : this.held
    this.sink.end(last)
  }

  /**
   * The server is closing: ends the stream now with `fault` (a problem
   * response before the first byte; after it, the ndjson error record or
   * truncation), reported with `context`. A no-op once the stream has ended.
   */
  stop (fault: Fault, context: EndContext): void {
    this.fail(fault, context)
  }

  private fail (err: unknown, context?: EndContext): void {
    // One ending only: a late rejection or a second error is not reported again.
    if (this.isDone()) return
    this.finish(true)
    if (!this.committed) {
      this.host.failBefore(err, context)
      return
    }
    const fault = this.host.failAfter(err, context)
    const record = this.options.framing === 'ndjson' ? this.errorRecord(fault) : undefined
    if (record !== undefined) {
      this.sink.end(record)
      this.host.cutIfStuck()
    } else {
      // The status is gone: truncation (no terminating chunk) is the signal left.
      this.host.truncate()
    }
  }

  /** The ndjson error record, or undefined if it cannot be rendered (then: truncation, never a hang). */
  private errorRecord (fault: Fault): string | undefined {
    try {
      return ndjsonError(this.host.problemJson(fault))
    } catch {
      return undefined
    }
  }

  private onClose (): void {
    // Someone else answered (an async handler that did not return the reply).
    // Not `writableFinished`: an HTTP/2 stream the client reset is "finished" too.
    if (this.sink.writableEnded) {
      this.fail(new FaultlineStreamAlreadySentError())
      return
    }
    this.finish(true)
    this.host.clientGone(this.committed)
  }

  /** Stops listening, stops the source, and aborts the signal unless the stream succeeded. */
  private finish (early: boolean): void {
    this.state = 'done'
    this.disarmIdle()
    this.sink.off('close', this.onClose)
    this.sink.off('drain', this.onDrain)
    const readable = this.readable
    if (readable !== undefined) {
      readable.off('data', this.onData)
      readable.off('end', this.onEnd)
      readable.off('close', this.onSourceClose)
      if (!readable.destroyed) readable.destroy()
    }
    const iterator = this.iterator
    if (iterator !== undefined && early) closeIterator(iterator)
    if (early) this.controller?.abort()
  }
}

const START: StreamResume = Object.freeze({ offset: 0, lastEventId: undefined })
const LENGTH_HINT = 'either length is wrong or the content changed without a new etag'

/** Calls return() so a generator's `finally` runs; its result (or failure) is not ours to report. */
function closeIterator (iterator: AsyncIterator<unknown>): void {
  try {
    const result = iterator.return?.()
    if (isThenable(result)) result.then(undefined, noop)
  } catch {
    // A return() that throws has nothing left for us to stop.
  }
}

/** A source that opened after the stream had already ended: stop it at once. */
function closeLate (source: unknown): void {
  if (isNodeReadable(source)) {
    source.on('error', noop)
    source.destroy()
  } else if (isAsyncIterable(source)) {
    try {
      closeIterator(source[Symbol.asyncIterator]())
    } catch {
      // Nothing was started, so nothing is left to stop.
    }
  }
}

function noop (): void {}
