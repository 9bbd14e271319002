import type { FastifyInstance } from 'fastify'
import type { FaultReporter } from '../../index.js'

// `FAULTLINE_TRACE=1 npm run demo`: the demo traced with OpenTelemetry.
// @fastify/otel makes the request spans, faultline's otelReporter puts each
// fault on them (docs/otel.md), and every finished span is printed as one
// line on stderr instead of being exported.

/** Registers @fastify/otel on `app` and returns faultline's reporter for it. */
export async function enableTracing (app: FastifyInstance): Promise<FaultReporter> {
  const { NodeTracerProvider } = await import('@opentelemetry/sdk-trace-node')
  const { SimpleSpanProcessor } = await import('@opentelemetry/sdk-trace-base')
  const { FastifyOtelInstrumentation } = await import('@fastify/otel')
  const { otelReporter } = await import('../../otel/index.js')
  type Finished = import('@opentelemetry/sdk-trace-base').ReadableSpan
  const STATUS = ['UNSET', 'OK', 'ERROR']
  const KIND = ['INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER']
  const printer = {
    export (spans: Finished[], done: (result: { code: number }) => void): void {
      for (const s of spans) {
        const errorType = s.attributes['error.type']
        const links = s.links.length > 0 ? ` linked to ${s.links.map(l => l.context.spanId).join(',')}` : ''
        process.stderr.write(`span ${s.spanContext().traceId.slice(0, 8)}/${s.spanContext().spanId} ${KIND[s.kind]} ${JSON.stringify(s.name)} ${STATUS[s.status.code]}` +
          `${errorType === undefined ? '' : ` error.type=${String(errorType)}`} events=${s.events.length}${links}\n`)
      }
      done({ code: 0 })
    },
    async shutdown (): Promise<void> {}
  }
  new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(printer)] }).register()
  await app.register(new FastifyOtelInstrumentation({ recordExceptions: false }).plugin())
  return otelReporter()
}
