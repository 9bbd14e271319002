import fp from 'fastify-plugin'
import type {
  FastifyInstance, FastifyReply, FastifyRequest, FastifyBaseLogger, FastifySchema, FastifyTypeProvider,
  FastifyTypeProviderDefault, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerBase,
  RawServerDefault, RouteGenericInterface, RouteOptions, ContextConfigDefault
} from 'fastify'
import { NotFoundError, faultCatalog, type CatalogEntry, type Fault } from '../lib/fault.js'
import { faultResponses, problemSchema, PROBLEM_SCHEMA_ID, type RouteFaults } from '../lib/openapi.js'
import { catalogDocument, catalogMarkdown, type CatalogDocEntry } from '../lib/catalog-doc.js'
import { carriedHeaders, toFault, toFaultForReply } from '../lib/normalize.js'
import { DEFAULT_MAX_DETAILS_BYTES, toProblem, type ProblemDetails, type ProblemOptions } from '../lib/problem.js'
import { prepareProblemSerializer, renderProblem } from '../lib/problem-json.js'
import { createReport, kReported, LOG_LEVELS, responsePhase, type FaultContext, type FaultReporter, type LogLevels, type Phase, type Transport } from '../lib/report.js'
import { isPlainObject, PluginOptions } from '../lib/options.js'
import { truncateResponse } from '../lib/truncate.js'
import { headersToWrite, invalidHeaderNames } from '../lib/headers.js'
import { chainEnd, handFailuresTo } from '../lib/error-chain.js'
import { fallbackHeaders, writeRawResponse } from '../lib/raw-problem.js'
import { h2Stream } from '../lib/h2-response.js'

export interface FaultlineHttpOptions {
  /** One reporter or many, called as `(fault, { transport, phase, request })` after the fault is logged. */
  onFault?: FaultReporter<FastifyRequest> | ReadonlyArray<FaultReporter<FastifyRequest>>
  /** URI prefix for problem `type`, e.g. `https://errors.example.com/`. Default: `about:blank` types. */
  typeBase?: string
  /** Adds the real message, stack and cause chain to every problem body. Development only. */
  debug?: boolean
  /**
   * Log level per class of fault (`4xx`, `5xx`, `clientAbort`) or per fault code.
   * Also accepted as `logLevel` when it is an object; the plural name exists
   * because Fastify's own register options type `logLevel` as a string.
   */
  logLevels?: LogLevels
  /** Install a not-found handler that answers with a `NotFoundError` problem. Default: true. */
  notFound?: boolean
  /**
   * Add `application/problem+json` responses to route schemas (each route's
   * `faults`, plus a 500 `INTERNAL`), for OpenAPI generators. Default: when
   * `@fastify/swagger` is registered before the route is added. Each response
   * schema costs Fastify a compiled serializer per route.
   */
  openapi?: boolean
  /**
   * The response header that carries the request id on problem responses and
   * streamed responses (`reply.streamSafe`, SSE), so a client can quote it
   * even for a body cut mid-way; `false` turns it off. Default: `x-request-id`.
   */
  requestIdHeader?: string | false
  /**
   * The most a fault's `details` may add to a problem (every transport's), in
   * bytes of UTF-8 JSON. Larger details are dropped whole: the problem carries
   * `detailsOmitted: { reason: 'too-large', limit }` instead, and a warning is
   * logged once per fault code. Default: 16384 (16 KiB).
   */
  maxDetailsBytes?: number
}

/** Where a fault happened, for `sendProblem`; extra fields go into the log line. */
export interface FaultlineSendContext {
  transport?: Transport
  phase?: Phase
  [field: string]: unknown
}

/** Where a fault happened, for `report`; extra fields go into the log line. */
export interface FaultlineReportContext extends FaultlineSendContext {
  request?: FastifyRequest | undefined
}

/** `fastify.faultline`: the shared report path and renderers, for the other plugins and for users. */
export interface Faultline {
  /** Adopts `err`, logs it once and calls every reporter. Returns the fault. */
  report: (err: unknown, context?: FaultlineReportContext) => Fault
  /** Adopts `err` and renders it as problem details (redacted as for a client). */
  toProblem: (err: unknown, request?: FastifyRequest) => ProblemDetails
  /** `toProblem` as one line of JSON. */
  problemJson: (err: unknown, request?: FastifyRequest) => string
  /**
   * Reports `err` and, when the headers are not out yet, answers with the
   * problem+json response. When they are out, the response is aborted so the
   * client sees truncation. Returns the fault.
   */
  sendProblem: (reply: FastifyReply, err: unknown, context?: FaultlineSendContext) => Fault
  /** Every fault class defined so far: code, status, title, name. */
  readonly catalog: CatalogEntry[]
  /** The catalog as a docs page: code, status, title, exposed, retryable, close code, routes declaring it. */
  catalogJson: () => CatalogDocEntry[]
  /** `catalogJson()` as a Markdown table. */
  catalogMarkdown: () => string
  /** Sets the request id header (option `requestIdHeader`) on `reply`, unless it is turned off. */
  tagRequestId: (reply: FastifyReply) => void
}

declare module 'fastify' {
  interface FastifyInstance {
    faultline: Faultline
  }
  // The type parameters must repeat Fastify's own, for declaration merging.
  interface RouteShorthandOptions<
    /* eslint-disable @typescript-eslint/no-unused-vars */
    RawServer extends RawServerBase = RawServerDefault,
    RawRequest extends RawRequestDefaultExpression<RawServer> = RawRequestDefaultExpression<RawServer>,
    RawReply extends RawReplyDefaultExpression<RawServer> = RawReplyDefaultExpression<RawServer>,
    RouteGeneric extends RouteGenericInterface = RouteGenericInterface,
    ContextConfig = ContextConfigDefault,
    SchemaCompiler extends FastifySchema = FastifySchema,
    TypeProvider extends FastifyTypeProvider = FastifyTypeProviderDefault,
    Logger extends FastifyBaseLogger = FastifyBaseLogger
    /* eslint-enable @typescript-eslint/no-unused-vars */
  > {
    /**
     * The faults this route may answer with, documented as
     * `application/problem+json` responses (with a 500 `INTERNAL` added);
     * `false`: no problem responses for this route. See docs/openapi.md.
     */
    faults?: RouteFaults
  }
}

const PLUGIN = 'faultline-http'
const PROBLEM_TYPE = 'application/problem+json; charset=utf-8'

// On a reply whose problem is on its way through Fastify's send path (onSend
// hooks): what it carries, so a failure there is recognised as one. A reply
// decorator (null until then), so the error path does not change the shape
// of the reply object: a new property there would make every reply that
// failed a shape of its own for Fastify's code that handles replies.
const kSending = Symbol('faultline.sending')
interface Sending { fault: Fault, transport: Transport }
type SendingReply = FastifyReply & { [kSending]?: Sending | null }

const KNOWN = ['onFault', 'typeBase', 'debug', 'logLevels', 'notFound', 'openapi', 'requestIdHeader', 'maxDetailsBytes']
/** Fault codes whose dropped details were logged, at most this many (codes adopted from thrown errors are open-ended). */
const MAX_OMITTED_CODES = 1000

interface Settings {
  reporters: FaultReporter[]
  logLevels: LogLevels | undefined
  typeBase: string | undefined
  debug: boolean
  notFound: boolean
  openapi: boolean | undefined
  maxDetailsBytes: number
}

/**
 * `logLevels`, or `logLevel` when it is an object: the plural name exists
 * because Fastify reads a string `logLevel` from every plugin's register options.
 */
function levelsOption (options: PluginOptions): { name: string, value: unknown } {
  const single = options.get('logLevel')
  const legacy = single !== null && typeof single === 'object' ? single : undefined
  const plural = options.get('logLevels')
  if (plural !== undefined && legacy !== undefined) throw options.invalid('logLevel', 'give either logLevels or logLevel, not both')
  return plural !== undefined ? { name: 'logLevels', value: plural } : { name: 'logLevel', value: legacy }
}

function validate (opts: FaultlineHttpOptions): Settings {
  const options = new PluginOptions(PLUGIN, opts, KNOWN)
  const reporters = options.functions('onFault') as FaultReporter[]
  const typeBase = options.string('typeBase', /^[^\s"<>\\^`{|}]+$/, 'a non-empty URI prefix, e.g. "https://errors.example.com/"')
  if (options.get('requestIdHeader') !== false) {
    // An HTTP field name (RFC 9110 token), or false.
    options.string('requestIdHeader', /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}$/, 'a header name such as "x-request-id", or false')
  }
  const { name: levelsName, value: logLevel } = levelsOption(options)
  if (logLevel !== undefined) {
    if (!isPlainObject(logLevel)) {
      throw options.invalid(levelsName, 'must be an object such as { "4xx": "info", "5xx": "error", clientAbort: "debug" }')
    }
    for (const [key, level] of Object.entries(logLevel)) {
      if (!LOG_LEVELS.includes(level as never)) throw options.invalid(`${levelsName}.${key}`, `must be one of ${LOG_LEVELS.join(', ')}`)
    }
  }
  return {
    reporters,
    logLevels: logLevel as LogLevels | undefined,
    typeBase,
    debug: options.boolean('debug', false),
    notFound: options.boolean('notFound', true),
    openapi: options.get('openapi') === undefined ? undefined : options.boolean('openapi', false),
    maxDetailsBytes: options.count('maxDetailsBytes', DEFAULT_MAX_DETAILS_BYTES, 'bytes of JSON, e.g. 16384')
  }
}

function setReplyHeader (reply: FastifyReply, name: string, value: string): void {
  reply.header(name, value)
}

function setRecordHeader (headers: Record<string, string>, name: string, value: string): void {
  headers[name.toLowerCase()] = value
}

/** The request path without its query string: query strings may carry tokens. */
function instanceOf (request: FastifyRequest): string {
  const url = request.url
  const q = url.indexOf('?')
  return q === -1 ? url : url.slice(0, q)
}

async function faultlineHttp_ (fastify: FastifyInstance, opts: FaultlineHttpOptions): Promise<void> {
  const { reporters, logLevels, typeBase, debug, notFound, maxDetailsBytes } = validate(opts)
  if (debug && process.env.NODE_ENV === 'production') {
    // debug sends stacks, causes and internal messages to every client: never on by accident.
    fastify.log.warn({ plugin: PLUGIN }, `${PLUGIN}: debug is on while NODE_ENV=production: every problem response carries internal messages, stacks and causes. Turn it off.`)
  }
  prepareProblemSerializer()
  const report = createReport({ reporters, logLevel: logLevels, log: fastify.log })
  const requestIdHeader = opts.requestIdHeader === false ? undefined : (opts.requestIdHeader ?? 'x-request-id').toLowerCase()

  function tagRequestId (reply: FastifyReply): void {
    if (requestIdHeader !== undefined) reply.header(requestIdHeader, reply.request.id)
  }

  const omittedCodes = new Set<string>()
  function onDetailsOmitted (fault: Fault, limit: number): void {
    if (omittedCodes.has(fault.code) || omittedCodes.size >= MAX_OMITTED_CODES) return
    omittedCodes.add(fault.code)
    fastify.log.warn({ plugin: PLUGIN, code: fault.code, maxDetailsBytes: limit },
      `${PLUGIN}: the details of a ${fault.code} fault exceed maxDetailsBytes (${limit} bytes) and are left out of its problems, which carry detailsOmitted instead. Send less, or raise maxDetailsBytes. Logged once per code.`)
  }

  function problemOptions (request: FastifyRequest | undefined): ProblemOptions {
    return {
      typeBase,
      debug,
      maxDetailsBytes,
      onDetailsOmitted,
      instance: request === undefined ? undefined : instanceOf(request),
      requestId: request?.id
    }
  }

  /**
   * The headers a problem response carries of its own, the one list for both
   * ways it goes out (through Fastify, or written directly by the fallback).
   * `set` is a module function, not a closure: nothing allocated per error.
   */
  function problemHeaders<T> (fault: Fault, err: unknown, request: FastifyRequest, target: T, set: (target: T, name: string, value: string) => void): void {
    // Only for faults meant for the client: a server fault's headers may carry secrets.
    if (fault.expose) for (const [name, value] of carriedHeaders(err)) set(target, name, value)
    if (fault.retryAfter !== undefined) set(target, 'retry-after', String(fault.retryAfter))
    if (requestIdHeader !== undefined) set(target, requestIdHeader, request.id)
    set(target, 'content-type', PROBLEM_TYPE)
  }

  function sendProblem (reply: FastifyReply, err: unknown, context?: FaultlineSendContext): Fault {
    const headersSent = reply.raw.headersSent
    // As Fastify: a 4xx/5xx status set on the reply is the status of an error
    // that carries none of its own.
    const fault = headersSent ? toFault(err) : toFaultForReply(err, reply.statusCode)
    const request = reply.request
    // A context's phase holds only while nothing went out.
    const phase = (headersSent ? undefined : context?.phase) ?? responsePhase(headersSent)
    // The error handler gives no context: no copy of one.
    const ctx: FaultContext<FastifyRequest> = context === undefined
      ? { transport: 'http', phase, request }
      : { ...context, transport: context.transport ?? 'http', phase, request }
    if (!headersSent) {
      // A header Node refuses would make writeHead throw and lose the problem: drop it, and say so in the log line.
      const invalid = invalidHeaderNames(headersToWrite(reply))
      if (invalid.length > 0) {
        for (const name of invalid) reply.removeHeader(name)
        ctx.droppedHeaders = invalid
      }
    }
    report(fault, ctx, err)
    if (headersSent) {
      // The status is gone; the only honest signal left is truncation.
      truncateResponse(reply.raw)
      return fault
    }
    const body = renderProblem(fault, problemOptions(request))
    reply.code(fault.status)
    problemHeaders(fault, err, request, reply, setReplyHeader)
    ;(reply as SendingReply)[kSending] = { fault, transport: ctx.transport }
    reply.send(body)
    return fault
  }

  /**
   * The problem on `reply` failed on its way out (an onSend hook threw or
   * called `done(err)`), or faultline's handler itself failed before sending
   * it (`sending` undefined: a logger that throws): answer with the problem
   * for that failure, written directly (no hook, so it cannot fail again, and
   * no handler that would leak its message), and report it, unless it only
   * repeats the server fault being sent (a hook that fails on every body).
   * Never throws: after this, Fastify would answer with the message.
   */
  function sendFailed (reply: FastifyReply, err: unknown, sending: Sending | undefined): void {
    const fault = toFault(err)
    const res = reply.raw
    const request = reply.request
    try {
      if (sending === undefined || !repeats(fault, sending.fault)) {
        report(fault, { transport: sending?.transport ?? 'http', phase: responsePhase(res.headersSent), request, problemFallback: true }, err)
      }
    } catch {
      // The report path failed (its logger threw): the client still gets its answer.
    }
    if (res.headersSent) {
      // A hook wrote the head itself before it failed.
      truncateResponse(res)
      return
    }
    if (res.writableEnded || res.destroyed) return
    const body = renderProblem(fault, problemOptions(request))
    const own: Record<string, string> = { 'content-length': String(Buffer.byteLength(body)) }
    problemHeaders(fault, err, request, own, setRecordHeader)
    const headers = fallbackHeaders(reply.getHeaders(), own, h2Stream(res) !== undefined)
    writeRawResponse(res, fault.status, headers, body, request.method === 'HEAD')
  }

  // The last handler of faultline's own send path: after it, Fastify's would answer a hook's failure with its message.
  const fallbackHandler = chainEnd(function faultlineSendFailed (error, _request, reply: SendingReply) {
    sendFailed(reply, error, reply[kSending] ?? undefined)
  })

  // Routes by the codes their `faults` declare, for the catalog page.
  const routesByCode = new Map<string, string[]>()

  // Other faultline plugins add members (background, sse) by declaration
  // merging and assign them at their own register time.
  const faultline = {
    report (err: unknown, context?: FaultlineReportContext): Fault {
      const fault = toFault(err)
      report(fault, { ...context, transport: context?.transport ?? 'http', phase: context?.phase ?? 'before-response', request: context?.request }, err)
      return fault
    },
    toProblem (err: unknown, request?: FastifyRequest): ProblemDetails {
      return toProblem(toFault(err), problemOptions(request))
    },
    problemJson (err: unknown, request?: FastifyRequest): string {
      return renderProblem(toFault(err), problemOptions(request))
    },
    sendProblem,
    get catalog (): CatalogEntry[] {
      return faultCatalog()
    },
    catalogJson: () => catalogDocument(faultCatalog(), routesByCode),
    catalogMarkdown: () => catalogMarkdown(catalogDocument(faultCatalog(), routesByCode)),
    tagRequestId
  } satisfies Pick<Faultline, 'report' | 'toProblem' | 'problemJson' | 'sendProblem' | 'catalog' | 'catalogJson' | 'catalogMarkdown' | 'tagRequestId'> as Faultline

  fastify.decorate('faultline', faultline)
  // The report path's per-request dedupe memory, in a slot every request has.
  fastify.decorateRequest(kReported, null)
  fastify.decorateReply(kSending, null)

  // OpenAPI: each route's `faults` become problem responses (lib/openapi.ts).
  // faultline sends problem bodies as strings, so these schemas never
  // serialize them: they only describe them.
  if (fastify.getSchema(PROBLEM_SCHEMA_ID) === undefined) fastify.addSchema(problemSchema())
  fastify.addHook('onRoute', function faultlineRoute (route: RouteOptions & { faults?: unknown }) {
    const enabled = opts.openapi ?? this.hasPlugin('@fastify/swagger')
    if (route.faults === undefined && !enabled) return
    const label = `${String(route.method)} ${route.url}`
    const { responses, declared } = faultResponses({ faults: route.faults, existing: route.schema?.response, route: label, plugin: PLUGIN })
    if (route.method !== 'HEAD') {
      for (const cls of declared) {
        const routes = routesByCode.get(cls.code) ?? []
        if (!routes.includes(label)) routes.push(label)
        routesByCode.set(cls.code, routes)
      }
    }
    // A new schema object: the caller's may be shared by other routes (and by this GET's HEAD route).
    if (enabled && Object.keys(responses).length > 0) {
      route.schema = { ...route.schema, response: { ...(route.schema?.response as object | undefined), ...responses } }
    }
  })

  fastify.setErrorHandler(function faultlineErrorHandler (error, request, reply) {
    // A problem sent outside an error handler (not-found, a stream before its
    // first byte, a user's handler) whose send failed: Fastify brings that here.
    const sending = (reply as SendingReply)[kSending]
    if (sending != null) {
      sendFailed(reply, error, sending)
      return
    }
    handFailuresTo(reply, fallbackHandler)
    sendProblem(reply, error)
  })

  if (notFound) {
    fastify.setNotFoundHandler(function faultlineNotFound (request, reply) {
      sendProblem(reply, new NotFoundError(`Route ${request.method}:${instanceOf(request)} not found`))
    })
  }
}

/** Whether `fault` is the server fault being sent, again: the same failure, already reported. */
function repeats (fault: Fault, sending: Fault): boolean {
  return sending.status >= 500 && fault.code === sending.code && fault.name === sending.name && fault.message === sending.message
}

/** The central error handler: every thrown value becomes an RFC 9457 problem+json response. */
export const faultlineHttp = fp(faultlineHttp_, { name: PLUGIN, fastify: '5.x' })
