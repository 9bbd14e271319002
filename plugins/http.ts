import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { NotFoundError, faultCatalog, type CatalogEntry, type Fault } from '../lib/fault.js'
import { toFault } from '../lib/normalize.js'
import { toProblem, type ProblemDetails } from '../lib/problem.js'
import { stringifyProblem } from '../lib/problem-json.js'
import { createReport, LOG_LEVELS, type FaultContext, type FaultReporter, type LogLevels, type Phase, type Transport } from '../lib/report.js'
import { FaultlineInvalidOptionError } from '../lib/errors.js'
import { truncateResponse } from '../lib/truncate.js'
import { invalidHeaderNames } from '../lib/headers.js'

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
   * The response header that carries the request id on problem responses and
   * streamed responses (`reply.streamSafe`, SSE), so a client can quote it
   * even for a body cut mid-way; `false` turns it off. Default: `x-request-id`.
   */
  requestIdHeader?: string | false
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
  /** Sets the request id header (option `requestIdHeader`) on `reply`, unless it is turned off. */
  tagRequestId: (reply: FastifyReply) => void
}

declare module 'fastify' {
  interface FastifyInstance {
    faultline: Faultline
  }
}

const PLUGIN = 'faultline-http'
const PROBLEM_TYPE = 'application/problem+json; charset=utf-8'

/** `logLevels`, or DESIGN's `logLevel` when it is an object (a string `logLevel` is Fastify's own register option). */
function levelsOption (opts: FaultlineHttpOptions & { logLevel?: unknown }): { name: string, value: unknown } {
  const legacy = opts.logLevel !== null && typeof opts.logLevel === 'object' ? opts.logLevel : undefined
  if (opts.logLevels !== undefined && legacy !== undefined) {
    throw new FaultlineInvalidOptionError(PLUGIN, 'logLevel', 'give either logLevels or logLevel, not both')
  }
  return opts.logLevels !== undefined ? { name: 'logLevels', value: opts.logLevels } : { name: 'logLevel', value: legacy }
}

// An HTTP field name (RFC 9110 token).
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}$/

function validate (opts: FaultlineHttpOptions): { reporters: FaultReporter[], logLevels: LogLevels | undefined } {
  if (opts === null || typeof opts !== 'object') throw new FaultlineInvalidOptionError(PLUGIN, 'options', 'must be an object')
  const { onFault, typeBase, debug, notFound } = opts
  const { name: levelsName, value: logLevel } = levelsOption(opts)
  const reporters = onFault === undefined ? [] : Array.isArray(onFault) ? [...onFault] : [onFault]
  for (const r of reporters) {
    if (typeof r !== 'function') throw new FaultlineInvalidOptionError(PLUGIN, 'onFault', 'must be a function or an array of functions')
  }
  if (typeBase !== undefined && (typeof typeBase !== 'string' || typeBase === '' || /[\s"<>\\^`{|}]/.test(typeBase))) {
    throw new FaultlineInvalidOptionError(PLUGIN, 'typeBase', 'must be a non-empty URI prefix, e.g. "https://errors.example.com/"')
  }
  if (debug !== undefined && typeof debug !== 'boolean') throw new FaultlineInvalidOptionError(PLUGIN, 'debug', 'must be a boolean')
  if (notFound !== undefined && typeof notFound !== 'boolean') throw new FaultlineInvalidOptionError(PLUGIN, 'notFound', 'must be a boolean')
  const { requestIdHeader } = opts
  if (requestIdHeader !== undefined && requestIdHeader !== false && (typeof requestIdHeader !== 'string' || !HEADER_NAME.test(requestIdHeader))) {
    throw new FaultlineInvalidOptionError(PLUGIN, 'requestIdHeader', 'must be a header name such as "x-request-id", or false')
  }
  if (logLevel !== undefined) {
    if (logLevel === null || typeof logLevel !== 'object' || Array.isArray(logLevel)) {
      throw new FaultlineInvalidOptionError(PLUGIN, levelsName, 'must be an object such as { "4xx": "info", "5xx": "error", clientAbort: "debug" }')
    }
    for (const [key, level] of Object.entries(logLevel)) {
      if (!LOG_LEVELS.includes(level as never)) {
        throw new FaultlineInvalidOptionError(PLUGIN, `${levelsName}.${key}`, `must be one of ${LOG_LEVELS.join(', ')}`)
      }
    }
  }
  return { reporters, logLevels: logLevel as LogLevels | undefined }
}

/** The request path without its query string: query strings may carry tokens. */
function instanceOf (request: FastifyRequest): string {
  const url = request.url
  const q = url.indexOf('?')
  return q === -1 ? url : url.slice(0, q)
}

async function faultlineHttp_ (fastify: FastifyInstance, opts: FaultlineHttpOptions): Promise<void> {
  const { reporters, logLevels } = validate(opts)
  const { typeBase } = opts
  const debug = opts.debug === true
  if (debug && process.env.NODE_ENV === 'production') {
    // debug sends stacks, causes and internal messages to every client: never on by accident.
    fastify.log.warn({ plugin: PLUGIN }, `${PLUGIN}: debug is on while NODE_ENV=production: every problem response carries internal messages, stacks and causes. Turn it off.`)
  }
  const report = createReport({ reporters, logLevel: logLevels, log: fastify.log })
  const requestIdHeader = opts.requestIdHeader === false ? undefined : (opts.requestIdHeader ?? 'x-request-id').toLowerCase()

  function tagRequestId (reply: FastifyReply): void {
    if (requestIdHeader !== undefined) reply.header(requestIdHeader, reply.request.id)
  }

  function problemFor (fault: Fault, request: FastifyRequest | undefined): ProblemDetails {
    return toProblem(fault, {
      typeBase,
      debug,
      instance: request === undefined ? undefined : instanceOf(request),
      requestId: request?.id
    })
  }

  function sendProblem (reply: FastifyReply, err: unknown, context?: FaultlineSendContext): Fault {
    const fault = toFault(err)
    const request = reply.request
    const headersSent = reply.raw.headersSent
    const ctx: FaultContext<FastifyRequest> = {
      ...context,
      transport: context?.transport ?? 'http',
      phase: headersSent ? 'mid-stream' : (context?.phase ?? 'before-response'),
      request
    }
    if (!headersSent) {
      // A header Node refuses would make writeHead throw and lose the problem: drop it, and say so in the log line.
      const invalid = invalidHeaderNames(reply.getHeaders())
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
    const body = stringifyProblem(problemFor(fault, request))
    reply.code(fault.status)
    if (fault.retryAfter !== undefined) reply.header('retry-after', String(fault.retryAfter))
    tagRequestId(reply)
    reply.header('content-type', PROBLEM_TYPE)
    reply.send(body)
    return fault
  }

  // Other faultline plugins add members (background, sse) by declaration
  // merging and assign them at their own register time.
  const faultline = {
    report (err: unknown, context?: FaultlineReportContext): Fault {
      const fault = toFault(err)
      report(fault, { ...context, transport: context?.transport ?? 'http', phase: context?.phase ?? 'before-response', request: context?.request }, err)
      return fault
    },
    toProblem (err: unknown, request?: FastifyRequest): ProblemDetails {
      return problemFor(toFault(err), request)
    },
    problemJson (err: unknown, request?: FastifyRequest): string {
      return stringifyProblem(problemFor(toFault(err), request))
    },
    sendProblem,
    get catalog (): CatalogEntry[] {
      return faultCatalog()
    },
    tagRequestId
  } satisfies Pick<Faultline, 'report' | 'toProblem' | 'problemJson' | 'sendProblem' | 'catalog' | 'tagRequestId'> as Faultline

  fastify.decorate('faultline', faultline)

  fastify.setErrorHandler(function faultlineErrorHandler (error, request, reply) {
    sendProblem(reply, error)
  })

  if (opts.notFound !== false) {
    fastify.setNotFoundHandler(function faultlineNotFound (request, reply) {
      sendProblem(reply, new NotFoundError(`Route ${request.method}:${instanceOf(request)} not found`))
    })
  }
}

/** The central error handler: every thrown value becomes an RFC 9457 problem+json response. */
export const faultlineHttp = fp(faultlineHttp_, { name: PLUGIN, fastify: '5.x' })
