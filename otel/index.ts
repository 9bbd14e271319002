import {
  trace, metrics, context, SpanKind, SpanStatusCode,
  type Attributes, type Counter, type MeterProvider, type Span, type SpanContext, type Tracer, type TracerProvider
} from '@opentelemetry/api'
import type { FastifyRequest } from 'fastify'
import type { Fault } from '../lib/fault.js'
import type { FaultContext, FaultReporter } from '../lib/report.js'
import { FaultlineInvalidOptionError } from '../lib/errors.js'

// `fastify-faultline/otel`: an onFault reporter that puts each fault on the
// trace and counts it. Only reporters run here, never a hook: an app that
// raises no fault pays nothing. See docs/otel.md.

export interface OtelReporterOptions {
  /** Where spans go. Default: the global tracer provider (`trace.setGlobalTracerProvider`, `provider.register()`). */
  tracerProvider?: TracerProvider
  /** Where the `faultline.faults` counter goes. Default: the global meter provider. */
  meterProvider?: MeterProvider
}

const SCOPE = 'fastify-faultline'
const COUNTER = 'faultline.faults'
const NAME = 'otelReporter'

/** What `request.opentelemetry()` (added by `@fastify/otel`) returns, as far as faultline reads it. */
interface FastifyOtelInfo {
  span?: Span | null
  context?: ReturnType<typeof context.active> | null
}

type OtelRequest = FastifyRequest & { opentelemetry?: () => FastifyOtelInfo }

/** The request's span, and whether `@fastify/otel` made it (it marks every thrown error ERROR). */
interface RequestSpan {
  span: Span
  fastifyOtel: boolean
}

function check (options: unknown): OtelReporterOptions {
  if (options === null || typeof options !== 'object') throw new FaultlineInvalidOptionError(NAME, 'options', 'must be an object')
  const { tracerProvider, meterProvider } = options as OtelReporterOptions
  if (tracerProvider !== undefined && typeof tracerProvider?.getTracer !== 'function') {
    throw new FaultlineInvalidOptionError(NAME, 'tracerProvider', 'must be an OpenTelemetry TracerProvider (with getTracer)')
  }
  if (meterProvider !== undefined && typeof meterProvider?.getMeter !== 'function') {
    throw new FaultlineInvalidOptionError(NAME, 'meterProvider', 'must be an OpenTelemetry MeterProvider (with getMeter)')
  }
  return { tracerProvider, meterProvider }
}

/**
 * An `onFault` reporter for OpenTelemetry:
 *
 * - the fault goes on the request's span (`@fastify/otel`'s, else the active
 *   span) as an `exception` event, with `error.type` = the fault code,
 *   `faultline.transport`, `faultline.phase` and, when the fault decided the
 *   response, `http.response.status_code`. Status ERROR only for 5xx; a
 *   handled 4xx leaves `@fastify/otel`'s request span OK (docs/otel.md says why);
 * - a fault after that span ended (mid-stream) gets a short child span;
 * - a failed background task gets a span of its own, linked to the request's;
 * - WebSocket faults after the upgrade are events on one span per connection;
 * - every fault adds 1 to the counter `faultline.faults` {code, status, transport}.
 */
export function otelReporter (options: OtelReporterOptions = {}): FaultReporter<FastifyRequest> {
  const { tracerProvider, meterProvider } = check(options)
  // The global providers are read when a fault happens, not now: the SDK is
  // often registered after the app's modules are imported.
  let counter: { provider: MeterProvider, counter: Counter } | undefined
  const connections = new WeakMap<object, Span>()

  function tracer (): Tracer {
    return (tracerProvider ?? trace.getTracerProvider()).getTracer(SCOPE)
  }

  function count (fault: Fault, ctx: FaultContext<FastifyRequest>): void {
    const provider = meterProvider ?? metrics.getMeterProvider()
    if (counter?.provider !== provider) {
      counter = {
        provider,
        counter: provider.getMeter(SCOPE).createCounter(COUNTER, { description: 'Faults reported by fastify-faultline', unit: '{fault}' })
      }
    }
    counter.counter.add(1, { code: fault.code, status: fault.status, transport: ctx.transport })
  }

  function background (fault: Fault, ctx: FaultContext<FastifyRequest>): void {
    const parent = requestSpan(ctx.request)?.span.spanContext()
    const task = typeof ctx.task === 'string' ? ctx.task : 'anonymous'
    const span = tracer().startSpan(`faultline.background ${task}`, {
      kind: SpanKind.INTERNAL,
      root: true,
      links: parent === undefined || !validContext(parent) ? [] : [{ context: parent }],
      attributes: { 'faultline.task': task, ...requestIdOf(ctx.request) }
    })
    mark(span, fault, ctx)
    // The task is the operation and it failed, whatever the status.
    span.setStatus({ code: SpanStatusCode.ERROR, message: fault.message })
    span.end()
  }

  function connection (fault: Fault, ctx: FaultContext<FastifyRequest>): void {
    const request = ctx.request!
    let span = connections.get(request)
    if (span === undefined) {
      const parent = requestSpan(request)?.span
      span = tracer().startSpan(`faultline.websocket ${routeOf(request)}`, {
        kind: SpanKind.INTERNAL,
        attributes: { 'faultline.transport': 'websocket', 'http.route': routeOf(request), ...requestIdOf(request) }
      }, parent === undefined ? context.active() : trace.setSpan(context.active(), parent))
      connections.set(request, span)
      endOnClose(request, span)
    }
    mark(span, fault, ctx)
    if (fault.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: fault.message })
  }

  return function otelReport (fault, ctx) {
    count(fault, ctx)
    if (ctx.transport === 'background') return background(fault, ctx)
    if (ctx.transport === 'websocket' && ctx.phase !== 'upgrade' && ctx.request !== undefined) return connection(fault, ctx)
    const found = requestSpan(ctx.request)
    if (found === undefined) return
    const { span, fastifyOtel } = found
    if (span.isRecording()) {
      mark(span, fault, ctx)
      if (fault.status >= 500) {
        span.setStatus({ code: SpanStatusCode.ERROR, message: fault.message })
      } else if (fastifyOtel && decidesStatus(ctx)) {
        // @fastify/otel's onError hook has already set ERROR on this span, and
        // the API ignores a later UNSET: OK is the only status that overrides
        // it. A handled 4xx is the server doing its job (HTTP semconv).
        span.setStatus({ code: SpanStatusCode.OK })
      }
      return
    }
    if (!validContext(span.spanContext()) || (span.spanContext().traceFlags & 1) === 0) return
    // The request's span already ended (a fault mid-stream): a short child span carries it.
    const child = tracer().startSpan(`faultline.${ctx.transport} ${ctx.phase}`, { kind: SpanKind.INTERNAL }, trace.setSpan(context.active(), span))
    mark(child, fault, ctx)
    if (fault.status >= 500) child.setStatus({ code: SpanStatusCode.ERROR, message: fault.message })
    child.end()
  }
}

/** Whether the fault chose the response's status (the client got it as an HTTP problem). */
function decidesStatus (ctx: FaultContext<FastifyRequest>): boolean {
  return ctx.phase === 'before-response' || ctx.phase === 'upgrade'
}

/** The exception event and the attributes every span carrying a fault gets. */
function mark (span: Span, fault: Fault, ctx: FaultContext<FastifyRequest>): void {
  const event: Attributes = {
    'exception.type': fault.code,
    'exception.message': fault.message,
    'faultline.transport': ctx.transport,
    'faultline.phase': ctx.phase,
    'faultline.status': fault.status
  }
  if (typeof fault.stack === 'string') event['exception.stacktrace'] = fault.stack
  span.addEvent('exception', event)
  const attributes: Attributes = {
    'error.type': fault.code,
    'faultline.transport': ctx.transport,
    'faultline.phase': ctx.phase,
    'faultline.status': fault.status
  }
  if (decidesStatus(ctx)) attributes['http.response.status_code'] = fault.status
  span.setAttributes(attributes)
}

function requestSpan (request: OtelRequest | undefined): RequestSpan | undefined {
  const info = fastifyOtelOf(request)
  if (info !== undefined) {
    // After the response, @fastify/otel forgets `span` but keeps the context holding it.
    const span = info.span ?? (info.context == null ? undefined : trace.getSpan(info.context))
    if (span !== undefined) return { span, fastifyOtel: true }
  }
  const active = trace.getActiveSpan()
  return active === undefined ? undefined : { span: active, fastifyOtel: false }
}

function fastifyOtelOf (request: OtelRequest | undefined): FastifyOtelInfo | undefined {
  try {
    if (request === undefined || request === null || typeof request.opentelemetry !== 'function') return undefined
    const info = request.opentelemetry()
    return info !== null && typeof info === 'object' ? info : undefined
  } catch {
    return undefined
  }
}

function validContext (ctx: SpanContext): boolean {
  return trace.isSpanContextValid(ctx)
}

function routeOf (request: FastifyRequest): string {
  return request.routeOptions?.url ?? request.url.split('?', 1)[0]!
}

function requestIdOf (request: FastifyRequest | undefined): Attributes {
  return request?.id === undefined ? {} : { 'faultline.request_id': request.id }
}

/** Ends a connection's span when its socket closes (at once if it already has). */
function endOnClose (request: FastifyRequest, span: Span): void {
  const socket = request.raw.socket as (typeof request.raw.socket | null | undefined)
  if (socket === null || socket === undefined || socket.destroyed) {
    queueMicrotask(() => span.end())
    return
  }
  socket.once('close', () => span.end())
}
