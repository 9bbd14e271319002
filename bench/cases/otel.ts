import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import { FastifyOtelInstrumentation } from '@fastify/otel'
import type { FastifyInstance } from 'fastify'
import { bareApp } from '../lib/app.js'
import { faultlineRoot, loadPlugins, PLUGIN_ORDER } from '../lib/plugins.js'
import { happyPath } from './http.js'
import type { Case, ServerContext } from '../lib/types.js'
import type * as Otel from '../../otel/index.js'

// Case 1c: the happy path in a traced app. Both variants run @fastify/otel
// with a real SDK (spans are made and ended, then dropped: no exporter);
// the faultline variant adds every plugin, with `otelReporter()` as its
// reporter. No fault is raised, so the reporter must cost nothing.

let instrumentation: FastifyOtelInstrumentation | undefined

/** One tracer provider per server process, registered globally as an app would. */
function tracing (): FastifyOtelInstrumentation {
  if (instrumentation === undefined) {
    new NodeTracerProvider().register()
    instrumentation = new FastifyOtelInstrumentation()
  }
  return instrumentation
}

async function tracedApp (ctx: ServerContext): Promise<FastifyInstance> {
  const app = bareApp(ctx)
  await app.register(tracing().plugin())
  if (ctx.variant === 'baseline') return app
  const { otelReporter } = await import(new URL('otel/index.js', faultlineRoot).href) as typeof Otel
  const plugins = await loadPlugins()
  for (const name of PLUGIN_ORDER) {
    const plugin = plugins[name]
    if (plugin !== undefined) await app.register(plugin, name === 'http' ? { onFault: otelReporter() } : {})
  }
  return app
}

export const happyPathOtel: Case = {
  id: '1c',
  title: 'happy path JSON route under @fastify/otel: every faultline plugin with otelReporter vs the same traced app without faultline',
  requires: ['http'],
  async build (ctx) {
    const app = await tracedApp(ctx)
    app.get('/json', async () => ({ hello: 'world' }))
    return app
  },
  bench: async h => (await happyPath.bench(h)).map(row => ({ ...row, name: row.name.replace('1 happy path', '1c happy path, traced') }))
}
