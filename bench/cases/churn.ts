import { Readable } from 'node:stream'
import fastifyWebsocket from '@fastify/websocket'
import type { FastifyReply } from 'fastify'
import { bareApp, faultlineApp } from '../lib/app.js'
import { churn, type ChurnKind } from '../lib/churn.js'
import type { Harness } from '../lib/harness.js'
import { loadPlugins } from '../lib/plugins.js'
import { fmt, MiB } from '../lib/stats.js'
import type { Case, MemorySample, PluginName, Row, Variant } from '../lib/types.js'
import { fastifySse, type SseReply } from './sse.js'

// Case 7: clients that leave mid-stream, mid-SSE and mid-socket. Each kind
// gets a fresh pair of servers; both are warmed up, measured (after their
// connections drained and a full GC), churned, and measured again.

const CHUNK = Buffer.alloc(16 * 1024, 'churn ')
const HEAP_BUDGET = 5 * MiB
const WARMUP = 200

/** Bytes until the client leaves. */
function endless (): Readable {
  return new Readable({
    highWaterMark: CHUNK.length,
    read () { while (this.push(CHUNK)); }
  })
}

/** Events until the client leaves (the generator must be returned when it does). */
async function * ticks (): AsyncGenerator<{ data: unknown }> {
  for (let seq = 0; ; seq++) yield { data: { seq, symbol: 'FLT', price: 101.25 } }
}

type Streaming = FastifyReply & { streamSafe: (source: unknown) => FastifyReply }

const KINDS: ReadonlyArray<{ kind: ChurnKind, plugin: PluginName, label: string }> = [
  { kind: 'stream', plugin: 'stream', label: 'mid-stream' },
  { kind: 'sse', plugin: 'sse', label: 'mid-SSE' },
  { kind: 'websocket', plugin: 'websocket', label: 'mid-socket' }
]

function handles (m: MemorySample): number {
  return Object.values(m.resources).reduce((a, b) => a + b, 0)
}

function describeDelta (before: MemorySample, after: MemorySample): string {
  const dh = (after.heapUsed - before.heapUsed) / MiB
  const dr = (after.rss - before.rss) / MiB
  const sign = (n: number): string => (n >= 0 ? '+' : '') + fmt(n)
  const kinds = new Set([...Object.keys(before.resources), ...Object.keys(after.resources)])
  const leaked = [...kinds].map(k => [k, (after.resources[k] ?? 0) - (before.resources[k] ?? 0)] as const).filter(([, n]) => n !== 0)
  const detail = leaked.length === 0 ? '' : ` (${leaked.map(([k, n]) => `${k} ${n > 0 ? '+' : ''}${n}`).join(', ')})`
  const dn = handles(after) - handles(before)
  return `heap ${sign(dh)} MB, RSS ${sign(dr)} MB, handles ${dn >= 0 ? '+' : ''}${dn}${detail}`
}

export const clientChurn: Case = {
  id: '7',
  title: 'churn: clients aborting mid-stream, mid-SSE and mid-socket (heap, RSS, handles)',
  requires: ['http'],
  async build (ctx) {
    const plugins = await loadPlugins()
    const app = ctx.variant === 'baseline' ? bareApp(ctx) : await faultlineApp(ctx, 'all')
    if (ctx.variant === 'baseline') {
      await app.register(fastifySse)
      await app.register(fastifyWebsocket)
      app.get('/stream', (request, reply) => reply.type('application/octet-stream').send(endless()))
    } else if (plugins.stream !== undefined) {
      app.get('/stream', (request, reply) => (reply as Streaming).streamSafe(endless()))
    }
    if (ctx.variant === 'baseline' || plugins.sse !== undefined) {
      app.get('/sse', { sse: 'only' } as object, async (request, reply) => {
        await (reply as SseReply).sse.send(ticks())
      })
    }
    if (ctx.variant === 'baseline' || plugins.websocket !== undefined) {
      app.get('/socket', { websocket: true }, (socket) => {
        socket.send('hello')
        socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }))
      })
    }
    return app
  },
  async bench (h: Harness): Promise<Row[]> {
    const plugins = await loadPlugins()
    const total = h.settings.churnClients
    const rows: Row[] = []
    for (const { kind, plugin, label } of KINDS) {
      if (plugins[plugin] === undefined) {
        h.log(`churn ${label}: skipped, plugins/${plugin}.ts not found`)
        continue
      }
      const servers = await h.pair()
      const before = {} as Record<Variant, MemorySample>
      const after = {} as Record<Variant, MemorySample>
      for (const variant of ['baseline', 'faultline'] as const) {
        await churn(kind, servers[variant].port, WARMUP)
        before[variant] = await servers[variant].memory()
      }
      for (const variant of ['baseline', 'faultline'] as const) {
        const t0 = Date.now()
        await churn(kind, servers[variant].port, total)
        after[variant] = await servers[variant].memory()
        h.log(`churn ${label}, ${variant}: ${total} clients in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
      }
      await h.closeAll()
      const heap = (v: Variant): number => (after[v].heapUsed - before[v].heapUsed) / MiB
      const leaked = (v: Variant): number => handles(after[v]) - handles(before[v])
      rows.push({
        name: `7 churn ${label}, ${total.toLocaleString('en-US')} aborts`,
        unit: 'MB',
        better: 'lower',
        baseline: [heap('baseline')],
        faultline: [heap('faultline')],
        text: { baseline: describeDelta(before.baseline, after.baseline), faultline: describeDelta(before.faultline, after.faultline) },
        verdict: { target: 'heap <= +5 MB, handles +0', pass: heap('faultline') * MiB <= HEAP_BUDGET && leaked('faultline') <= 0 && after.faultline.connections === 0 }
      })
    }
    return rows
  }
}
