import t, { type Test } from 'tap'
import zlib from 'node:zlib'
import http, { type ServerResponse } from 'node:http'
import net, { type AddressInfo } from 'node:net'
import Fastify from 'fastify'
import { negotiateEncoding, isCompressibleType, chooseEncoding, CompressingSink } from '../lib/stream-compress.js'
import { faultlineHttp, faultlineStream } from '../index.js'
import { guardProcess } from './helpers/guard.js'
import { waitFor } from './helpers/stream-app.js'

guardProcess(t)

t.test('negotiateEncoding: the highest q-value wins, ties go to brotli, q=0 refuses', async t => {
  const cases: Array<[string | string[] | undefined, string | undefined]> = [
    [undefined, undefined],
    ['', undefined],
    ['identity', undefined],
    ['gzip', 'gzip'],
    ['x-gzip', 'gzip'],
    ['GZIP, BR', 'br'],
    ['gzip, deflate, br', 'br'],
    ['br;q=0.5, gzip', 'gzip'],
    ['br;q=0.5, gzip;q=0.4', 'br'],
    ['*', 'br'],
    ['*;q=0.1, gzip;q=0.5', 'gzip'],
    ['br;q=0, *', 'gzip'],
    ['gzip;q=0, br;q=0', undefined],
    ['*;q=0', undefined],
    ['gzip;q=2', undefined],
    ['gzip;q=abc', undefined],
    ['gzip;q=0.1234', undefined],
    ['gzip; q=1.000', 'gzip'],
    ['gzip;level=1', 'gzip'],
    ['deflate, zstd', undefined],
    [['gzip', 'br;q=0.2'], 'gzip'],
    ['gzip,' + ' '.repeat(2000), undefined]
  ]
  for (const [header, expected] of cases) t.equal(negotiateEncoding(header), expected, JSON.stringify(header))
})

t.test('isCompressibleType: text, JSON, ndjson, XML, JavaScript, octet-stream; never SSE or media', async t => {
  for (const type of ['text/plain', 'text/csv; charset=utf-8', 'application/json', 'application/problem+json', 'application/x-ndjson', 'application/ndjson',
    'application/xml', 'image/svg+xml', 'application/javascript', 'text/javascript', 'application/octet-stream']) {
    t.ok(isCompressibleType(type), type)
  }
  for (const type of ['text/event-stream', 'image/png', 'video/mp4', 'application/zip', 'application/gzip', 'application/jsonish', '', undefined, 42]) {
    t.notOk(isCompressibleType(type), String(type))
  }
})

t.test('chooseEncoding: auto follows @fastify/compress; the opt-out header', async t => {
  const headers = { 'accept-encoding': 'gzip' }
  t.equal(chooseEncoding({ option: 'auto', compressRegistered: true, headers }), 'gzip')
  t.equal(chooseEncoding({ option: 'auto', compressRegistered: false, headers }), undefined)
  t.equal(chooseEncoding({ option: true, compressRegistered: false, headers }), 'gzip')
  t.equal(chooseEncoding({ option: false, compressRegistered: true, headers }), undefined)
  t.equal(chooseEncoding({ option: true, compressRegistered: true, headers: { ...headers, 'x-no-compression': '' } }), undefined)
})

t.test('faultlineStream: the compress option is validated', async t => {
  for (const compress of ['yes', 1, {}]) {
    const app = Fastify()
    app.register(faultlineHttp)
    app.register(faultlineStream, { compress: compress as never })
    await t.rejects(async () => { await app.ready() }, { code: 'FST_FAULTLINE_INVALID_OPTION', message: /compress/ }, String(compress))
  }
  const app = Fastify()
  await app.register(faultlineHttp)
  await app.register(faultlineStream)
  app.get('/', async (request, reply) => reply.streamSafe(['x'] as never, { compress: 'gzip' as never }))
  const res = await app.inject('/')
  t.equal(res.statusCode, 500, 'a bad call option is a programmer error')
})

/** A server whose one route hands its response to `use`; returns the URL. */
async function server (t: Test, use: (res: ServerResponse) => void): Promise<string> {
  const s = http.createServer((req, res) => use(res))
  await new Promise<void>(resolve => s.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { s.closeAllConnections(); s.close() })
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`
}

t.test('CompressingSink: Vary is merged; drain listeners move to the compressor', async t => {
  let sink: CompressingSink | undefined
  const drains: string[] = []
  const url = await server(t, res => {
    sink = new CompressingSink(res, 'gzip')
    const listener = (): void => { drains.push('drain') }
    const other = (): void => {}
    sink.on('drain', listener)
    sink.on('drain', other)
    sink.off('drain', other)
    const headers: http.OutgoingHttpHeaders = { 'content-type': 'text/plain', vary: ['Origin'] as never }
    sink.begin(headers, 200)
    t.equal(headers.vary, 'Origin, accept-encoding')
    const again: http.OutgoingHttpHeaders = { 'content-type': 'text/plain', vary: 'Accept-Encoding' }
    new CompressingSink(res, 'gzip').begin(again, 200)
    t.equal(again.vary, 'Accept-Encoding', 'already there: not repeated')
    const star: http.OutgoingHttpHeaders = { 'content-type': 'text/plain', vary: '*' }
    new CompressingSink(res, 'br').begin(star, 200)
    t.equal(star.vary, '*')
    res.writeHead(200, headers)
    // Incompressible bytes, past every buffer, until the compressor asks to wait.
    let i = 0
    const fill = (): void => {
      while (i++ < 64) {
        if (!sink!.write(Buffer.from(Array.from({ length: 65536 }, () => Math.floor(Math.random() * 256))))) {
          sink!.off('drain', listener)
          sink!.end()
          return
        }
      }
      sink!.end()
    }
    fill()
  })
  const res = await fetch(url)
  t.equal(res.headers.get('content-encoding'), 'gzip')
  t.ok((await res.arrayBuffer()).byteLength > 0)
  t.ok(sink!.writableEnded)
})

t.test('CompressingSink.truncate: a client that stopped reading is cut off after the grace', async t => {
  let serverSocket: net.Socket | undefined
  const url = await server(t, res => {
    serverSocket = res.socket!
    const sink = new CompressingSink(res, 'gzip')
    const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/octet-stream' }
    sink.begin(headers, 200)
    res.writeHead(200, headers)
    for (let i = 0; i < 64; i++) sink.write(Buffer.from(Array.from({ length: 65536 }, () => Math.floor(Math.random() * 256))))
    sink.truncate(100)
  })
  const { hostname, port } = new URL(url)
  const socket = net.connect(Number(port), hostname)
  t.teardown(() => socket.destroy())
  socket.write(`GET / HTTP/1.1\r\nHost: ${hostname}\r\n\r\n`)
  // Read a little, then stop reading: the flush stays stuck behind the full socket.
  await new Promise(resolve => socket.once('data', resolve))
  socket.pause()
  await waitFor(() => serverSocket !== undefined, 'the response')
  await new Promise(resolve => serverSocket!.once('close', resolve))
  t.pass('the server closed the connection')
})

t.test('CompressingSink: a compressor error cuts the response; a sink that never engaged truncates as raw', async t => {
  const url = await server(t, res => {
    const sink = new CompressingSink(res, 'br')
    const headers: http.OutgoingHttpHeaders = { 'content-type': 'text/plain' }
    sink.begin(headers, 200)
    res.writeHead(200, headers)
    sink.write('partial')
    setTimeout(() => { (sink as unknown as { compressor: zlib.BrotliCompress }).compressor.destroy(new Error('out of memory')) }, 20)
  })
  const cut = await fetch(url)
  await t.rejects(cut.text(), TypeError, 'the body is cut')

  const url2 = await server(t, res => {
    const sink = new CompressingSink(res, 'gzip')
    const headers: http.OutgoingHttpHeaders = { 'content-type': 'image/png' }
    sink.begin(headers, 200)
    t.equal(headers['content-encoding'], undefined)
    res.writeHead(200, headers)
    sink.write('raw bytes')
    sink.truncate()
  })
  const raw = await fetch(url2)
  const reader = raw.body!.getReader()
  t.equal(new TextDecoder().decode((await reader.read()).value), 'raw bytes')
  await t.rejects(reader.read(), TypeError, 'truncated without compression')
})
