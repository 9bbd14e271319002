import type { Readable } from 'node:stream'
import { BadGatewayError, describe, isFault, type Fault } from './fault.js'
import { carriedStatus, toFault } from './normalize.js'
import { FaultlineStreamChunkError, FaultlineStreamOptionError, FaultlineStreamSourceError } from './errors.js'
import { whyInvalidMs } from './options.js'
import { isClientAbort } from './report.js'

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

/**
 * A stream source: the stream itself, or a function that opens it. The
 * function gets a signal that aborts when the stream stops early (client gone,
 * failure, idle timeout) and may return a Promise (e.g. an upstream fetch).
 */
export type StreamSource<T = unknown> =
  | StreamSourceValue<T>
  | ((signal: AbortSignal) => StreamSourceValue<T> | PromiseLike<StreamSourceValue<T>>)

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

export interface ResolvedStreamOptions {
  type: string | undefined
  framing: StreamFraming
  idleTimeout: number
  /** Undefined: the plugin's default. */
  compress?: boolean | undefined
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

/** Per-call options merged over the plugin's defaults. Throws FaultlineStreamOptionError. */
export function resolveStreamOptions (options: unknown, defaults: StreamDefaults): ResolvedStreamOptions {
  if (options === undefined) return { type: undefined, framing: 'raw', idleTimeout: defaults.idleTimeout }
  if (options === null || typeof options !== 'object') throw new FaultlineStreamOptionError('options', `must be an object, got ${describe(options)}`)
  const { type, framing, idleTimeout, compress } = options as StreamSafeOptions
  if (type !== undefined && (typeof type !== 'string' || !HEADER_VALUE.test(type))) {
    throw new FaultlineStreamOptionError('type', `must be a non-empty content type without control characters, got ${describe(type)}`)
  }
  const badFraming = framing === undefined ? undefined : whyInvalidFraming(framing)
  if (badFraming !== undefined) throw new FaultlineStreamOptionError('framing', badFraming)
  const badIdle = idleTimeout === undefined ? undefined : whyInvalidMs(idleTimeout, 0, ' (off)')
  if (badIdle !== undefined) throw new FaultlineStreamOptionError('idleTimeout', badIdle)
  if (compress !== undefined && typeof compress !== 'boolean') throw new FaultlineStreamOptionError('compress', `must be a boolean, got ${describe(compress)}`)
  return { type, framing: framing ?? 'raw', idleTimeout: idleTimeout ?? defaults.idleTimeout, compress }
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
