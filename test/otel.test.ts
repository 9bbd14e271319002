import t from 'tap'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import { SpanKind, SpanStatusCode, trace, context, type Span } from '@opentelemetry/api'
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base'
import { MeterProvider, InMemoryMetricExporter, PeriodicExportingMetricReader, AggregationTemporality } from '@opentelemetry/sdk-metrics'
import { FastifyOtelInstrumentation } from '@fastify/otel'
import {
  faultlineHttp, faultlineBackground, faultlineWebsocket, faultlineStream, NotFoundError, ForbiddenError,
  ServiceUnavailableError, BadRequestError, type FaultReporter
} from '../index.js'
import { otelReporter, type OtelReporterOptions } from '../otel/index.js'
import { connect, listen } from './helpers/ws-client.js'
import { guardProcess } from './helpers/guard.js'

guardProcess(t)

// The real SDKs: a global tracer provider with an in-memory exporter (and
// AsyncLocalStorage context), a meter provider with an in-memory exporter.
const spans = new InMemorySpanExporter()
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] })
provider.register()
const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
const reader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 3_600_000 })
const meterProvider = new MeterProvider({ readers: [reader] })
t.teardown(async () => {
  await provider.shutdown()
  await meterProvider.shutdown()
  trace.disable()
  context.disable()
})

/** Counter points of `faultline.faults`, as `code status transport` -> value. */
async function counted (): Promise<Map<string, number>> {
  const { resourceMetrics } = await reader.collect()
  const out = new Map<string, number>()
  for (const scope of resourceMetrics.scopeMetrics) {
    for (const metric of scope.metrics) {
      if (metric.descriptor.name !== 'faultline.faults') continue
      for (const point of metric.dataPoints) {
        const a = point.attributes
        out.set(`${String(a.code)} ${String(a.status)} ${String(a.transport)}`, point.value as number)
      }
    }
  }
  return out
}

interface Built { app: FastifyInstance, instrumentation: FastifyOtelInstrumentation }

async function withFastifyOtel (otelOptions: ConstructorParameters<typeof FastifyOtelInstrumentation>[0] = {}, reporter: OtelReporterOptions = { meterProvider }): Promise<Built> {
  const instrumentation = new FastifyOtelInstrumentation(otelOptions)
  const app = Fastify()
  await app.register(instrumentation.plugin())
  await app.register(faultlineHttp, { onFault: otelReporter(reporter) })
  return { app, instrumentation }
}

function finished (): ReadableSpan[] {
  return spans.getFinishedSpans()
}

function serverSpan (): ReadableSpan {
  const found = finished().filter(s => s.kind === SpanKind.SERVER)
  if (found.length !== 1) throw new Error(`expected one SERVER span, got ${found.map(s => s.name).join(', ')}`)
  return found[0]!
}

function exceptionEvents (span: ReadableSpan): Array<Record<string, unknown>> {
  return span.events.filter(e => e.name === 'exception').map(e => e.attributes ?? {})
}

t.beforeEach(() => { spans.reset() })

t.test('@fastify/otel, a thrown 404: the server span has the exception, error.type NOT_FOUND, and no ERROR status', async t => {
  const { app } = await withFastifyOtel({ recordExceptions: false })
  app.get('/users/:id', async () => { throw new NotFoundError('no user 7') })
  const before = (await counted()).get('NOT_FOUND 404 http') ?? 0
  const res = await app.inject('/users/7')
  t.equal(res.statusCode, 404)
  const span = serverSpan()
  t.equal(span.name, 'request')
  t.not(span.status.code, SpanStatusCode.ERROR)
  t.equal(span.status.code, SpanStatusCode.OK, 'OK: the only status that overrides @fastify/otel\'s ERROR (docs/otel.md)')
  t.match(span.attributes, {
    'error.type': 'NOT_FOUND',
    'http.response.status_code': 404,
    'faultline.transport': 'http',
    'faultline.phase': 'before-response',
    'faultline.status': 404
  })
  const events = exceptionEvents(span)
  t.equal(events.length, 1, 'recorded once (recordExceptions: false leaves it to faultline)')
  t.match(events[0], { 'exception.type': 'NOT_FOUND', 'exception.message': 'no user 7', 'exception.stacktrace': /NotFoundError: no user 7/ })
  t.equal((await counted()).get('NOT_FOUND 404 http'), before + 1)
  await app.close()
})

t.test('@fastify/otel, a thrown 500: the server span is ERROR with error.type INTERNAL', async t => {
  const { app } = await withFastifyOtel({ recordExceptions: false })
  app.get('/boom', async () => { throw new Error('db password=hunter2') })
  const before = (await counted()).get('INTERNAL 500 http') ?? 0
  const res = await app.inject('/boom')
  t.equal(res.statusCode, 500)
  t.notMatch(res.body, /hunter2/)
  const span = serverSpan()
  t.equal(span.status.code, SpanStatusCode.ERROR)
  t.match(span.attributes, { 'error.type': 'INTERNAL', 'http.response.status_code': 500 })
  const events = exceptionEvents(span)
  t.match(events, [{ 'exception.type': 'INTERNAL' }])
  t.equal(events.length, 1, 'recorded once')
  t.equal((await counted()).get('INTERNAL 500 http'), before + 1)
  await app.close()
})

t.test('@fastify/otel with its defaults: still no ERROR for a 4xx; its own exception event stays beside ours', async t => {
  const { app } = await withFastifyOtel()
  app.get('/forbidden', async () => { throw new ForbiddenError('not yours') })
  app.get('/unavailable', async () => { throw new ServiceUnavailableError('later', { retryAfter: 3 }) })
  t.equal((await app.inject('/forbidden')).statusCode, 403)
  let span = serverSpan()
  t.equal(span.status.code, SpanStatusCode.OK)
  t.equal(span.attributes['error.type'], 'FORBIDDEN')
  t.equal(exceptionEvents(span).length, 2, '@fastify/otel records the thrown value too')
  const handler = finished().find(s => s.name.startsWith('handler'))
  t.equal(handler?.status.code, SpanStatusCode.ERROR, 'the handler span ended ERROR before any error handler ran (docs/otel.md)')
  spans.reset()
  t.equal((await app.inject('/unavailable')).statusCode, 503)
  span = serverSpan()
  t.equal(span.status.code, SpanStatusCode.ERROR)
  t.equal(span.attributes['error.type'], 'SERVICE_UNAVAILABLE')
  await app.close()
})

t.test('unknown routes and validation failures are marked too', async t => {
  const { app } = await withFastifyOtel({ recordExceptions: false })
  app.post('/items', { schema: { body: { type: 'object', required: ['name'] } } }, async () => 'ok')
  t.equal((await app.inject('/nowhere')).statusCode, 404)
  let span = serverSpan()
  t.equal(span.attributes['error.type'], 'NOT_FOUND')
  t.not(span.status.code, SpanStatusCode.ERROR)
  spans.reset()
  t.equal((await app.inject({ method: 'POST', url: '/items', payload: {} })).statusCode, 400)
  span = serverSpan()
  t.equal(span.attributes['error.type'], 'VALIDATION')
  t.equal(span.status.code, SpanStatusCode.OK)
  await app.close()
})

t.test('without @fastify/otel: the active span gets the fault; a 4xx leaves its status alone', async t => {
  const app = Fastify()
  await app.register(faultlineHttp, { onFault: otelReporter({ meterProvider }) })
  const tracer = trace.getTracer('test')
  // A SERVER span around the request, as an HTTP server instrumentation would make it.
  app.addHook('onRequest', (request, _reply, done) => {
    const span = tracer.startSpan('GET', { kind: SpanKind.SERVER })
    ;(request as unknown as { span: Span }).span = span
    context.with(trace.setSpan(context.active(), span), done)
  })
  app.addHook('onResponse', (request, _reply, done) => { (request as unknown as { span: Span }).span.end(); done() })
  app.get('/missing', async () => { throw new NotFoundError() })
  app.get('/broken', async () => { throw new Error('x') })
  await app.inject('/missing')
  let span = serverSpan()
  t.equal(span.status.code, SpanStatusCode.UNSET, 'nothing to undo, nothing set')
  t.equal(span.attributes['error.type'], 'NOT_FOUND')
  spans.reset()
  await app.inject('/broken')
  span = serverSpan()
  t.equal(span.status.code, SpanStatusCode.ERROR)
  await app.close()
})

t.test('no span at all: the fault is only counted', async t => {
  const app = Fastify()
  await app.register(faultlineHttp, { onFault: otelReporter({ meterProvider }) })
  app.get('/x', async () => { throw new BadRequestError('no') })
  const before = (await counted()).get('BAD_REQUEST 400 http') ?? 0
  t.equal((await app.inject('/x')).statusCode, 400)
  t.same(finished(), [])
  t.equal((await counted()).get('BAD_REQUEST 400 http'), before + 1)
  await app.close()
})

t.test('a failed background task gets a span of its own, linked to the request span', async t => {
  const { app } = await withFastifyOtel({ recordExceptions: false })
  await app.register(faultlineBackground)
  app.get('/order', async (_req, reply) => {
    reply.background(async function sendReceipt () { throw new ServiceUnavailableError('mail down') })
    reply.background(async function audit () { throw new ForbiddenError('no audit') })
    return { ok: true }
  })
  const before = await counted()
  const res = await app.inject('/order')
  t.equal(res.statusCode, 200)
  await app.faultline.background.idle()
  const request = serverSpan()
  t.equal(request.status.code, SpanStatusCode.UNSET, 'the request itself succeeded')
  const tasks = finished().filter(s => s.name.startsWith('faultline.background'))
  t.same(tasks.map(s => s.name), ['faultline.background sendReceipt', 'faultline.background audit'])
  for (const task of tasks) {
    t.equal(task.kind, SpanKind.INTERNAL)
    t.not(task.spanContext().traceId, request.spanContext().traceId, 'a trace of its own')
    t.equal(task.parentSpanContext, undefined, 'a root span')
    t.same(task.links.map(l => l.context.spanId), [request.spanContext().spanId], 'linked to the request span')
    t.equal(task.status.code, SpanStatusCode.ERROR, 'the task failed, whatever the status')
    t.equal(task.attributes['faultline.request_id'], 'req-1')
    t.equal(task.attributes['faultline.phase'], 'after-response')
    t.notOk('http.response.status_code' in task.attributes, 'the fault decided no response status')
  }
  t.equal(tasks[0]!.attributes['error.type'], 'SERVICE_UNAVAILABLE')
  t.equal(tasks[1]!.attributes['error.type'], 'FORBIDDEN')
  const after = await counted()
  t.equal(after.get('SERVICE_UNAVAILABLE 503 background'), (before.get('SERVICE_UNAVAILABLE 503 background') ?? 0) + 1)
  t.equal(after.get('FORBIDDEN 403 background'), (before.get('FORBIDDEN 403 background') ?? 0) + 1)
  await app.close()
})

t.test('a background task scheduled with no request: an unlinked span', async t => {
  const app = Fastify()
  await app.register(faultlineHttp, { onFault: otelReporter({ meterProvider }) })
  await app.register(faultlineBackground)
  await app.ready()
  app.faultline.background.schedule(() => { throw new Error('cron') })
  await app.faultline.background.idle()
  const [task] = finished()
  t.equal(task?.name, 'faultline.background anonymous')
  t.same(task?.links, [])
  t.equal(task?.attributes['error.type'], 'INTERNAL')
  await app.close()
})

t.test('a stream that fails mid-way: the fault is on the request span, which the stream keeps open', async t => {
  const { app } = await withFastifyOtel({ recordExceptions: false })
  await app.register(faultlineStream)
  app.get('/stream', (_req, reply) => reply.streamSafe((async function * () {
    yield 'first\n'
    throw new ServiceUnavailableError('upstream gone')
  }()), { framing: 'ndjson' }))
  const url = await listen(app)
  const res = await fetch(url.replace('ws:', 'http:') + '/stream')
  t.equal(res.status, 200)
  t.match(await res.text(), /"type":"error"/)
  const span = serverSpan()
  t.equal(span.status.code, SpanStatusCode.ERROR)
  t.match(span.attributes, { 'error.type': 'SERVICE_UNAVAILABLE', 'faultline.transport': 'stream', 'faultline.phase': 'mid-stream', 'http.response.status_code': 200 })
  await app.close()
})

t.test('a fault reported after the request span ended: a short child span of it', async t => {
  const { app } = await withFastifyOtel({ recordExceptions: false })
  let saved: FastifyRequest | undefined
  app.get('/late', async (request) => { saved = request; return 'ok' })
  t.equal((await app.inject('/late')).statusCode, 200)
  const request = serverSpan()
  app.faultline.report(new ServiceUnavailableError('cache refresh failed'), { request: saved, transport: 'http', phase: 'after-response' })
  app.faultline.report(new BadRequestError('late 4xx'), { request: saved, transport: 'http', phase: 'after-response' })
  const children = finished().filter(s => s.name === 'faultline.http after-response')
  t.equal(children.length, 2)
  for (const child of children) {
    t.equal(child.parentSpanContext?.spanId, request.spanContext().spanId)
    t.equal(child.spanContext().traceId, request.spanContext().traceId)
    t.notOk('http.response.status_code' in child.attributes, 'the response went out as 200')
  }
  t.equal(children[0]!.status.code, SpanStatusCode.ERROR)
  t.equal(children[0]!.attributes['error.type'], 'SERVICE_UNAVAILABLE')
  t.equal(children[1]!.status.code, SpanStatusCode.UNSET)
  t.equal(request.status.code, SpanStatusCode.UNSET, 'the ended span is not touched')
  await app.close()
})

t.test('WebSocket faults are events on one span per connection, ended when the socket closes', async t => {
  const instrumentation = new FastifyOtelInstrumentation({ recordExceptions: false })
  const app = Fastify()
  await app.register(instrumentation.plugin())
  await app.register(faultlineHttp, { onFault: otelReporter({ meterProvider }) })
  await app.register(faultlineWebsocket)
  app.get('/chat', { websocket: true }, (socket) => {
    socket.on('message', (data: Buffer) => {
      const text = String(data)
      if (text === 'bad') throw new BadRequestError('bad message')
      if (text === 'crash') throw new Error('handler bug')
      socket.send('echo ' + text)
    })
  })
  const url = await listen(app)
  const before = await counted()
  const client = await connect(url + '/chat')
  client.ws.send('bad')
  t.match(JSON.parse(await client.next()), { type: 'error', error: { code: 'BAD_REQUEST' } })
  client.ws.send('bad')
  await client.next()
  client.ws.send('crash')
  t.equal((await client.closed).code, 1011)
  // The span ends on the socket's close, which can follow the client's by a tick.
  for (let i = 0; i < 200 && !finished().some(s => s.name.startsWith('faultline.websocket')); i++) await new Promise(resolve => setTimeout(resolve, 10))
  const connection = finished().filter(s => s.name === 'faultline.websocket /chat')
  t.equal(connection.length, 1, 'one span for the connection')
  const span = connection[0]!
  t.same(exceptionEvents(span).map(e => [e['exception.type'], e['faultline.phase']]), [
    ['BAD_REQUEST', 'message'], ['BAD_REQUEST', 'message'], ['INTERNAL', 'message']
  ])
  t.equal(span.status.code, SpanStatusCode.ERROR, 'the 1011 close was a server error')
  t.equal(span.attributes['http.route'], '/chat')
  const after = await counted()
  t.equal(after.get('BAD_REQUEST 400 websocket'), (before.get('BAD_REQUEST 400 websocket') ?? 0) + 2)
  await app.close()
})

t.test('explicit providers, and bad options', async t => {
  const own = new InMemorySpanExporter()
  const ownProvider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(own)] })
  const reporter: FaultReporter = otelReporter({ tracerProvider: ownProvider, meterProvider })
  const app = Fastify()
  await app.register(faultlineHttp, { onFault: reporter })
  await app.register(faultlineBackground)
  await app.ready()
  app.faultline.background.schedule(() => { throw new Error('x') }, { name: 'job' })
  await app.faultline.background.idle()
  t.same(own.getFinishedSpans().map(s => s.name), ['faultline.background job'])
  t.same(finished(), [], 'nothing on the global provider')
  await app.close()
  await ownProvider.shutdown()

  t.throws(() => otelReporter(null as never), { code: 'FST_FAULTLINE_INVALID_OPTION', message: /otelReporter: invalid option options: must be an object/ })
  t.throws(() => otelReporter({ tracerProvider: {} as never }), { message: /tracerProvider: must be an OpenTelemetry TracerProvider/ })
  t.throws(() => otelReporter({ meterProvider: 'x' as never }), { message: /meterProvider: must be an OpenTelemetry MeterProvider/ })
})

t.test('with no SDK registered the reporter is a no-op that never throws', async t => {
  trace.disable()
  const app = Fastify()
  await app.register(faultlineHttp, { onFault: otelReporter() })
  app.get('/x', async () => { throw new NotFoundError() })
  t.equal((await app.inject('/x')).statusCode, 404)
  await app.close()
  provider.register()
})

t.test('odd requests and spans: the reporter never throws and never invents a span', async t => {
  const report = otelReporter({ meterProvider })
  const fault = new NotFoundError('x')
  const ctx = (request: unknown, transport = 'http', phase = 'before-response', extra = {}): never => ({ transport, phase, request, ...extra }) as never
  // request.opentelemetry that throws, returns junk, or has no span: the active span (none here) is used.
  report(fault, ctx({ opentelemetry () { throw new Error('trap') } }))
  report(fault, ctx({ opentelemetry: () => null }))
  report(fault, ctx({ opentelemetry: () => ({ span: null, context: null }) }))
  report(fault, ctx({ opentelemetry: 'not a function' }))
  report(fault, ctx(null))
  t.same(finished(), [], 'no span, none made up')

  // A span that is not recording: unsampled or invalid. Nothing is added.
  const unsampled = trace.wrapSpanContext({ traceId: '1'.repeat(32), spanId: '2'.repeat(16), traceFlags: 0 })
  const invalid = trace.wrapSpanContext({ traceId: '0'.repeat(32), spanId: '0'.repeat(16), traceFlags: 1 })
  report(fault, ctx({ opentelemetry: () => ({ span: unsampled }) }))
  report(fault, ctx({ opentelemetry: () => ({ span: invalid }) }))
  report(fault, ctx({ opentelemetry: () => ({ span: invalid }) }, 'background', 'after-response', { task: 42 }))
  const [task] = finished()
  t.equal(task?.name, 'faultline.background anonymous', 'a task name that is not a string')
  t.same(task?.links, [], 'an invalid request span is not linked')
  t.notOk('faultline.request_id' in (task?.attributes ?? {}))
  spans.reset()

  // A WebSocket fault whose socket is already gone (or was never there): the span still ends.
  report(new BadRequestError('late'), ctx({ id: 'r1', url: '/ws?token=1', raw: { socket: { destroyed: true } } }, 'websocket', 'message'))
  report(new BadRequestError('late'), ctx({ id: 'r2', url: '/ws2', raw: {} }, 'websocket', 'mid-stream'))
  await new Promise(resolve => setImmediate(resolve))
  t.same(finished().map(s => [s.name, s.attributes['faultline.request_id']]), [['faultline.websocket /ws', 'r1'], ['faultline.websocket /ws2', 'r2']], 'the path without its query')
  t.equal(finished()[0]!.status.code, SpanStatusCode.UNSET, 'a 4xx on a connection is no server error')
  spans.reset()
  // A WebSocket fault with no request: the active span, as for any other.
  report(fault, ctx(undefined, 'websocket', 'message'))
  t.same(finished(), [])
})
