import type { OutgoingHttpHeaders } from 'node:http'
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply } from 'fastify'
import { ClientClosedError, RangeNotSatisfiableError, ServerShutdownError } from '../lib/fault.js'
import { FaultlineStreamAlreadySentError } from '../lib/errors.js'
import { PluginOptions } from '../lib/options.js'
import { StreamPump, type EndContext, type ExpectedBytes, type StreamHost } from '../lib/stream-pump.js'
import { responsePhase } from '../lib/report.js'
import { contentRange, rangeFor, type RangePlan } from '../lib/range.js'
import { TRUNCATE_GRACE_MS, cutIfStuck, truncateResponse } from '../lib/truncate.js'
import { CompressingSink, chooseEncoding, type StreamCompression } from '../lib/stream-compress.js'
import {
  resolveStreamOptions,
  type RecordId, type ResolvedStreamOptions, type StreamChunk, type StreamDefaults, type StreamResume,
  type StreamSafeOptions, type StreamSource, type StreamSourceFunction
} from '../lib/stream-source.js'
import type { Faultline } from './http.js'

export interface FaultlineStreamOptions {
  /** Default `idleTimeout` (ms) for every `reply.streamSafe()` call; 0 (the default) turns it off. */
  idleTimeout?: number
  /**
   * Compress streamed bodies for clients that accept gzip or brotli, with a
   * flush after every record and chunk. `'auto'` (the default): when
   * @fastify/compress is active on the route; `true`: always; `false`: never.
   * A call's own `compress` option wins.
   */
  compress?: StreamCompression
  /**
   * On `fastify.close()`, how long (ms) in-flight streams may take to finish
   * before they end with a retryable `ServerShutdownError` (ndjson: its error
   * record; raw: truncation). 0 ends them at once. Default: 5000.
   */
  closeTimeout?: number
}

/** `reply.streamSafe()` options for raw framing: the source yields strings and bytes. */
export interface StreamSafeRawOptions extends StreamSafeOptions {
  framing?: 'raw'
}

/**
 * A resumable raw stream: `Accept-Ranges: bytes`, `ETag`, and single-range
 * requests answered with 206 (the source function gets the `offset`).
 */
export interface StreamSafeResumableOptions extends StreamSafeRawOptions {
  /** A strong entity-tag that changes whenever any byte does (`"v1"`, or `v1`, quoted for you). Weak tags are refused. */
  etag: string
  /** The size of the whole body in bytes; the source must yield exactly that many from offset 0. */
  length: number
}

/** `reply.streamSafe()` options for ndjson framing: the source yields any JSON value. */
export interface StreamSafeNdjsonOptions extends StreamSafeOptions {
  framing: 'ndjson'
}

/** ndjson framing with record ids: a resumed request (`Last-Event-ID`) reaches the source function as `lastEventId`. */
export interface StreamSafeNdjsonIdOptions<T = unknown> extends StreamSafeNdjsonOptions {
  /** The id of each data record, e.g. its row key: a string of visible ASCII, at most 1024 characters. */
  id: RecordId<T>
}

declare module 'fastify' {
  interface FastifyReply {
    /**
     * Streams `source` as the response body and fails safely. A failure
     * before the first byte is an ordinary problem+json response; after it,
     * raw framing truncates the response (the client sees an incomplete
     * body, never a clean end) and ndjson framing ends with an error record.
     * A client that leaves stops the source at once. Returns the reply:
     * `return reply.streamSafe(…)` from an async handler.
     */
    streamSafe<T>(source: StreamSourceFunction<T>, options: StreamSafeNdjsonIdOptions<T>): this
    streamSafe(source: StreamSource<StreamChunk>, options?: StreamSafeRawOptions): this
    streamSafe(source: StreamSourceFunction<StreamChunk>, options: StreamSafeResumableOptions): this
    streamSafe(source: StreamSource<unknown>, options: StreamSafeNdjsonOptions): this
  }
}

const PLUGIN = 'faultline-stream'
const DEFAULT_TYPE = { raw: 'application/octet-stream', ndjson: 'application/x-ndjson' } as const
const DEFAULT_CLOSE_TIMEOUT = 5000
// A planned shutdown is expected: logged at info, not as a server error with a stack.
const SHUTDOWN: EndContext = Object.freeze({ reason: 'shutdown', level: 'info' as const })

interface Settings extends StreamDefaults {
  compress: StreamCompression
  closeTimeout: number
}

function validate (opts: FaultlineStreamOptions): Settings {
  const options = new PluginOptions(PLUGIN, opts, ['idleTimeout', 'compress', 'closeTimeout'])
  const compress = options.get('compress') ?? 'auto'
  if (compress !== 'auto' && typeof compress !== 'boolean') throw options.invalid('compress', "must be true, false or 'auto'")
  return { idleTimeout: options.ms('idleTimeout', 0, 0), compress, closeTimeout: options.ms('closeTimeout', 0, DEFAULT_CLOSE_TIMEOUT) }
}

/** How one response answers a resumable stream's request: the plan and the bytes it must carry. */
interface Ranged {
  plan: RangePlan & { status: 200 | 206 }
  etag: string
  length: number
}

/** The pump's host for one reply: headers, the central report path and the problem renderer. */
function hostFor (reply: FastifyReply, faultline: Faultline, options: ResolvedStreamOptions, ranged?: Ranged, compressing?: CompressingSink): StreamHost {
  const request = reply.request
  const res = reply.raw
  return {
    sink: compressing ?? res,
    commit () {
      if (res.headersSent) throw new FaultlineStreamAlreadySentError()
      const headers = reply.getHeaders()
      headers['content-type'] = options.type ?? headers['content-type'] ?? DEFAULT_TYPE[options.framing]
      delete headers['content-length']
      let status = reply.statusCode
      if (ranged !== undefined) {
        const { plan, etag, length } = ranged
        headers['accept-ranges'] = 'bytes'
        headers.etag = etag
        headers['content-length'] = String(plan.end - plan.start + 1)
        if (plan.status === 206) {
          status = 206
          headers['content-range'] = contentRange(plan, length)
        }
      }
      compressing?.begin(headers as OutgoingHttpHeaders, status)
      res.writeHead(status, headers as OutgoingHttpHeaders)
      // From here on the pump owns the response; Fastify must not answer or log it.
      reply.hijack()
    },
    failBefore (err, context) {
      const fault = faultline.report(err, { ...context, transport: 'stream', phase: 'before-response', request })
      // Through Fastify's error path (onError hooks, the central handler):
      // the same body and, since this fault is already reported, no second log line.
      if (!res.headersSent) reply.send(fault)
    },
    failAfter (err, context) {
      return faultline.report(err, { ...context, transport: 'stream', phase: 'mid-stream', request })
    },
    truncate () {
      if (compressing !== undefined) compressing.truncate()
      else truncateResponse(res)
    },
    cutIfStuck () {
      cutIfStuck(res)
    },
    clientGone (committed) {
      if (!committed) reply.hijack()
      faultline.report(new ClientClosedError('The client closed the connection before the stream ended'), {
        transport: 'stream', phase: responsePhase(committed), request
      })
    },
    problemJson (fault) {
      return faultline.problemJson(fault, request)
    }
  }
}

/** The request's `Last-Event-ID`, when it has a non-empty one. */
function lastEventIdOf (reply: FastifyReply): string | undefined {
  const value = reply.request.headers['last-event-id']
  return typeof value === 'string' && value !== '' ? value : undefined
}

async function faultlineStream_ (fastify: FastifyInstance, opts: FaultlineStreamOptions): Promise<void> {
  const settings = validate(opts)
  const defaults: StreamDefaults = { idleTimeout: settings.idleTimeout }
  // In-flight streams, until their response closes: what fastify.close() waits for.
  const inflight = new Map<FastifyReply['raw'], StreamPump>()

  function streamSafe (this: FastifyReply, source: unknown, options?: unknown): FastifyReply {
    const faultline = this.server.faultline
    const request = this.request
    faultline.tagRequestId(this)
    let resolved: ResolvedStreamOptions
    try {
      resolved = resolveStreamOptions(options, defaults, typeof source === 'function')
    } catch (err) {
      // Bad options are a programmer error: a 500 whose log line says what is wrong.
      hostFor(this, faultline, { type: undefined, framing: 'raw', idleTimeout: defaults.idleTimeout }).failBefore(err)
      return this
    }
    let ranged: Ranged | undefined
    let expect: ExpectedBytes | undefined
    let resume: StreamResume = { offset: 0, lastEventId: lastEventIdOf(this) }
    if (resolved.resumable !== undefined) {
      const { etag, length } = resolved.resumable
      const plan = rangeFor(request.method, request.headers.range, request.headers['if-range'], etag, length)
      if (plan.status === 416) {
        this.header('content-range', contentRange(plan, length))
        hostFor(this, faultline, resolved).failBefore(new RangeNotSatisfiableError(`The requested range is outside the ${length} bytes of this body`))
        return this
      }
      ranged = { plan, etag, length }
      expect = { offset: plan.start, bytes: plan.end - plan.start + 1, length }
      resume = { offset: plan.start, lastEventId: resume.lastEventId }
    }
    // A resumable body is byte-exact identity: Range counts its bytes, so it is never compressed.
    const encoding = ranged !== undefined
      ? undefined
      : chooseEncoding({
        option: resolved.compress ?? settings.compress,
        compressRegistered: typeof (this as { compress?: unknown }).compress === 'function',
        headers: request.headers
      })
    const sink = encoding === undefined ? undefined : new CompressingSink(this.raw, encoding)
    const pump = new StreamPump(hostFor(this, faultline, resolved, ranged, sink), { ...resolved, expect, headOnly: request.method === 'HEAD' })
    const res = this.raw
    inflight.set(res, pump)
    res.once('close', () => inflight.delete(res))
    pump.start(source, resume)
    return this
  }

  fastify.decorateReply('streamSafe', streamSafe as FastifyReply['streamSafe'])

  // Rolling deploys: streams get closeTimeout to finish, then end with a
  // retryable fault a resuming client takes to another instance; a client
  // that does not read its last bytes is cut after a grace, so close() ends.
  fastify.addHook('preClose', async () => {
    if (inflight.size === 0) return
    if (await allClosed(inflight, settings.closeTimeout)) return
    for (const pump of inflight.values()) {
      pump.stop(new ServerShutdownError('The server is shutting down; resume on another instance'), SHUTDOWN)
    }
    if (await allClosed(inflight, TRUNCATE_GRACE_MS)) return
    for (const res of inflight.keys()) res.destroy()
  })
}

/** Resolves true when every response in `inflight` has closed, false after `ms`. */
async function allClosed (inflight: Map<FastifyReply['raw'], unknown>, ms: number): Promise<boolean> {
  const closing = [...inflight.keys()].map(async res => await new Promise(resolve => res.once('close', resolve)))
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<false>(resolve => { timer = setTimeout(resolve, ms, false) })
  const settled = await Promise.race([Promise.all(closing).then(() => true), expired])
  clearTimeout(timer)
  return settled
}

/** `reply.streamSafe(source, opts?)`: streamed bodies that fail safely before and after the headers. */
export const faultlineStream = fp(faultlineStream_, {
  name: PLUGIN,
  fastify: '5.x',
  dependencies: ['faultline-http']
})
