import zlib from 'node:zlib'
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http'
import type { StreamSink } from './stream-pump.js'
import { truncateResponse, TRUNCATE_GRACE_MS } from './truncate.js'

/** The content codings `reply.streamSafe()` can produce. */
export type StreamEncoding = 'br' | 'gzip'

/** Whether streamed bodies are compressed: `'auto'` when @fastify/compress is active on the route. */
export type StreamCompression = boolean | 'auto'

// Server preference on a tie, as @fastify/compress orders them.
const PREFERENCE: readonly StreamEncoding[] = ['br', 'gzip']
// A header longer than this is not a browser's: ignore it rather than parse it.
const MAX_ACCEPT_ENCODING = 1024
const QVALUE = /^q=(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/

/**
 * The coding to use for a request's `Accept-Encoding`: the acceptable one
 * with the highest q-value (`*` stands for any not named, `x-gzip` for gzip,
 * `q=0` refuses), ties going to brotli; undefined for identity.
 */
export function negotiateEncoding (header: string | string[] | undefined): StreamEncoding | undefined {
  const value = Array.isArray(header) ? header.join(',') : header
  if (value === undefined || value.length > MAX_ACCEPT_ENCODING) return undefined
  const q = new Map<string, number>()
  for (const entry of value.toLowerCase().split(',')) {
    const [rawName, ...params] = entry.split(';')
    const name = rawName!.trim()
    const qParam = params.map(p => p.trim()).find(p => p.startsWith('q='))
    if (qParam !== undefined && !QVALUE.test(qParam)) continue
    q.set(name === 'x-gzip' ? 'gzip' : name, qParam === undefined ? 1 : Number(qParam.slice(2)))
  }
  let best: StreamEncoding | undefined
  let bestQ = 0
  for (const encoding of PREFERENCE) {
    const weight = q.get(encoding) ?? q.get('*') ?? 0
    if (weight > bestQ) {
      best = encoding
      bestQ = weight
    }
  }
  return best
}

// @fastify/compress's default compressible types, plus ndjson and JavaScript;
// never event streams (SSE has its own plugin) nor already-compressed media.
const COMPRESSIBLE = /^text\/(?!event-stream)|[/+](?:x-)?(?:nd)?json(?:;|$)|[/+]xml(?:;|$)|[/+](?:x-)?javascript(?:;|$)|[/+]octet-stream(?:;|$)/i

/** Whether a body of this content type is worth compressing. */
export function isCompressibleType (type: unknown): boolean {
  return typeof type === 'string' && COMPRESSIBLE.test(type)
}

export interface CompressionChoice {
  /** The call's `compress` option, else the plugin's. */
  option: StreamCompression
  /** Whether @fastify/compress is active on this route (its `reply.compress` is set). */
  compressRegistered: boolean
  headers: Record<string, string | string[] | undefined>
}

/** The coding for one `streamSafe()` call, or undefined to stream as is. */
export function chooseEncoding ({ option, compressRegistered, headers }: CompressionChoice): StreamEncoding | undefined {
  if (option === false || (option === 'auto' && !compressRegistered)) return undefined
  // @fastify/compress's opt-out header.
  if (headers['x-no-compression'] !== undefined) return undefined
  return negotiateEncoding(headers['accept-encoding'])
}

/** A compressor that flushes after every write, so each record or chunk reaches the client when written. */
function createCompressor (encoding: StreamEncoding): zlib.Gzip | zlib.BrotliCompress {
  if (encoding === 'gzip') return zlib.createGzip({ flush: zlib.constants.Z_SYNC_FLUSH })
  return zlib.createBrotliCompress({
    flush: zlib.constants.BROTLI_OPERATION_FLUSH,
    // Brotli's default quality (11) is for static assets; @fastify/compress uses 4 for responses.
    params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 4 }
  })
}

function withVary (vary: OutgoingHttpHeaders[string]): string {
  const current = Array.isArray(vary) ? vary.join(', ') : vary === undefined ? '' : String(vary)
  if (current.split(',').some(v => { const name = v.trim().toLowerCase(); return name === 'accept-encoding' || name === '*' })) return current
  return current === '' ? 'accept-encoding' : `${current}, accept-encoding`
}

type Listener = () => void

/**
 * The stream pump's sink for a client that accepts a coding: it writes to the
 * response as is until `begin()` engages the compressor, then through it
 * (backpressure from the response reaches the pump as the compressor's
 * `drain`). Success finishes the compressed stream; `truncate()` never does:
 * the client gets every byte compressed so far, then a body without its end.
 */
export class CompressingSink implements StreamSink {
  private compressor: zlib.Gzip | zlib.BrotliCompress | undefined = undefined
  private readonly drainListeners = new Set<Listener>()

  constructor (private readonly res: ServerResponse, private readonly encoding: StreamEncoding) {}

  get writableEnded (): boolean {
    return this.res.writableEnded
  }

  /**
   * Called with the headers about to be written: engages compression (and
   * says so in `Content-Encoding` and `Vary`) unless the body must go as it
   * is: a range (206, `Content-Range`: offsets count unencoded bytes), a body
   * already encoded, or a content type not worth compressing.
   */
  begin (headers: OutgoingHttpHeaders, status: number): void {
    const encoded = headers['content-encoding']
    if (status === 206 || headers['content-range'] !== undefined || (encoded !== undefined && encoded !== 'identity') ||
      !isCompressibleType(headers['content-type'])) return
    headers['content-encoding'] = this.encoding
    headers.vary = withVary(headers.vary)
    const compressor = createCompressor(this.encoding)
    this.compressor = compressor
    // Compressing memory cannot fail but for lack of memory: then cut the body.
    compressor.on('error', () => { this.res.destroy() })
    compressor.pipe(this.res)
    this.res.once('close', () => { compressor.destroy() })
    for (const listener of this.drainListeners) {
      this.res.off('drain', listener)
      compressor.on('drain', listener)
    }
  }

  write (chunk: string | Uint8Array): boolean {
    return this.compressor === undefined ? this.res.write(chunk) : this.compressor.write(chunk)
  }

  end (chunk?: string | Uint8Array): unknown {
    if (this.compressor === undefined) return this.res.end(chunk)
    return this.compressor.end(chunk)
  }

  on (event: 'close' | 'drain', listener: Listener): unknown {
    if (event === 'close') return this.res.on(event, listener)
    this.drainListeners.add(listener)
    return (this.compressor ?? this.res).on(event, listener)
  }

  off (event: 'close' | 'drain', listener: Listener): unknown {
    if (event === 'close') return this.res.off(event, listener)
    this.drainListeners.delete(listener)
    return (this.compressor ?? this.res).off(event, listener)
  }

  /**
   * Ends the body as a failure: what was written is compressed and sent (once
   * the client takes it, within the grace), then
   * the connection closes with the compressed stream unfinished (no gzip
   * trailer, no final brotli block) and without the terminating chunk.
   */
  truncate (graceMs = TRUNCATE_GRACE_MS): void {
    const compressor = this.compressor
    if (compressor === undefined) {
      truncateResponse(this.res, graceMs)
      return
    }
    const res = this.res
    let cut = false
    const cutNow = (): void => {
      if (cut) return
      cut = true
      clearTimeout(timer)
      // Output the pipe had not moved yet (a client too slow to take it) is
      // dropped with the compressor: the body is cut either way.
      compressor.unpipe(res)
      compressor.destroy()
      truncateResponse(res, graceMs)
    }
    // A client that stopped reading holds the flush back: cut it off after the grace.
    const timer = setTimeout(cutNow, graceMs)
    timer.unref()
    compressor.flush(cutNow)
  }
}
