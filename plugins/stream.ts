import type { OutgoingHttpHeaders } from 'node:http'
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply } from 'fastify'
import { ClientClosedError } from '../lib/fault.js'
import { FaultlineStreamAlreadySentError } from '../lib/errors.js'
import { PluginOptions } from '../lib/options.js'
import { StreamPump, type StreamHost } from '../lib/stream-pump.js'
import { responsePhase } from '../lib/report.js'
import { truncateResponse } from '../lib/truncate.js'
import { CompressingSink, chooseEncoding, type StreamCompression } from '../lib/stream-compress.js'
import {
  resolveStreamOptions,
  type ResolvedStreamOptions, type StreamChunk, type StreamDefaults, type StreamSafeOptions, type StreamSource
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
}

/** `reply.streamSafe()` options for raw framing: the source yields strings and bytes. */
export interface StreamSafeRawOptions extends StreamSafeOptions {
  framing?: 'raw'
}

/** `reply.streamSafe()` options for ndjson framing: the source yields any JSON value. */
export interface StreamSafeNdjsonOptions extends StreamSafeOptions {
  framing: 'ndjson'
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
    streamSafe(source: StreamSource<StreamChunk>, options?: StreamSafeRawOptions): this
    streamSafe(source: StreamSource<unknown>, options: StreamSafeNdjsonOptions): this
  }
}

const PLUGIN = 'faultline-stream'
const DEFAULT_TYPE = { raw: 'application/octet-stream', ndjson: 'application/x-ndjson' } as const

function validate (opts: FaultlineStreamOptions): StreamDefaults & { compress: StreamCompression } {
  const options = new PluginOptions(PLUGIN, opts, ['idleTimeout', 'compress'])
  const compress = options.get('compress') ?? 'auto'
  if (compress !== 'auto' && typeof compress !== 'boolean') throw options.invalid('compress', "must be true, false or 'auto'")
  return { idleTimeout: options.ms('idleTimeout', 0, 0), compress }
}

/** The pump's host for one reply: headers, the central report path and the problem renderer. */
function hostFor (reply: FastifyReply, faultline: Faultline, options: ResolvedStreamOptions, compressing?: CompressingSink): StreamHost {
  const request = reply.request
  const res = reply.raw
  return {
    sink: compressing ?? res,
    commit () {
      if (res.headersSent) throw new FaultlineStreamAlreadySentError()
      const headers = reply.getHeaders()
      headers['content-type'] = options.type ?? headers['content-type'] ?? DEFAULT_TYPE[options.framing]
      delete headers['content-length']
      compressing?.begin(headers as OutgoingHttpHeaders, reply.statusCode)
      res.writeHead(reply.statusCode, headers as OutgoingHttpHeaders)
      // From here on the pump owns the response; Fastify must not answer or log it.
      reply.hijack()
    },
    failBefore (err) {
      const fault = faultline.report(err, { transport: 'stream', phase: 'before-response', request })
      // Through Fastify's error path (onError hooks, the central handler):
      // the same body and, since this fault is already reported, no second log line.
      if (!res.headersSent) reply.send(fault)
    },
    failAfter (err) {
      return faultline.report(err, { transport: 'stream', phase: 'mid-stream', request })
    },
    truncate () {
      if (compressing !== undefined) compressing.truncate()
      else truncateResponse(res)
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

async function faultlineStream_ (fastify: FastifyInstance, opts: FaultlineStreamOptions): Promise<void> {
  const defaults = validate(opts)

  function streamSafe (this: FastifyReply, source: unknown, options?: unknown): FastifyReply {
    const faultline = this.server.faultline
    faultline.tagRequestId(this)
    let resolved: ResolvedStreamOptions
    try {
      resolved = resolveStreamOptions(options, defaults)
    } catch (err) {
      // Bad options are a programmer error: a 500 whose log line says what is wrong.
      hostFor(this, faultline, { type: undefined, framing: 'raw', idleTimeout: defaults.idleTimeout }).failBefore(err)
      return this
    }
    const encoding = chooseEncoding({
      option: resolved.compress ?? defaults.compress,
      compressRegistered: typeof (this as { compress?: unknown }).compress === 'function',
      headers: this.request.headers
    })
    const sink = encoding === undefined ? undefined : new CompressingSink(this.raw, encoding)
    const pump = new StreamPump(hostFor(this, faultline, resolved, sink), { ...resolved, headOnly: this.request.method === 'HEAD' })
    pump.start(source)
    return this
  }

  fastify.decorateReply('streamSafe', streamSafe as FastifyReply['streamSafe'])
}

/** `reply.streamSafe(source, opts?)`: streamed bodies that fail safely before and after the headers. */
export const faultlineStream = fp(faultlineStream_, {
  name: PLUGIN,
  fastify: '5.x',
  dependencies: ['faultline-http']
})
