import zlib from 'node:zlib'
import { request } from 'undici'
import compress from '@fastify/compress'
import type { FastifyReply } from 'fastify'
import { bareApp, faultlineApp } from '../lib/app.js'
import type { Harness } from '../lib/harness.js'
import type { Case, Row } from '../lib/types.js'
import { ndjsonLines, records } from './stream.js'

// Case 4c: gzip-compressed ndjson. Baseline: @fastify/compress compressing a
// hand-rolled ndjson Readable given to `reply.send()` (one compressor pass,
// no flush: the client gets bytes when zlib's buffer fills). Faultline:
// `reply.streamSafe()` ndjson framing, compressed because @fastify/compress is
// registered, with a sync flush after every record so streaming stays
// streaming. The gap is the price of that flush (and of framing).

const TYPE = 'application/x-ndjson'

interface Gunzipped { seconds: number, wire: number, newlines: number }

/** Fetches with `Accept-Encoding: gzip`, gunzips, counts records. */
async function readGzip (url: string): Promise<Gunzipped> {
  const t0 = process.hrtime.bigint()
  const res = await request(url, { headers: { 'accept-encoding': 'gzip' } })
  if (res.statusCode !== 200 || res.headers['content-encoding'] !== 'gzip') throw new Error(`${url}: status ${res.statusCode}, encoding ${String(res.headers['content-encoding'])}`)
  let wire = 0
  let newlines = 0
  const gunzip = zlib.createGunzip()
  const counting = (async () => {
    for await (const chunk of gunzip as AsyncIterable<Buffer>) {
      for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) newlines++
    }
  })()
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    wire += chunk.length
    if (!gunzip.write(chunk)) await new Promise(resolve => gunzip.once('drain', resolve))
  }
  gunzip.end()
  await counting
  return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, wire, newlines }
}

export const streamCompress: Case = {
  id: '4c',
  title: 'gzip ndjson: reply.streamSafe (flush per record) vs @fastify/compress on reply.send(stream)',
  requires: ['http', 'stream'],
  async build (ctx) {
    const count = ctx.settings.records
    const app = ctx.variant === 'baseline' ? bareApp(ctx) : await faultlineApp(ctx, ['http', 'stream'])
    await app.register(compress, { customTypes: /x-ndjson/, encodings: ['gzip'] })
    if (ctx.variant === 'baseline') {
      app.get('/records', (request, reply) => reply.type(TYPE).send(ndjsonLines(count)))
    } else {
      type Streaming = FastifyReply & { streamSafe: (source: unknown, options?: { framing?: 'raw' | 'ndjson' }) => FastifyReply }
      app.get('/records', (request, reply) => (reply as Streaming).streamSafe(records(count), { framing: 'ndjson' }))
    }
    return app
  },
  async bench (h: Harness): Promise<Row[]> {
    const count = h.settings.records
    const servers = await h.pair()
    const runs = await h.alternate(servers, async (server) => {
      const r = await readGzip(server.url + '/records')
      const expected = count + (server.variant === 'faultline' ? 1 : 0)
      if (r.newlines !== expected) throw new Error(`${server.variant} /records: ${r.newlines} of ${expected} lines`)
      return r
    })
    await h.closeAll()
    return [
      { name: `4c stream ndjson gzip ${count.toLocaleString('en-US')} records`, unit: 'rec/s', better: 'higher', baseline: runs.baseline.map(r => count / r.value.seconds), faultline: runs.faultline.map(r => count / r.value.seconds) },
      { name: '4c stream ndjson gzip server CPU per record', unit: 'µs', better: 'lower', detail: true, baseline: runs.baseline.map(r => r.cpu / count), faultline: runs.faultline.map(r => r.cpu / count) },
      { name: '4c stream ndjson gzip bytes on the wire per record', unit: 'B', better: 'lower', detail: true, baseline: runs.baseline.map(r => r.value.wire / count), faultline: runs.faultline.map(r => r.value.wire / count) }
    ]
  }
}
