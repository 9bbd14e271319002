import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import { FastifyOtelInstrumentation } from '@fastify/otel'
import type { FastifyInstance } from 'fastify'
import { bareApp } from '../lib/app.js'
import { faultlineRoot, loadPlugins, PLUGIN_ORDER } from '../lib/plugins.js'
import { happyPath } from './http.js'
import type { Case, ServerContext } from '../lib/types.js'
import type * as Otel from '../../otel/index.js'

// Cases 1c and 1d: the happy path in a traced app. Both variants run
// @fastify/otel with a real SDK (spans are made and ended, then dropped: no
// exporter). 1c adds faultlineHttp with `otelReporter()` as its reporter: no
// fault is raised, so the reporter must cost nothing. 1d adds every plugin:
// @fastify/otel turns each hook a plugin adds (@fastify/websocket's
// onRequest and onResponse, at the root) into a span per request.

let instrumentation: FastifyOtelInstrumentation | undefined

/** One tracer provider per server process, registered globally as an app would. */
function tracing (): FastifyOtelInstrumentation {
  if (instrumentation === undefined) {
    new NodeTracerProvider().register()
    instrumentation = new FastifyOtelInstrumentation()
  }
  return instrumentation
}

async function tracedApp (ctx: ServerContext, which: 'http' | 'all'): Promise<FastifyInstance> {
  const app = bareApp(ctx)
  await app.register(tracing().plugin())
  if (ctx.variant === 'faultline') {
    const { otelReporter } = await import(new URL('otel/index.js', faultlineRoot).href) as typeof Otel
    const plugins = await loadPlugins()
    for (const name of which === 'http' ? ['http' as const] : PLUGIN_ORDER) {
      const plugin = plugins[name]
      if (plugin !== undefined) await app.register(plugin, name === 'http' ? { onFault: otelReporter() } : {})
    }
  }
  app.get('/json', async () => ({ hello: 'world' }))
  return app
}

export const happyPathOtel: Case = {
  id: '1c',
  title: 'happy path JSON route under @fastify/otel: faultlineHttp with otelReporter vs the same traced app without faultline',
  requires: ['http'],
  build: ctx => tracedApp(ctx, 'http'),
  bench: async h => (await happyPath.bench(h)).map(row => ({ ...row, name: row.name.replace('1 happy path', '1c happy path, traced, reporter') }))
}

export const happyPathOtelAll: Case = {
  id: '1d',
  title: 'happy path JSON route under @fastify/otel: every faultline plugin at the root, otelReporter vs the same traced app without faultline',
  fullOnly: true,
  requires: ['http'],
  build: ctx => tracedApp(ctx, 'all'),
  bench: async h => (await happyPath.bench(h)).map(row => ({ ...row, target: undefined, detail: true, name: row.name.replace('1 happy path', '1d happy path, traced, every plugin') }))
}
