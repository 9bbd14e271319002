import { Readable } from 'node:stream'
import type { FastifyReply } from 'fastify'
import { bareApp, faultlineApp } from '../lib/app.js'
import type { Harness } from '../lib/harness.js'
import { readBody, readRaw } from '../lib/load.js'
import { MiB } from '../lib/stats.js'
import type { Case, Row } from '../lib/types.js'

// Case 4: a generated 1 GiB body through `reply.streamSafe` (raw framing) vs
// `reply.send(stream)`, and ndjson records through `streamSafe` framing vs a
// hand-rolled ndjson Readable.

const CHUNK = Buffer.alloc(64 * 1024, 'faultline ')

/** `total` bytes in 64 KiB chunks, as fast as the consumer takes them. */
function bytes (total: number): Readable {
  let left = total
  return new Readable({
    highWaterMark: CHUNK.length,
    read () {
      while (left > 0) {
        const n = Math.min(CHUNK.length, left)
        left -= n
        if (!this.push(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) return
      }
      this.push(null)
    }
  })
}

function record (i: number): unknown {
  return { id: i, sku: 'WIDGET-42', name: 'Widget', price: 9.99, tags: ['blue', 'large'] }
}

/** `total` records as objects (for `streamSafe` ndjson framing). */
export function records (total: number): Readable {
  let i = 0
  return new Readable({
    objectMode: true,
    read () {
      while (i < total) if (!this.push(record(i++))) return
      this.push(null)
    }
  })
}

/** The same records as hand-written ndjson lines (the baseline). */
export function ndjsonLines (total: number): Readable {
  let i = 0
  return new Readable({
    read () {
      while (i < total) if (!this.push(JSON.stringify(record(i++)) + '\n')) return
      this.push(null)
    }
  })
}

export const streams: Case = {
  id: '4',
  title: 'streamed bodies: reply.streamSafe vs reply.send(stream)',
  requires: ['http', 'stream'],
  async build (ctx) {
    const { streamBytes, records: count } = ctx.settings
    if (ctx.variant === 'baseline') {
      const app = bareApp(ctx)
      app.get('/bytes', (request, reply) => reply.type('application/octet-stream').send(bytes(streamBytes)))
      app.get('/records', (request, reply) => reply.type('application/x-ndjson').send(ndjsonLines(count)))
      return app
    }
    const app = await faultlineApp(ctx, ['http', 'stream'])
    // streamSafe is declared by plugins/stream.ts, which this file must not
    // need at compile time (it may not exist yet).
    type Streaming = FastifyReply & { streamSafe: (source: unknown, options?: { framing?: 'raw' | 'ndjson' }) => FastifyReply }
    app.get('/bytes', (request, reply) => (reply as Streaming).streamSafe(bytes(streamBytes)))
    app.get('/records', (request, reply) => (reply as Streaming).streamSafe(records(count), { framing: 'ndjson' }))
    return app
  },
  async bench (h: Harness): Promise<Row[]> {
    const { streamBytes, records: count } = h.settings
    const servers = await h.pair()
    // Runs of a second or less: twice the rounds, for steadier medians.
    const raw = await h.alternate(servers, async (server) => {
      const r = await readRaw(server.port, '/bytes')
      // Chunked framing adds a few bytes per 64 KiB chunk.
      if (!r.complete || r.bytes < streamBytes) throw new Error(`${server.variant} /bytes: ${r.bytes} bytes for ${streamBytes}, ${r.complete ? 'complete' : 'truncated'}`)
      return r
    }, h.settings.rounds * 2)
    const framed = await h.alternate(servers, async (server) => {
      const r = await readBody(server.url + '/records')
      // The faultline variant ends with its {"type":"end"} record.
      const expected = count + (server.variant === 'faultline' ? 1 : 0)
      if (r.newlines !== expected) throw new Error(`${server.variant} /records: ${r.newlines} of ${expected} lines`)
      return r
    }, h.settings.rounds * 2)
    await h.closeAll()
    const mbps = (r: typeof raw.baseline[number]): number => streamBytes / MiB / r.value.seconds
    const rps = (r: typeof framed.baseline[number]): number => count / r.value.seconds
    return [
      { name: `4 stream raw ${streamBytes / MiB} MiB`, unit: 'MiB/s', better: 'higher', target: 0.97, baseline: raw.baseline.map(mbps), faultline: raw.faultline.map(mbps) },
      { name: `4 stream ndjson ${count.toLocaleString('en-US')} records`, unit: 'rec/s', better: 'higher', baseline: framed.baseline.map(rps), faultline: framed.faultline.map(rps) },
      { name: '4 stream raw server CPU per MiB', unit: 'µs', better: 'lower', detail: true, baseline: raw.baseline.map(r => r.cpu / (streamBytes / MiB)), faultline: raw.faultline.map(r => r.cpu / (streamBytes / MiB)) },
      { name: '4 stream ndjson server CPU per record', unit: 'µs', better: 'lower', detail: true, baseline: framed.baseline.map(r => r.cpu / count), faultline: framed.faultline.map(r => r.cpu / count) }
    ]
  }
}
