import fastifySseModule from '@fastify/sse'
import type { FastifyPluginAsync, FastifyReply } from 'fastify'
import { bareApp, faultlineApp } from '../lib/app.js'
import type { Harness } from '../lib/harness.js'
import { readBody } from '../lib/load.js'
import type { Case, Row } from '../lib/types.js'

// Case 5: events/s through an SSE route: with faultlineSse (which registers
// @fastify/sse itself and wraps the route) vs @fastify/sse alone.

// The CommonJS export is the fastify-plugin-wrapped function; its types
// describe the module.
export const fastifySse = fastifySseModule as unknown as FastifyPluginAsync

export type SseReply = FastifyReply & { sse: { send: (source: unknown) => Promise<void>, keepAlive: () => void } }

/** `count` events, as an application would produce them: an async generator. */
async function * events (count: number): AsyncGenerator<{ data: unknown }> {
  for (let i = 0; i < count; i++) yield { data: { seq: i, symbol: 'FLT', price: 101.25 } }
}

export const sse: Case = {
  id: '5',
  title: 'SSE: events/s with faultlineSse vs bare @fastify/sse',
  requires: ['http', 'sse'],
  async build (ctx) {
    const app = ctx.variant === 'baseline' ? bareApp(ctx) : await faultlineApp(ctx, ['http', 'sse'])
    if (ctx.variant === 'baseline') await app.register(fastifySse)
    const count = ctx.settings.events
    app.get('/events', { sse: 'only' } as object, async (request, reply) => {
      await (reply as SseReply).sse.send(events(count))
    })
    return app
  },
  async bench (h: Harness): Promise<Row[]> {
    const count = h.settings.events
    const servers = await h.pair()
    // Runs of about a second: twice the rounds, for steadier medians.
    const runs = await h.alternate(servers, async (server) => {
      const r = await readBody(server.url + '/events', { accept: 'text/event-stream' })
      if (r.events !== count) throw new Error(`${server.variant} /events: ${r.events} of ${count} events`)
      return r
    }, h.settings.rounds * 2)
    await h.closeAll()
    return [
      { name: `5 SSE ${count.toLocaleString('en-US')} events`, unit: 'ev/s', better: 'higher', target: 0.97, baseline: runs.baseline.map(r => count / r.value.seconds), faultline: runs.faultline.map(r => count / r.value.seconds) },
      { name: '5 SSE server CPU per event', unit: 'µs', better: 'lower', detail: true, baseline: runs.baseline.map(r => r.cpu / count), faultline: runs.faultline.map(r => r.cpu / count) }
    ]
  }
}
