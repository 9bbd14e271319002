import type { Readable } from 'node:stream'
import { BadGatewayError, describe, isFault, type Fault } from './fault.js'
import { carriedStatus, toFault } from './normalize.js'
import { FaultlineStreamChunkError, FaultlineStreamOptionError, FaultlineStreamSourceError } from './errors.js'
import { whyInvalidMs } from './options.js'
import { isClientAbort } from './report.js'
import { isWeakEtag, strongEtag } from './range.js'

/** How a stream's items become bytes: as they are, or one JSON record per line. */
export type StreamFraming = 'raw' | 'ndjson'

/** Bytes a raw stream may carry. */
export type StreamChunk = string | Uint8Array

/**
 * What a source can be once opened: a Node Readable or any async iterable (an
 * async generator, a web ReadableStream such as a fetch body: async iterable
 * in Node, though the DOM typings do not always say so).
 */
export type StreamSourceValue<T = unknown> = Readable | AsyncIterable<T> | ReadableStream<T>

/** Where this response starts: the second argument of a source function. */
export interface StreamResume {
  /**
   * The first byte to produce. 0, unless the stream is resumable (`etag` and
   * `length`) and the request asked for a range (`Range: bytes=offset-`).
   */
  readonly offset: number
  /**
   * The request's `Last-Event-ID` header: the id of the last record a
   * resuming client received (ndjson with `id`). Client input: parse it as such.
   */
  readonly lastEventId: string | undefined
}

/** A function that opens a stream source (see StreamSource). */
export type StreamSourceFunction<T = unknown> =
  (signal: AbortSignal, resume: StreamResume) => StreamSourceValue<T> | PromiseLike<StreamSourceValue<T>>

/**
 * A stream source: the stream itself, or a function that opens it. The
 * function gets a signal that aborts when the stream stops early (client gone,
 * failure, idle timeout) and where to start (`resume`), and may return a
 * Promise (e.g. an upstream fetch).
 */
export type StreamSource<T = unknown> = StreamSourceValue<T> | StreamSourceFunction<T>

/** Assigns each ndjson record its id: a non-empty string of visible ASCII, sent back as `Last-Event-ID`. */
export type RecordId<T = unknown> = (item: T, index: number) => string

export interface StreamSafeOptions {
  /** Content-Type of the response. Default: a content type set on the reply, else `application/octet-stream` (raw) or `application/x-ndjson` (ndjson). */
  type?: string
  /** `raw` writes strings and bytes as they are; `ndjson` writes each item as a `{"type":"data","data":…}` line. Default: `raw`. */
  framing?: StreamFraming
  /** Milliseconds the source may stay silent before the stream fails with `GatewayTimeoutError`; 0 turns it off. Default: the plugin's, 0. */
  idleTimeout?: number
  /** Compress for a client that accepts gzip or brotli (`true`), or never (`false`). Default: the plugin's `compress`. */
  compress?: boolean
}

/** A resumable raw stream: its strong entity-tag and its size in bytes. */
export interface Resumable {
  etag: string
  length: number
}

export interface ResolvedStreamOptions {
  type: string | undefined
  framing: StreamFraming
  idleTimeout: number
  /** Undefined: the plugin's default. */
  compress?: boolean | undefined
  /** Raw framing with `etag` and `length`: Range requests are served. */
  resumable?: Resumable | undefined
  /** ndjson framing with `id`: each data record carries an id. */
  id?: RecordId | undefined
}

/** Defaults a plugin registration sets for every call. */
export interface StreamDefaults {
  idleTimeout: number
}

// A header value: visible ASCII, spaces, tabs and obs-text; never CR or LF.
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]+$/

/** Why a framing value is invalid, or undefined when it is valid. */
export function whyInvalidFraming (value: unknown): string | undefined {
  return value === 'raw' || value === 'ndjson' ? undefined : `must be 'raw' or 'ndjson', got ${describe(value)}`
}

/**
 * Per-call options merged over the plugin's defaults. `fromFunction`: the
 * source is a function, the only kind that can start where a resumed request
 * asks. Throws FaultlineStreamOptionError.
 */
export function resolveStreamOptions (options: unknown, defaults: StreamDefaults, fromFunction: boolean): ResolvedStreamOptions {
  if (options === undefined) return { type: undefined, framing: 'raw', idleTimeout: defaults.idleTimeout }
  if (options === null || typeof options !== 'object') throw new FaultlineStreamOptionError('options', `must be an object, got ${describe(options)}`)
  const { type, framing, idleTimeout, compress, etag, length, id } = options as StreamSafeOptions & { etag?: unknown, length?: unknown, id?: unknown }
  if (type !== undefined && (typeof type !== 'string' || !HEADER_VALUE.test(type))) {
    throw new FaultlineStreamOptionError('type', `must be a non-empty content type without control characters, got ${describe(type)}`)
  }
  const badFraming = framing === undefined ? undefined : whyInvalidFraming(framing)
  if (badFraming !== undefined) throw new FaultlineStreamOptionError('framing', badFraming)
  const badIdle = idleTimeout === undefined ? undefined : whyInvalidMs(idleTimeout, 0, ' (off)')
  if (badIdle !== undefined) throw new FaultlineStreamOptionError('idleTimeout', badIdle)
  if (compress !== undefined && typeof compress !== 'boolean') throw new FaultlineStreamOptionError('compress', `must be a boolean, got ${describe(compress)}`)
  const resolvedFraming = framing ?? 'raw'
  return {
    type,
    framing: resolvedFraming,
    idleTimeout: idleTimeout ?? defaults.idleTimeout,
    compress,
    resumable: resumableOption(etag, length, resolvedFraming, fromFunction),
    id: idOption(id, resolvedFraming, fromFunction)
  }
}

/** `etag` + `length`, checked: both or neither, raw framing, a function source, a strong tag, a size. */
function resumableOption (etag: unknown, length: unknown, framing: StreamFraming, fromFunction: boolean): Resumable | undefined {
  if (etag === undefined && length === undefined) return undefined
  const option = etag === undefined ? 'length' : 'etag'
  if (etag === undefined || length === undefined) {
    throw new FaultlineStreamOptionError(option, 'give etag and length together: a Range request needs both the entity-tag and the size in bytes')
  }
  if (framing !== 'raw') throw new FaultlineStreamOptionError(option, 'byte ranges are for raw framing; an ndjson stream resumes with the id option (Last-Event-ID)')
  if (!fromFunction) {
    throw new FaultlineStreamOptionError(option, 'needs a source function (signal, { offset }) => stream, so that a Range request can start the source at its offset')
  }
  if (isWeakEtag(etag)) {
    throw new FaultlineStreamOptionError('etag', `a weak entity-tag cannot validate byte ranges (${describe(etag)}): If-Range uses strong comparison only (RFC 9110), since a weak tag promises equivalent content, not identical bytes; give a strong tag that changes whenever a byte does`)
  }
  const strong = strongEtag(etag)
  if (strong === undefined) {
    throw new FaultlineStreamOptionError('etag', `must be a strong entity-tag ("v1") or its characters (visible ASCII, no quote, no space), got ${describe(etag)}`)
  }
  if (typeof length !== 'number' || !Number.isSafeInteger(length) || length < 0) {
    throw new FaultlineStreamOptionError('length', `must be the size in bytes, a non-negative safe integer, got ${describe(length)}`)
  }
  return { etag: strong, length }
}

/** `id`, checked: a function, ndjson framing, a function source (which gets `lastEventId`). */
function idOption (id: unknown, framing: StreamFraming, fromFunction: boolean): RecordId | undefined {
  if (id === undefined) return undefined
  if (typeof id !== 'function') throw new FaultlineStreamOptionError('id', `must be a function (item, index) => string, got ${describe(id)}`)
  if (framing !== 'ndjson') throw new FaultlineStreamOptionError('id', "record ids are for framing: 'ndjson'; a raw stream resumes with etag and length (Range)")
  if (!fromFunction) {
    throw new FaultlineStreamOptionError('id', 'needs a source function (signal, { lastEventId }) => stream, so that a resumed request can start after the last record the client received')
  }
  return id as RecordId
}

/** Whether `value` has a method `key`. Never throws: a hostile getter means "no". */
function hasMethod (value: unknown, key: string | symbol): boolean {
  if (typeof value !== 'object' || value === null) return false
  try {
    return typeof (value as Record<string | symbol, unknown>)[key] === 'function'
  } catch {
    return false
  }
}

/** A Node Readable: pumped with its own events, the way `pipe` does it. */
export function isNodeReadable (value: unknown): value is Readable {
  return hasMethod(value, 'on') && hasMethod(value, 'read') && hasMethod(value, 'pause') &&
    hasMethod(value, 'resume') && hasMethod(value, 'destroy')
}

/** Anything with `Symbol.asyncIterator`, except a Readable (see isNodeReadable). */
export function isAsyncIterable (value: unknown): value is AsyncIterable<unknown> {
  return hasMethod(value, Symbol.asyncIterator)
}

/** The error for a value that is not a source, with a hint for the usual mistakes. */
export function invalidSource (value: unknown, fromFunction: boolean): InstanceType<typeof FaultlineStreamSourceError> {
  const what = fromFunction ? 'the source function returned' : 'the source is'
  let hint = 'expected a Readable, an async iterable, or a function (signal) => either'
  if (typeof value === 'string' || value instanceof Uint8Array) hint = 'use reply.send() for a complete body'
  else if (hasMethod(value, Symbol.iterator)) hint = 'wrap a synchronous iterable with Readable.from()'
  else if (hasMethod(value, 'pipe')) hint = 'wrap an old-style stream with new Readable().wrap(stream)'
  return new FaultlineStreamSourceError(`${what} ${describe(value)}, not a stream source; ${hint}`)
}

/** A raw chunk as bytes to write. Throws FaultlineStreamChunkError for anything else. */
export function rawChunk (chunk: unknown, index: number): StreamChunk {
  if (typeof chunk === 'string' || chunk instanceof Uint8Array) return chunk
  throw new FaultlineStreamChunkError(`raw framing writes strings and Buffers, but chunk ${index} is ${describe(chunk)}; use framing: 'ndjson' for objects`)
}

/**
 * A source's failure as a fault. The source is not the client: a "peer went
 * away" error from it (ECONNRESET, premature close, an AbortError) means its
 * upstream failed, so it becomes a 502, not a client abort. When the source
 * was still being opened (the Promise from a source function rejected), an
 * error without a status of its own is a failed upstream connect: 502 too.
 */
export function sourceFault (err: unknown, opening: boolean): Fault {
  const fault = toFault(err)
  if (isFault(err)) return fault
  if (isClientAbort(fault)) return new BadGatewayError('The stream source failed: its peer closed the connection', { cause: err })
  if (opening && fault.status === 500 && carriedStatus(err) === undefined) return new BadGatewayError('The stream source could not be opened', { cause: err })
  return fault
}
