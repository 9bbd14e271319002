import t from 'tap'
import zlib from 'node:zlib'
import { request as httpRequest } from 'node:http'
import compress from '@fastify/compress'
import { NotFoundError, ServiceUnavailableError } from '../../index.js'
import { guardProcess } from '../helpers/guard.js'
import { compatApp, isProblem } from '../helpers/compat-app.js'
import { readBody, waitFor } from '../helpers/stream-app.js'
import { within } from '../helpers/within.js'

guardProcess(t)

async function * once (chunk: string | Uint8Array): AsyncGenerator<string | Uint8Array> { yield chunk }

const tick = async (): Promise<void> => await new Promise(resolve => setImmediate(resolve))

/** Raw bytes of a response, undecoded: what went over the wire. */
async function rawResponse (url: string, headers: Record<string, string>): Promise<{ status: number, headers: Record<string, unknown>, body: Buffer, error: Error | undefined }> {
  return await new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers }, res => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      const done = (error?: Error): void => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks), error })
      res.on('end', () => done())
      res.on('error', done)
      res.on('aborted', () => done(new Error('aborted')))
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('@fastify/compress + streamSafe: ndjson is compressed, flushed per record, and decoded by the client', async t => {
  let clientGotFirst: () => void = () => {}
  const gotFirst = new Promise<void>(resolve => { clientGotFirst = resolve })
  const { url } = await compatApp(t, async app => {
    await app.register(compress)
    app.get('/json', async () => ({ items: Array.from({ length: 200 }, (_, i) => ({ id: i, name: `item ${i}` })) }))
    app.get('/export', async (request, reply) => reply.streamSafe((async function * () {
      yield { id: 0 }
      // Streaming stays streaming: the next record waits until the client has
      // decoded the first, which it can only do if the compressor flushed it.
      await gotFirst
      for (let i = 1; i < 500; i++) yield { id: i, name: `item ${i}`, padding: 'x'.repeat(50) }
    }()), { framing: 'ndjson' }))
  }, { listen: true })

  const json = await fetch(`${url}/json`, { headers: { 'accept-encoding': 'gzip' } })
  t.equal(json.headers.get('content-encoding'), 'gzip', 'an ordinary JSON route: @fastify/compress')

  for (const encoding of ['gzip', 'br']) {
    const res = await fetch(`${url}/export`, { headers: { 'accept-encoding': encoding } })
    t.equal(res.status, 200)
    t.equal(res.headers.get('content-encoding'), encoding, `${encoding}: Content-Encoding`)
    t.equal(res.headers.get('vary'), 'accept-encoding')
    t.equal(res.headers.get('content-type'), 'application/x-ndjson')
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader()
    let text = ''
    while (!text.includes('\n')) {
      const { value, done } = await within(t, reader.read(), `${encoding}: the first record, decoded, before the producer goes on`)
      if (done === true) break
      text += value
    }
    t.same(JSON.parse(text.slice(0, text.indexOf('\n'))), { type: 'data', data: { id: 0 } }, `${encoding}: first record`)
    clientGotFirst()
    for (;;) {
      const { value, done } = await reader.read()
      if (done === true) break
      text += value
    }
    const lines = text.trimEnd().split('\n').map(l => JSON.parse(l))
    t.equal(lines.length, 501, `${encoding}: every record and the end`)
    t.same(lines.at(-1), { type: 'end' }, `${encoding}: a clean end`)
    t.same(lines[499].data.id, 499)
  }

  const raw = await rawResponse(`${url}/export`, { 'accept-encoding': 'gzip' })
  const decoded = zlib.gunzipSync(raw.body).toString()
  t.ok(raw.body.length < decoded.length / 3, `compressed on the wire: ${raw.body.length} bytes for ${decoded.length}`)
})

t.test('@fastify/compress + streamSafe: a compressed stream that fails mid-way is still detected', async t => {
  const { url, reports } = await compatApp(t, async app => {
    await app.register(compress)
    app.get('/raw', async (request, reply) => reply.type('text/csv').streamSafe(async function * () {
      for (let i = 0; i < 100; i++) { await tick(); yield `${i},row ${i}\n` }
      throw new Error('db gone')
    }()))
    app.get('/ndjson', async (request, reply) => reply.streamSafe((async function * () {
      yield { id: 1 }
      await tick()
      throw new ServiceUnavailableError('Try later', { retryAfter: 5 })
    }()), { framing: 'ndjson' }))
  }, { listen: true })

  for (const encoding of ['gzip', 'br']) {
    const res = await fetch(`${url}/raw`, { headers: { 'accept-encoding': encoding } })
    t.equal(res.headers.get('content-encoding'), encoding)
    const { text, error } = await readBody(res)
    t.ok(error instanceof TypeError, `${encoding}: the client sees an incomplete body, never a clean end`)
    t.ok(text.startsWith('0,row 0\n1,row 1\n'), `${encoding}: what was flushed before the failure decodes`)
    t.ok(text.length <= 100 * 12, `${encoding}: ${text.length} bytes before the cut`)

    const raw = await rawResponse(`${url}/raw`, { 'accept-encoding': encoding })
    t.ok(raw.error !== undefined, `${encoding}: the chunked body has no terminating chunk`)
    const decode = encoding === 'gzip' ? zlib.gunzipSync : zlib.brotliDecompressSync
    t.throws(() => decode(raw.body), `${encoding}: the compressed stream is not finished`)
    const partial = (encoding === 'gzip' ? zlib.gunzipSync : zlib.brotliDecompressSync)(raw.body, { finishFlush: encoding === 'gzip' ? zlib.constants.Z_SYNC_FLUSH : zlib.constants.BROTLI_OPERATION_FLUSH })
    t.match(partial.toString(), /^0,row 0\n(?:\d+,row \d+\n)*$/, `${encoding}: every record sent decodes whole`)
  }
  t.equal(reports.filter(r => r.context.phase === 'mid-stream').length, 4, 'each failure reported once, mid-stream')

  const nd = await fetch(`${url}/ndjson`, { headers: { 'accept-encoding': 'gzip' } })
  t.equal(nd.headers.get('content-encoding'), 'gzip')
  const lines = (await nd.text()).trimEnd().split('\n').map(l => JSON.parse(l))
  t.same(lines[0], { type: 'data', data: { id: 1 } })
  t.match(lines[1], { type: 'error', error: { status: 503, code: 'SERVICE_UNAVAILABLE', detail: 'Service Unavailable' } }, 'ndjson: the error record, compressed, then a finished stream')
})

t.test('@fastify/compress + streamSafe: when a body is not compressed', async t => {
  const { url } = await compatApp(t, async app => {
    await app.register(compress)
    const rows = async function * (): AsyncGenerator<string> { yield 'a,b\n'; await tick(); yield 'c,d\n' }
    app.get('/csv', async (request, reply) => reply.type('text/csv').streamSafe(rows()))
    app.get('/opt-out', async (request, reply) => reply.type('text/csv').streamSafe(rows(), { compress: false }))
    app.get('/route-off', { compress: false }, async (request, reply) => reply.type('text/csv').streamSafe(rows()))
    app.get('/png', async (request, reply) => reply.streamSafe(rows(), { type: 'image/png' }))
    app.get('/partial', async (request, reply) => reply.code(206).header('content-range', 'bytes 0-7/100').type('text/csv').streamSafe(rows()))
    app.get('/encoded', async (request, reply) => reply.header('content-encoding', 'gzip').type('text/csv').streamSafe(once(zlib.gzipSync('a,b\nc,d\n'))))
    app.get('/missing', async (request, reply) => reply.streamSafe(async () => { throw new NotFoundError('No export 7') }))
  }, { listen: true })

  const plain = await rawResponse(`${url}/csv`, {})
  t.equal(plain.headers['content-encoding'], undefined, 'no Accept-Encoding')
  t.equal(plain.body.toString(), 'a,b\nc,d\n')
  t.equal((await rawResponse(`${url}/csv`, { 'accept-encoding': 'gzip;q=0, br;q=0' })).headers['content-encoding'], undefined, 'q=0 refuses')
  t.equal((await rawResponse(`${url}/csv`, { 'accept-encoding': 'gzip', 'x-no-compression': '1' })).headers['content-encoding'], undefined, '@fastify/compress\'s x-no-compression')
  t.equal((await rawResponse(`${url}/opt-out`, { 'accept-encoding': 'gzip' })).body.toString(), 'a,b\nc,d\n', 'compress: false on the call')
  t.equal((await rawResponse(`${url}/route-off`, { 'accept-encoding': 'gzip' })).body.toString(), 'a,b\nc,d\n', '@fastify/compress off for the route')
  t.equal((await rawResponse(`${url}/png`, { 'accept-encoding': 'gzip' })).headers['content-encoding'], undefined, 'a type not worth compressing')
  const partial = await rawResponse(`${url}/partial`, { 'accept-encoding': 'gzip' })
  t.equal(partial.status, 206)
  t.equal(partial.headers['content-encoding'], undefined, 'a range: its offsets count unencoded bytes')
  const encoded = await fetch(`${url}/encoded`, { headers: { 'accept-encoding': 'gzip' } })
  t.equal(await encoded.text(), 'a,b\nc,d\n', 'a body the route encoded itself is not encoded twice')

  const missing = await fetch(`${url}/missing`, { headers: { 'accept-encoding': 'gzip' } })
  t.equal(missing.status, 404, 'a failure before the first byte: the problem response, as ever')
  t.ok(isProblem(missing.headers.get('content-type')))
  t.equal((await missing.json()).detail, 'No export 7')

  const head = await fetch(`${url}/csv`, { method: 'HEAD', headers: { 'accept-encoding': 'gzip' } })
  t.equal(head.headers.get('content-encoding'), 'gzip', 'HEAD: the headers GET would send')
  t.equal(await head.text(), '')
})

t.test('streamSafe compression without @fastify/compress: off unless asked for', async t => {
  const { url } = await compatApp(t, app => {
    app.get('/csv', async (request, reply) => reply.type('text/csv').streamSafe(once('a,b\n')))
    app.get('/forced', async (request, reply) => reply.type('text/csv').streamSafe(once('a,b\n'), { compress: true }))
  }, { listen: true })
  t.equal((await rawResponse(`${url}/csv`, { 'accept-encoding': 'gzip' })).headers['content-encoding'], undefined, '\'auto\' without @fastify/compress')
  const forced = await rawResponse(`${url}/forced`, { 'accept-encoding': 'gzip' })
  t.equal(forced.headers['content-encoding'], 'gzip', 'compress: true on the call')
  t.equal(zlib.gunzipSync(forced.body).toString(), 'a,b\n')
})

t.test('a client that leaves a compressed stream stops the producer', async t => {
  let stopped = false
  let produced = 0
  const { url, reports } = await compatApp(t, async app => {
    await app.register(compress)
    app.get('/endless', async (request, reply) => reply.streamSafe((async function * () {
      try {
        for (;;) { await tick(); produced++; yield { n: produced } }
      } finally { stopped = true }
    }()), { framing: 'ndjson' }))
  }, { listen: true })
  const controller = new AbortController()
  const res = await fetch(`${url}/endless`, { headers: { 'accept-encoding': 'br' }, signal: controller.signal })
  const reader = res.body!.getReader()
  await reader.read()
  controller.abort()
  await waitFor(() => stopped, 'the generator to be returned')
  await waitFor(() => reports.some(r => r.fault.status === 499), 'the client abort report')
  t.ok(stopped)
})
