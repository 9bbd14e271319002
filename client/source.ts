// The one retry loop every reader shares: request -> read -> on a retryable
// fault ask the policy -> the next request. What that next request is (the
// same one, or one that resumes where the stream broke) is each reader's
// `next`, in one function, so resuming is one small piece per reader.
import { isFault } from '../lib/fault.js'
import { FaultlineInvalidOptionError } from '../lib/errors.js'
import { connectionLost, faultFromResponse, DEFAULT_REQUEST_ID_HEADER } from './response.js'
import { resolveRetry, retryDelay, shouldRetry, wait, type RetryOption } from './retry.js'

/** What a reader reads: a `Response` (read once, never retried) or a URL (fetched, so it can be retried and resumed). */
export type ReadSource = Response | string | URL

type Fetch = (input: string | URL, init?: RequestInit) => Promise<Response>

export interface ReadOptions {
  /** The fetch to use for a URL source. Default: the global `fetch`. */
  fetch?: Fetch
  /** Request options for a URL source (method, headers, credentials, …). */
  init?: RequestInit
  /** Cancels the request, the waits between retries and the reads, at once; the iteration throws the signal's reason. */
  signal?: AbortSignal
  /** The retry policy; `false` turns retries off. Default: `{ attempts: 5, baseDelay: 250, maxDelay: 30000 }`. */
  retry?: RetryOption
  /** The response header with the server's request id (faultlineHttp's `requestIdHeader`); `false` to ignore it. Default: `x-request-id`. */
  requestIdHeader?: string | false
}

/** Per-read context a reader gets with each response. */
export interface ReadContext {
  readonly signal: AbortSignal | undefined
  /** The header name to quote the request id from, if any. */
  readonly requestIdHeader: string | undefined
}

/** One reader's part in the loop. */
export interface Reader<T> {
  /**
   * The request for the next attempt, after a retryable fault: `init` as it
   * is, `init` with what resuming needs (a header), or `undefined` when the
   * stream cannot go on from where it stopped (the fault is thrown then).
   */
  next: (init: RequestInit) => RequestInit | undefined
  /** Reads one 2xx response and yields its items; throws a fault when it fails. */
  read: (response: Response, context: ReadContext) => AsyncIterable<T>
}

const WHERE = 'fastify-faultline/client'

function isUrl (source: unknown): source is string | URL {
  return typeof source === 'string' || source instanceof URL
}

/** Checks the options up front, so a mistake throws at the call, not at the first read. */
function resolveOptions (source: unknown, options: ReadOptions): { fetch: Fetch | undefined, requestIdHeader: string | undefined } {
  if (options === null || typeof options !== 'object') throw new FaultlineInvalidOptionError(WHERE, 'options', 'must be an object')
  resolveRetry(options.retry)
  if (options.fetch !== undefined && typeof options.fetch !== 'function') throw new FaultlineInvalidOptionError(WHERE, 'fetch', 'must be a fetch function')
  const header = options.requestIdHeader
  if (header !== undefined && header !== false && (typeof header !== 'string' || header === '')) {
    throw new FaultlineInvalidOptionError(WHERE, 'requestIdHeader', 'must be a header name or false')
  }
  if (!isUrl(source) && (source === null || typeof source !== 'object' || !('status' in source) || !('body' in source))) {
    throw new FaultlineInvalidOptionError(WHERE, 'source', 'must be a Response, a URL string or a URL')
  }
  return {
    fetch: options.fetch ?? (globalThis.fetch as Fetch | undefined),
    requestIdHeader: header === false ? undefined : header ?? DEFAULT_REQUEST_ID_HEADER
  }
}

/**
 * Reads `source` with `reader`, retrying retryable faults of a URL source as
 * the policy says. Each item read resets the count of attempts: the policy
 * bounds retries in a row that made no progress.
 */
export function readWith<T> (source: ReadSource, options: ReadOptions, reader: Reader<T>): AsyncGenerator<T, void, undefined> {
  const resolved = resolveOptions(source, options)
  return loop(source, options, reader, resolved.fetch, resolved.requestIdHeader)
}

async function * loop<T> (
  source: ReadSource, options: ReadOptions, reader: Reader<T>, fetch: Fetch | undefined, requestIdHeader: string | undefined
): AsyncGenerator<T, void, undefined> {
  const { retry } = options
  const signal = options.signal ?? options.init?.signal ?? undefined
  const context: ReadContext = { signal, requestIdHeader }
  let init: RequestInit = signal === undefined ? { ...options.init } : { ...options.init, signal }
  let response = isUrl(source) ? undefined : source
  let attempt = 0
  for (;;) {
    try {
      signal?.throwIfAborted()
      response ??= await open(fetch, source as string | URL, init, signal)
      const fault = await faultFromResponse(response)
      if (fault !== undefined) throw fault
      for await (const item of reader.read(response, context)) {
        attempt = 0
        yield item
      }
      return
    } catch (err) {
      if (signal?.aborted === true) throw signal.reason
      if (!isFault(err) || !isUrl(source) || !shouldRetry(err, attempt, retry)) throw err
      const next = reader.next(init)
      if (next === undefined) throw err
      await wait(retryDelay(err, attempt, retry), signal)
      attempt++
      init = next
      response = undefined
    }
  }
}

async function open (fetch: Fetch | undefined, url: string | URL, init: RequestInit, signal: AbortSignal | undefined): Promise<Response> {
  if (fetch === undefined) throw new FaultlineInvalidOptionError(WHERE, 'fetch', 'no global fetch here: pass options.fetch')
  try {
    return await fetch(url, init)
  } catch (err) {
    if (signal?.aborted === true) throw signal.reason
    throw connectionLost(err)
  }
}

/** `init` with one more request header (the caller's own headers kept). */
export function withHeader (init: RequestInit, name: string, value: string): RequestInit {
  const headers = new Headers(init.headers)
  headers.set(name, value)
  return { ...init, headers }
}
