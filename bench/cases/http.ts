import fastifyWebsocket from '@fastify/websocket'
import createHttpError from 'http-errors'
import { bareApp, faultlineApp } from '../lib/app.js'
import { cannon } from '../lib/load.js'
import { loadFaultLib, loadPlugins } from '../lib/plugins.js'
import { fastifySse } from './sse.js'
import type { Case, Row, Variant } from '../lib/types.js'
import type { Harness } from '../lib/harness.js'

// Cases 1-3: plain HTTP under autocannon. Each reports req/s (the target),
// p99 latency and the server's CPU time per request (detail rows).

async function httpRows (h: Harness, label: string, path: string, status: number, target: number | undefined): Promise<Row[]> {
  const servers = await h.pair()
  const runs = await h.alternate(servers, server => cannon(server.url + path, h.settings, status))
  await h.closeAll()
  const pick = (v: Variant, f: (r: typeof runs.baseline[number]) => number): number[] => runs[v].map(f)
  return [
    { name: `${label} req/s`, unit: 'req/s', better: 'higher', target, baseline: pick('baseline', r => r.value.rps), faultline: pick('faultline', r => r.value.rps) },
    { name: `${label} p99 latency`, unit: 'ms', better: 'lower', baseline: pick('baseline', r => r.value.p99), faultline: pick('faultline', r => r.value.p99) },
    { name: `${label} server CPU per request`, unit: 'µs', better: 'lower', detail: true, baseline: pick('baseline', r => r.cpu / r.value.requests), faultline: pick('faultline', r => r.cpu / r.value.requests) }
  ]
}

export const happyPath: Case = {
  id: '1',
  title: 'happy path JSON route: every faultline plugin found vs bare Fastify',
  requires: ['http'],
  async build (ctx) {
    const app = ctx.variant === 'baseline' ? bareApp(ctx) : await faultlineApp(ctx, 'all')
    app.get('/json', async () => ({ hello: 'world' }))
    return app
  },
  bench: h => httpRows(h, '1 happy path', '/json', 200, 0.99)
}

/**
 * Case 1 again, with the baseline carrying the peer plugins faultline
 * registers (@fastify/websocket adds an onRequest and an onResponse hook to
 * every route): what is left is faultline's own cost.
 */
export const happyPathPeers: Case = {
  id: '1b',
  title: 'happy path JSON route: every faultline plugin found vs Fastify with the same peer plugins',
  fullOnly: true,
  requires: ['http'],
  async build (ctx) {
    if (ctx.variant === 'faultline') return happyPath.build(ctx)
    const plugins = await loadPlugins()
    const app = bareApp(ctx)
    if (plugins.sse !== undefined) await app.register(fastifySse)
    if (plugins.websocket !== undefined) await app.register(fastifyWebsocket)
    app.get('/json', async () => ({ hello: 'world' }))
    return app
  },
  bench: async h => (await httpRows(h, '1b happy path vs same peers', '/json', 200, undefined)).map(r => ({ ...r, detail: true }))
}

export const errorPath: Case = {
  id: '2',
  title: 'error path: thrown NotFoundError as problem+json vs http-errors 404 through Fastify\'s default handler',
  requires: ['http'],
  async build (ctx) {
    if (ctx.variant === 'baseline') {
      const app = bareApp(ctx)
      app.get('/widgets/:id', async (request) => { throw createHttpError(404, `No widget ${(request.params as { id: string }).id}`) })
      return app
    }
    const { NotFoundError } = await loadFaultLib()
    const app = await faultlineApp(ctx, ['http'])
    app.get('/widgets/:id', async (request) => { throw new NotFoundError(`No widget ${(request.params as { id: string }).id}`) })
    return app
  },
  bench: h => httpRows(h, '2 error path (404)', '/widgets/42', 404, 1.0)
}

export const unexposed500: Case = {
  id: '3',
  title: 'unexposed 500: a plain Error, redacted problem+json vs Fastify\'s default 500',
  requires: ['http'],
  async build (ctx) {
    const app = ctx.variant === 'baseline' ? bareApp(ctx) : await faultlineApp(ctx, ['http'])
    app.get('/boom', async () => { throw new Error('connect ECONNREFUSED 10.0.0.7:5432') })
    return app
  },
  bench: h => httpRows(h, '3 unexposed 500', '/boom', 500, undefined)
}
