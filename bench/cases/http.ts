import fastifyWebsocket from '@fastify/websocket'
import fastifySensible from '@fastify/sensible'
import createHttpError from 'http-errors'
import { STATUS_CODES } from 'node:http'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { bareApp, faultlineApp, withLogger, type Logger } from '../lib/app.js'
import { cannon } from '../lib/load.js'
import { loadFaultLib, loadPlugins } from '../lib/plugins.js'
import { fastifySse } from './sse.js'
import type { Case, Row, ServerContext, Variant } from '../lib/types.js'
import type { Harness } from '../lib/harness.js'

// Cases 0-3: plain HTTP under autocannon, both variants loaded at once
// (Harness.together): differences of a few percent between two error
// handlers are below what runs in turn can tell apart on a shared host.
// Each reports req/s (the target), p99 latency and the server's CPU time
// per request (detail rows).

async function httpRows (h: Harness, label: string, path: string, status: number, target: number | undefined): Promise<Row[]> {
  const servers = await h.pair()
  const runs = await h.together(servers, server => cannon(server.url + path, h.settings, status))
  await h.closeAll()
  const pick = (v: Variant, f: (r: typeof runs.baseline[number]) => number): number[] => runs[v].map(f)
  return [
    { name: `${label} req/s`, unit: 'req/s', better: 'higher', paired: true, target, baseline: pick('baseline', r => r.value.rps), faultline: pick('faultline', r => r.value.rps) },
    { name: `${label} p99 latency`, unit: 'ms', better: 'lower', paired: true, baseline: pick('baseline', r => r.value.p99), faultline: pick('faultline', r => r.value.p99) },
    { name: `${label} server CPU per request`, unit: 'µs', better: 'lower', paired: true, detail: true, baseline: pick('baseline', r => r.cpu / r.value.requests), faultline: pick('faultline', r => r.cpu / r.value.requests) }
  ]
}

/** `httpRows` as detail rows: for the diagnostic cases, which explain a target row and have none of their own. */
async function diagnosticRows (h: Harness, label: string, path: string, status: number): Promise<Row[]> {
  return (await httpRows(h, label, path, status, undefined)).map(row => ({ ...row, detail: true }))
}

/** Bare Fastify with the peer plugins faultline registers (those whose faultline plugin is found). */
async function peersApp (ctx: ServerContext, peers: { websocket?: boolean } = {}): Promise<FastifyInstance> {
  const plugins = await loadPlugins()
  const app = bareApp(ctx)
  if (plugins.sse !== undefined) await app.register(fastifySse)
  if (plugins.websocket !== undefined && peers.websocket !== false) await app.register(fastifyWebsocket)
  return app
}

/**
 * Case 1: every faultline plugin at the root vs bare Fastify, reported: it
 * counts the hooks @fastify/websocket adds to every route of the scope it is
 * registered in (an onRequest and an onResponse hook; case 2w measures them
 * alone), which are its own cost, as issue 16 sets it.
 */
export const happyPath: Case = {
  id: '1',
  title: 'happy path JSON route: every faultline plugin found vs bare Fastify (includes @fastify/websocket\'s own hooks)',
  requires: ['http'],
  async build (ctx) {
    const app = ctx.variant === 'baseline' ? bareApp(ctx) : await faultlineApp(ctx, 'all')
    app.get('/json', async () => ({ hello: 'world' }))
    return app
  },
  bench: h => httpRows(h, '1 happy path vs bare Fastify', '/json', 200, undefined)
}

/**
 * Case 1b, the target: case 1 with the baseline carrying the peer plugins
 * faultline registers, as the error-path cases have it. What is left is
 * faultline's own cost.
 */
export const happyPathPeers: Case = {
  id: '1b',
  title: 'happy path JSON route: every faultline plugin found vs Fastify with the same peer plugins',
  requires: ['http'],
  async build (ctx) {
    if (ctx.variant === 'faultline') return happyPath.build(ctx)
    const app = await peersApp(ctx)
    app.get('/json', async () => ({ hello: 'world' }))
    return app
  },
  bench: h => httpRows(h, '1b happy path vs same peers', '/json', 200, 0.99)
}

// Cases 2 and 3: the error path, against Fastify's default error handler.
// Every faultline plugin is registered at the root, as the README shows;
// the baseline is Fastify with the same peer plugins (@fastify/websocket,
// @fastify/sse), so what is compared is the error handling. Each baseline
// users actually throw is a case of its own, with the logger off and pino
// at info (the logger is the case's, whatever --logger says).

type Route = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>

const widget = (request: FastifyRequest): string => `No widget ${(request.params as { id: string }).id}`

/** A thrown 404, as each kind of baseline throws it (or sends it). */
const NOT_FOUND_BASELINES = {
  // What most Fastify code throws: the headline baseline.
  statusCode: { label: 'Error + statusCode', route: async request => { throw Object.assign(new Error(widget(request)), { statusCode: 404 }) } },
  httpErrors: { label: 'http-errors', route: async request => { throw createHttpError(404, widget(request)) } },
  sensible: { label: '@fastify/sensible httpErrors', route: async function (this: FastifyInstance, request) { throw this.httpErrors.notFound(widget(request)) } },
  // No error at all: the route answers the 404 itself.
  send: { label: 'reply.code(404).send', route: async (request, reply) => reply.code(404).send({ statusCode: 404, error: 'Not Found', message: widget(request) }) }
} satisfies Record<string, { label: string, route: Route }>

type Baseline = keyof typeof NOT_FOUND_BASELINES

const LOGGER_LABEL: Record<Logger, string> = { off: 'logger off', info: 'pino at info' }

function notFoundCase (id: string, baseline: Baseline, logger: Logger, target: number | undefined, fullOnly: boolean): Case {
  const { label } = NOT_FOUND_BASELINES[baseline]
  return {
    id,
    title: `error path, ${LOGGER_LABEL[logger]}: thrown NotFoundError as problem+json (every plugin at the root) vs ${label} 404 through Fastify's default handler (same peers)`,
    fullOnly,
    requires: ['http'],
    async build (context) {
      const ctx = withLogger(context, logger)
      if (ctx.variant === 'baseline') {
        const app = await peersApp(ctx)
        if (baseline === 'sensible') await app.register(fastifySensible)
        app.get('/widgets/:id', NOT_FOUND_BASELINES[baseline].route)
        return app
      }
      const { NotFoundError } = await loadFaultLib()
      const app = await faultlineApp(ctx, 'all')
      app.get('/widgets/:id', async (request) => { throw new NotFoundError(widget(request)) })
      return app
    },
    bench: h => httpRows(h, `${id} thrown 404 vs ${label}, ${LOGGER_LABEL[logger]}`, '/widgets/42', 404, target)
  }
}

/** The unexposed 500's route: a plain Error with internals in its message. */
const unexposedRoute: Route = async () => { throw new Error('connect ECONNREFUSED 10.0.0.7:5432') }

function unexposedCase (id: string, logger: Logger): Case {
  return {
    id,
    title: `unexposed 500, ${LOGGER_LABEL[logger]}: a plain Error, redacted problem+json (every plugin at the root) vs Fastify's default 500 (same peers)`,
    requires: ['http'],
    async build (context) {
      const ctx = withLogger(context, logger)
      const app = ctx.variant === 'baseline' ? await peersApp(ctx) : await faultlineApp(ctx, 'all')
      app.get('/boom', unexposedRoute)
      return app
    },
    bench: h => httpRows(h, `${id} unexposed 500, ${LOGGER_LABEL[logger]}`, '/boom', 500, 1.0)
  }
}

/**
 * What a careful user writes instead of faultline to answer problem+json:
 * one `setErrorHandler` sending the same members and headers (a 5xx
 * message redacted, the request id in a header and in the body), nothing
 * else (no report path, no header checks, no onSend fallback).
 */
function handWrittenProblem (error: Error & { statusCode?: number }, request: FastifyRequest, reply: FastifyReply): void {
  const status = typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500
  const title = STATUS_CODES[status] ?? 'Error'
  const q = request.url.indexOf('?')
  if (status >= 500) request.log.error({ err: error }, error.message)
  reply.code(status).header('x-request-id', request.id).type('application/problem+json; charset=utf-8').send(JSON.stringify({
    type: 'about:blank',
    title,
    status,
    detail: status < 500 ? error.message : title,
    instance: q === -1 ? request.url : request.url.slice(0, q),
    code: title.toUpperCase().replace(/ /g, '_'),
    requestId: request.id
  }))
}

/**
 * Case 2j: the same wire answer as faultline's, written by hand (above):
 * what faultline's typed faults and report path cost over the least a user
 * writes to answer problem+json. Reported, no target.
 */
export const handWrittenCase: Case = {
  id: '2j',
  title: 'error path, logger off: thrown NotFoundError (every plugin at the root) vs a hand-written problem+json setErrorHandler answering the same members and headers for an Error + statusCode 404 (same peers)',
  fullOnly: true,
  requires: ['http'],
  async build (context) {
    const ctx = withLogger(context, 'off')
    if (ctx.variant === 'faultline') return await notFoundCase('2j', 'statusCode', 'off', undefined, true).build(context)
    const app = await peersApp(ctx)
    app.setErrorHandler(handWrittenProblem)
    app.get('/widgets/:id', NOT_FOUND_BASELINES.statusCode.route)
    return app
  },
  bench: h => httpRows(h, '2j thrown 404 vs a hand-written problem+json handler, logger off', '/widgets/42', 404, undefined)
}

/**
 * What the contract's pieces cost alone, without faultline's code: two
 * diagnostic rows whose product is the least faultline's case 2o can cost
 * over Fastify's default, whatever faultline's own machinery costs.
 * Case 2t: Fastify's default handler, the route throwing a class of the
 * taxonomy (NotFoundError, whose `status` Fastify reads) instead of an
 * Error + statusCode: the typed fault alone (its constructor, its stack).
 */
export const typedFaultCost: Case = {
  id: '2t',
  title: 'diagnostic: a typed fault alone, logger off: Fastify\'s default handler answering a thrown Error + statusCode 404 vs the same handler answering a thrown NotFoundError (no faultline plugin, same peers)',
  fullOnly: true,
  requires: ['http'],
  async build (context) {
    const ctx = withLogger(context, 'off')
    const app = await peersApp(ctx)
    if (ctx.variant === 'baseline') {
      app.get('/widgets/:id', NOT_FOUND_BASELINES.statusCode.route)
    } else {
      const { NotFoundError } = await loadFaultLib()
      app.get('/widgets/:id', async (request) => { throw new NotFoundError(widget(request)) })
    }
    return app
  },
  bench: h => diagnosticRows(h, '2t a typed fault alone (Error + statusCode -> NotFoundError), Fastify\'s handler, logger off', '/widgets/42', 404)
}

/**
 * Cases 2f and 3f: the problem+json answer alone, written by hand (case
 * 2j's handler), against Fastify's default answer, for the same thrown
 * Error + statusCode 404 (2f) or plain Error (3f): what the answer's
 * members and request-id header cost, with no typed fault and no
 * faultline code.
 */
function handWrittenAnswerCase (id: string, status: 404 | 500): Case {
  const path = status === 404 ? '/widgets/42' : '/boom'
  return {
    id,
    title: `diagnostic: the problem+json answer alone, logger off: Fastify's default ${status} vs a hand-written problem+json setErrorHandler (no faultline plugin, same peers)`,
    fullOnly: true,
    requires: ['http'],
    async build (context) {
      const ctx = withLogger(context, 'off')
      const app = await peersApp(ctx)
      if (ctx.variant === 'faultline') app.setErrorHandler(handWrittenProblem)
      if (status === 404) app.get('/widgets/:id', NOT_FOUND_BASELINES.statusCode.route)
      else app.get('/boom', unexposedRoute)
      return app
    },
    bench: h => diagnosticRows(h, `${id} the answer alone (Fastify's ${status} -> hand-written problem+json), logger off`, path, status)
  }
}

export const answerCosts: readonly Case[] = [handWrittenAnswerCase('2f', 404), handWrittenAnswerCase('3f', 500)]

/**
 * Case 0, the noise floor: the same app as both variants (case 2o's
 * baseline: Fastify's default handler, a thrown Error + statusCode 404, the
 * same peers, logger off), run as every case is. Any ratio it reads away
 * from 1.00x is the harness's and the machine's, not faultline's: a ratio
 * of another row that close to 1.00x cannot be told from it. Reported.
 */
export const sameAppCase: Case = {
  id: '0',
  title: 'A/A noise floor: the same app (Fastify\'s default handler, a thrown Error + statusCode 404, same peers, logger off) as both variants',
  requires: ['http'],
  build: context => notFoundCase('2o', 'statusCode', 'off', undefined, false).build({ ...context, variant: 'baseline' }),
  bench: h => httpRows(h, '0 A/A, the same app twice', '/widgets/42', 404, undefined)
}

export const errorPaths: readonly Case[] = [
  notFoundCase('2', 'statusCode', 'info', 1.0, false),
  notFoundCase('2o', 'statusCode', 'off', 1.0, false),
  notFoundCase('2h', 'httpErrors', 'info', 1.0, true),
  notFoundCase('2ho', 'httpErrors', 'off', 1.0, true),
  notFoundCase('2s', 'sensible', 'info', 1.0, true),
  notFoundCase('2so', 'sensible', 'off', 1.0, true),
  notFoundCase('2r', 'send', 'info', undefined, true),
  notFoundCase('2ro', 'send', 'off', undefined, true),
  handWrittenCase,
  unexposedCase('3', 'info'),
  unexposedCase('3o', 'off')
]

/**
 * What @fastify/websocket itself costs a plain route's error (its onRequest
 * and onResponse hooks run for every request of the instance it is
 * registered on): Fastify with @fastify/sse vs the same plus
 * @fastify/websocket, both with Fastify's default handler. No faultline code.
 */
export const websocketPeerCost: Case = {
  id: '2w',
  title: 'diagnostic: @fastify/websocket\'s own cost on a plain route\'s thrown 404 (Error + statusCode), logger off: Fastify + @fastify/sse, without vs with @fastify/websocket',
  fullOnly: true,
  requires: ['http', 'websocket'],
  async build (context) {
    const ctx = withLogger(context, 'off')
    const app = await peersApp(ctx, { websocket: ctx.variant === 'faultline' })
    app.get('/widgets/:id', NOT_FOUND_BASELINES.statusCode.route)
    return app
  },
  bench: h => diagnosticRows(h, '2w @fastify/websocket alone (without -> with), thrown 404, logger off', '/widgets/42', 404)
}

/**
 * What faultline's plugins other than faultlineHttp cost a plain route's
 * error: faultlineHttp with the peer plugins registered plainly vs every
 * faultline plugin (which registers the same peers itself).
 */
export const pluginsCost: Case = {
  id: '2p',
  title: 'diagnostic: faultline\'s other plugins\' cost on a plain route\'s thrown NotFoundError, logger off: faultlineHttp + the peer plugins vs every faultline plugin at the root',
  fullOnly: true,
  requires: ['http'],
  async build (context) {
    const ctx = withLogger(context, 'off')
    const { NotFoundError } = await loadFaultLib()
    let app: FastifyInstance
    if (ctx.variant === 'baseline') {
      app = await peersApp(ctx)
      await app.register((await loadPlugins()).http!)
    } else {
      app = await faultlineApp(ctx, 'all')
    }
    app.get('/widgets/:id', async (request) => { throw new NotFoundError(widget(request)) })
    return app
  },
  bench: h => diagnosticRows(h, '2p faultlineHttp + peers -> every plugin, thrown 404, logger off', '/widgets/42', 404)
}
