import { bareApp, withLogger } from '../lib/app.js'
import type { Server } from '../lib/child.js'
import type { Harness } from '../lib/harness.js'
import { request } from 'undici'
import { loadFaultLib, loadPlugins } from '../lib/plugins.js'
import type { Case, Row } from '../lib/types.js'

// Case d: a 4xx fault whose `details` has 10, 1,000 or 10,000 members, as
// server CPU per response. Baselines, in the baseline process: Fastify's
// default handler for an `Error` with `statusCode` 400 and the same
// `details` (it drops them: the floor), and a route that answers
// `JSON.stringify(details)` with status 400 (the cost of rendering the same
// data at all). faultline renders them under `maxDetailsBytes` raised out of
// the way (linearity), and under the default bound (16 KiB), where 1,000 and
// 10,000 members are dropped for `detailsOmitted`. Logger off, as issue 16
// sets the sweep: what is measured is the rendering. (At info, a 4xx line
// also carries a preview of the details, cut to 1,000 characters before it
// is rendered: its one cost that grows with them is listing the members of
// a large object.)

export const SIZES: readonly number[] = [10, 1000, 10_000]
const CONCURRENCY = 4

/** `total` GETs of `url`, `CONCURRENCY` at a time, each read to the end and checked for status 400. */
async function load (url: string, total: number): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next++ < total) {
      const res = await request(url)
      await res.body.text()
      if (res.statusCode !== 400) throw new Error(`${url}: ${res.statusCode}`)
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
}

/** Requests per run: about the same bytes whatever the size (10,000 members are ~200 KB a response). */
function requestsFor (n: number, quick: boolean): number {
  const full = n <= 10 ? 5000 : n <= 1000 ? 1000 : 100
  return quick ? Math.ceil(full / 5) : full
}

function details (n: number): Record<string, string> {
  const out: Record<string, string> = {}
  for (let i = 0; i < n; i++) out[`field${i}`] = `value ${i}`
  return out
}

function size (params: unknown): number {
  const n = Number((params as { n: string }).n)
  if (!SIZES.includes(n)) throw new Error(`no details of ${n} members`)
  return n
}

export const detailsSweep: Case = {
  id: 'd',
  title: 'details size sweep: CPU per 400 response with 10 / 1,000 / 10,000 details members',
  requires: ['http'],
  async build (ctx) {
    const bySize = new Map(SIZES.map(n => [n, details(n)]))
    const app = bareApp(withLogger(ctx, 'off'))
    if (ctx.variant === 'baseline') {
      app.get('/bare/:n', async (request) => {
        throw Object.assign(new Error('bad input'), { statusCode: 400, details: bySize.get(size(request.params)) })
      })
      app.get('/json/:n', async (request, reply) => {
        reply.code(400).type('application/json; charset=utf-8').send(JSON.stringify(bySize.get(size(request.params))))
      })
      return app
    }
    const { BadRequestError } = await loadFaultLib()
    const { http } = await loadPlugins()
    const route = async (scope: typeof app): Promise<void> => {
      scope.get('/:n', async (request) => { throw new BadRequestError('bad input', { details: bySize.get(size(request.params)) }) })
    }
    await app.register(async (scope) => {
      await scope.register(http!, { maxDetailsBytes: 2 ** 30 })
      await route(scope)
    }, { prefix: '/unbounded' })
    await app.register(async (scope) => {
      await scope.register(http!)
      await route(scope)
    }, { prefix: '/bounded' })
    return app
  },
  async bench (h: Harness): Promise<Row[]> {
    const servers = await h.pair()
    const rows: Row[] = []
    const perSize = new Map<number, Record<'bare' | 'json' | 'unbounded' | 'bounded', number[]>>()
    for (const n of SIZES) {
      const paths = { bare: `/bare/${n}`, json: `/json/${n}`, unbounded: `/unbounded/${n}`, bounded: `/bounded/${n}` } as const
      const on: Record<keyof typeof paths, Server> = { bare: servers.baseline, json: servers.baseline, unbounded: servers.faultline, bounded: servers.faultline }
      const cpu: Record<keyof typeof paths, number[]> = { bare: [], json: [], unbounded: [], bounded: [] }
      const total = requestsFor(n, h.settings.quick)
      const once = async (which: keyof typeof paths): Promise<number> => {
        const server = on[which]
        const before = await server.cpu()
        await load(server.url + paths[which], total)
        const after = await server.cpu()
        return (after.user - before.user + after.system - before.system) / total
      }
      for (const which of Object.keys(paths) as Array<keyof typeof paths>) await once(which)
      for (let round = 0; round < h.settings.rounds; round++) {
        for (const which of Object.keys(paths) as Array<keyof typeof paths>) cpu[which].push(await once(which))
      }
      perSize.set(n, cpu)
      const label = `d ${n.toLocaleString('en-US')} details members, CPU per response`
      const row = (name: string, base: keyof typeof paths, ours: keyof typeof paths, target?: number): Row =>
        ({ name, unit: 'µs', better: 'lower', target, baseline: cpu[base], faultline: cpu[ours] })
      rows.push(
        { ...row(`${label}: rendered vs JSON.stringify(details)`, 'json', 'unbounded'), detail: true },
        { ...row(`${label}: rendered vs Fastify's default (drops them)`, 'bare', 'unbounded'), detail: true },
        { ...row(`${label}: default maxDetailsBytes vs Fastify's default`, 'bare', 'bounded'), detail: true }
      )
    }
    await h.closeAll()
    // The cost of each further member, between two sizes, round by round:
    // flat from 1,000 to 10,000 when the rendering is linear.
    const slope = (which: 'json' | 'unbounded', from: number, to: number): number[] =>
      perSize.get(to)![which].map((v, i) => (v - perSize.get(from)![which][i]!) / (to - from) * 1000)
    rows.unshift(
      { name: 'd cost of each further details member, 10 -> 1,000 (per 1,000 members): rendered vs JSON.stringify', unit: 'µs', better: 'lower', target: 1.5, baseline: slope('json', 10, 1000), faultline: slope('unbounded', 10, 1000) },
      { name: 'd cost of each further details member, 1,000 -> 10,000 (per 1,000 members): rendered vs JSON.stringify', unit: 'µs', better: 'lower', target: 1.5, baseline: slope('json', 1000, 10_000), faultline: slope('unbounded', 1000, 10_000) }
    )
    return rows
  }
}
