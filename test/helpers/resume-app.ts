import Fastify, { type FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { BadGatewayError } from '../../lib/fault.js'
import { faultlineHttp } from '../../plugins/http.js'
import { faultlineStream, type FaultlineStreamOptions } from '../../plugins/stream.js'
import { sliceSource } from './resumable.js'

/** One request as the server saw it. */
export interface Seen {
  url: string
  range: string | undefined
  ifRange: string | undefined
  lastEventId: string | undefined
}

export interface Plan {
  /** Absolute offsets (raw) or record indexes (ndjson) where the source breaks, once each, ascending. */
  breaks: number[]
}

export interface ResumeApp {
  app: FastifyInstance
  base: string
  seen: Seen[]
  /** Registers the break plan for a download key. */
  plan: (key: string, plan: Plan) => void
}

/**
 * `/raw/:key` serves `body` resumably (etag + length) and `/ndjson/:key`
 * serves `records` records with ids; each breaks at the next planned point
 * after where the request starts: raw with a plain Error (truncation),
 * ndjson with a BadGatewayError (a retryable error record).
 */
export async function resumeApp (t: Test, body: Uint8Array, records: number, options: FaultlineStreamOptions = {}): Promise<ResumeApp> {
  const seen: Seen[] = []
  const plans = new Map<string, number[]>()
  const app = Fastify({ logger: false, forceCloseConnections: true, keepAliveTimeout: 60_000 })
  await app.register(faultlineHttp)
  await app.register(faultlineStream, options)
  app.addHook('onRequest', async request => {
    const h = request.headers
    seen.push({ url: request.url, range: h.range, ifRange: h['if-range'] as string | undefined, lastEventId: h['last-event-id'] as string | undefined })
  })
  /** The next planned break at or after `from`, consumed. */
  function nextBreak (key: string, from: number): number | undefined {
    const breaks = plans.get(key) ?? []
    while (breaks.length > 0 && breaks[0]! < from) breaks.shift()
    return breaks.length > 0 && breaks[0]! >= from ? breaks.shift() : undefined
  }
  app.get<{ Params: { key: string } }>('/raw/:key', async (request, reply) => {
    return reply.streamSafe((signal, resume) => {
      const failAt = nextBreak(request.params.key, resume.offset + 1)
      return sliceSource(body, { chunk: 64 * 1024, failAt })(signal, resume)
    }, { etag: '"chaos-v1"', length: body.length })
  })
  app.get<{ Params: { key: string } }>('/ndjson/:key', async (request, reply) => {
    return reply.streamSafe(async function * (signal, { lastEventId }) {
      const start = lastEventId === undefined ? 0 : Number(lastEventId) + 1
      const failAt = nextBreak(request.params.key, start + 1)
      for (let i = start; i < records && !signal.aborted; i++) {
        // A retryable fault (its upstream broke): the error record tells the client to resume.
        if (i === failAt) throw new BadGatewayError(`source broke at record ${i}`)
        yield { i, pad: 'r'.repeat(40) }
        if (i % 64 === 0) await new Promise(resolve => setImmediate(resolve))
      }
    }, { framing: 'ndjson', id: (item: { i: number }) => String(item.i) })
  })
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return { app, base, seen, plan: (key, plan) => { plans.set(key, [...plan.breaks]) } }
}

/** 1-5 distinct ascending break points in [1, max), from `random`. */
export function breakPoints (random: () => number, max: number): number[] {
  const count = 1 + Math.floor(random() * 5)
  const points = new Set<number>()
  while (points.size < count) points.add(1 + Math.floor(random() * (max - 1)))
  return [...points].sort((a, b) => a - b)
}
