// Resumable streams, server side: Range + If-Range for raw bodies with
// etag + length, record ids + Last-Event-ID for ndjson, and the exact-length
// rule (more or fewer bytes than declared is a fault, never cut or padded).
import t from 'tap'
import http2 from 'node:http2'
import { Readable } from 'node:stream'
import Fastify from 'fastify'
import { guardProcess } from './helpers/guard.js'
import { streamApp, readBody } from './helpers/stream-app.js'
import { makeBody, sliceSource } from './helpers/resumable.js'
import { faultlineHttp, faultlineStream, NotFoundError, type StreamResume, type StreamSafeResumableOptions } from '../index.js'

guardProcess(t)

const body = makeBody(100_000, 7)
const etag = '"body-v1"'

async function bytes (response: Response): Promise<Buffer> {
  return Buffer.from(await response.arrayBuffer())
}

t.test('raw with etag and length: 200 with validators, 206 for a single range', async t => {
  const opened: StreamResume[] = []
  let closed = 0
  const s = await streamApp(t, app => {
    app.get('/file', async (request, reply) => reply.streamSafe(
      sliceSource(body, { chunk: 4096, opened: r => opened.push(r), closed: () => { closed++ } }),
      { etag, length: body.length }
    ))
  })

  const whole = await fetch(s.url + '/file')
  t.equal(whole.status, 200)
  t.equal(whole.headers.get('accept-ranges'), 'bytes')
  t.equal(whole.headers.get('etag'), etag)
  t.equal(whole.headers.get('content-length'), String(body.length))
  t.equal(whole.headers.get('content-range'), null)
  t.ok((await bytes(whole)).equals(body))
  t.same(opened.at(-1), { offset: 0, lastEventId: undefined })

  const from = await fetch(s.url + '/file', { headers: { range: 'bytes=12345-', 'if-range': etag } })
  t.equal(from.status, 206)
  t.equal(from.headers.get('content-range'), `bytes 12345-${body.length - 1}/${body.length}`)
  t.equal(from.headers.get('content-length'), String(body.length - 12345))
  t.equal(from.headers.get('etag'), etag)
  t.ok((await bytes(from)).equals(body.subarray(12345)), 'the bytes from the offset on')
  t.equal(opened.at(-1)!.offset, 12345, 'the source starts at the offset')

  const mid = await fetch(s.url + '/file', { headers: { range: 'bytes=5000-5099' } })
  t.equal(mid.status, 206, 'no If-Range: the range applies')
  t.equal(mid.headers.get('content-range'), `bytes 5000-5099/${body.length}`)
  t.ok((await bytes(mid)).equals(body.subarray(5000, 5100)), 'the response stops at the last byte asked for')

  const tail = await fetch(s.url + '/file', { headers: { range: 'bytes=-10' } })
  t.equal(tail.status, 206)
  t.equal(tail.headers.get('content-range'), `bytes ${body.length - 10}-${body.length - 1}/${body.length}`)
  t.ok((await bytes(tail)).equals(body.subarray(body.length - 10)))

  const oneChunkEnd = await fetch(s.url + '/file', { headers: { range: 'bytes=0-4095' } })
  t.ok((await bytes(oneChunkEnd)).equals(body.subarray(0, 4096)), 'a range ending on a chunk boundary')

  t.equal(closed, opened.length, 'every source was closed, including those stopped at the end of a range')
  t.same(s.faults(), [], 'nothing reported')
})

t.test('If-Range that does not match, multiple ranges, bad ranges: the whole body', async t => {
  const s = await streamApp(t, app => {
    app.get('/file', async (request, reply) => reply.streamSafe(sliceSource(body), { etag, length: body.length }))
  })
  for (const headers of [
    { range: 'bytes=100-', 'if-range': '"body-v0"' } as Record<string, string>,
    { range: 'bytes=100-', 'if-range': `W/${etag}` },
    { range: 'bytes=100-', 'if-range': 'Wed, 21 Oct 2015 07:28:00 GMT' },
    { range: 'bytes=0-1,5-6' },
    { range: 'bytes=9-1' },
    { range: 'lines=1-2' },
    { range: 'bytes=abc' }
  ]) {
    const response = await fetch(s.url + '/file', { headers })
    t.equal(response.status, 200, JSON.stringify(headers))
    t.equal(response.headers.get('content-range'), null)
    t.ok((await bytes(response)).equals(body), 'the whole body, never a spliced one')
  }
  t.same(s.faults(), [])
})

t.test('an unsatisfiable range is a 416 problem with Content-Range: bytes */length', async t => {
  let opened = 0
  const s = await streamApp(t, app => {
    app.get('/file', async (request, reply) => reply.streamSafe(sliceSource(body, { opened: () => { opened++ } }), { etag, length: body.length }))
  })
  for (const range of [`bytes=${body.length}-`, 'bytes=-0', `bytes=${'9'.repeat(300)}-`]) {
    const response = await fetch(s.url + '/file', { headers: { range } })
    t.equal(response.status, 416, range)
    t.equal(response.headers.get('content-range'), `bytes */${body.length}`)
    t.match(response.headers.get('content-type'), /application\/problem\+json/)
    t.match(await response.json(), { status: 416, code: 'RANGE_NOT_SATISFIABLE', detail: `The requested range is outside the ${body.length} bytes of this body` })
  }
  t.equal(opened, 0, 'the source is never opened')
  t.equal(s.faults().length, 3, 'reported once per request')
  t.match(s.faults()[0], { level: 30, fault: { code: 'RANGE_NOT_SATISFIABLE' }, transport: 'stream', phase: 'before-response' }, 'at info')
})

t.test('HEAD: the validators and the length, no body, Range ignored', async t => {
  const s = await streamApp(t, app => {
    app.get('/file', async (request, reply) => reply.streamSafe(sliceSource(body), { etag, length: body.length }))
  })
  const head = await fetch(s.url + '/file', { method: 'HEAD', headers: { range: 'bytes=10-' } })
  t.equal(head.status, 200)
  t.equal(head.headers.get('content-length'), String(body.length))
  t.equal(head.headers.get('accept-ranges'), 'bytes')
  t.equal(head.headers.get('etag'), etag)
})

t.test('a bare etag is quoted; strings are counted in bytes; a Readable works; an empty body', async t => {
  const text = 'héllo wörld ✓'
  const size = Buffer.byteLength(text)
  const s = await streamApp(t, app => {
    app.get('/bare', async (request, reply) => reply.streamSafe(() => Readable.from([text]), { etag: 'abc123', length: size }))
    app.get('/text', async (request, reply) => reply.streamSafe(async function * (signal, { offset }) {
      yield Buffer.from(text).subarray(offset)
    }, { etag, length: size }))
    app.get('/strings', async (request, reply) => reply.streamSafe(async function * () {
      for (const c of text) yield c // multi-byte characters, counted as UTF-8
    }, { etag, length: size }))
    app.get('/empty', async (request, reply) => reply.streamSafe(async function * () {}, { etag, length: 0 }))
  })
  const bare = await fetch(s.url + '/bare')
  t.equal(bare.headers.get('etag'), '"abc123"')
  t.equal(await bare.text(), text)
  const ranged = await fetch(s.url + '/text', { headers: { range: 'bytes=1-2', 'if-range': etag } })
  t.equal(ranged.status, 206)
  t.equal(await ranged.text(), 'é', 'bytes 1-2 are the two bytes of é')
  const cut = await fetch(s.url + '/strings', { headers: { range: 'bytes=0-1' } })
  t.same([...(await bytes(cut))], [...Buffer.from(text).subarray(0, 2)], 'a chunk that straddles the end of the range is cut there')
  const empty = await fetch(s.url + '/empty', { headers: { range: 'bytes=0-' } })
  t.equal(empty.status, 200, 'no byte range exists in an empty body')
  t.equal(empty.headers.get('content-length'), '0')
  t.equal(await empty.text(), '')
  t.same(s.faults(), [])
})

t.test('a source that yields more or fewer bytes than length is a fault: truncated, never cut or padded', async t => {
  const s = await streamApp(t, app => {
    const options: StreamSafeResumableOptions = { etag, length: 1000 }
    app.get('/more-first', async (request, reply) => reply.streamSafe(async function * () { yield Buffer.alloc(1001) }, options))
    app.get('/more-later', async (request, reply) => reply.streamSafe(async function * () {
      yield Buffer.alloc(600)
      yield Buffer.alloc(600)
    }, options))
    app.get('/more-after-all', async (request, reply) => reply.streamSafe(async function * () {
      yield Buffer.alloc(500)
      yield Buffer.alloc(500)
      yield 'x'
    }, options))
    app.get('/more-after-one', async (request, reply) => reply.streamSafe(async function * () {
      yield Buffer.alloc(1000)
      yield 'x'
    }, options))
    app.get('/fewer', async (request, reply) => reply.streamSafe(async function * (signal, { offset }) { yield Buffer.alloc(999 - offset) }, options))
    app.get('/none', async (request, reply) => reply.streamSafe(async function * () {}, options))
  })
  const first = await fetch(s.url + '/more-first')
  t.equal(first.status, 500, 'before the first byte: a problem response')
  t.match(await first.json(), { code: 'INTERNAL' })
  t.match(s.faults().at(-1), { phase: 'before-response', err: { code: 'FST_FAULTLINE_STREAM_LENGTH', message: /more than the 1000 bytes expected from offset 0 \(length 1000\)/ } })

  for (const [path, sent, message] of [
    ['/more-later', 600, /more than the 1000 bytes/],
    // The bytes that complete the length are held until the source ends:
    // the client never sees a complete body from a source that goes on.
    ['/more-after-all', 500, /more than the 1000 bytes/],
    ['/fewer', 999, /ended after 999 of the 1000 bytes expected/]
  ] as const) {
    const response = await fetch(s.url + path)
    t.equal(response.status, 200)
    const read = await readBody(response)
    t.ok(read.error, `${path}: the body read fails (truncation)`)
    t.ok(read.text.length <= sent, `${path}: ${read.text.length} bytes, never the whole length`)
    t.match(s.faults().at(-1), { level: 50, phase: 'mid-stream', err: { code: 'FST_FAULTLINE_STREAM_LENGTH', message } }, path)
  }
  const one = await fetch(s.url + '/more-after-one')
  t.equal(one.status, 500, 'the whole body in one chunk, then more: nothing was sent yet, a problem response')
  await one.body?.cancel()
  const none = await fetch(s.url + '/none')
  t.equal(none.status, 500, 'a source that yields nothing for a non-empty length: a problem response')
  await none.body?.cancel()
  // A range whose end is before the body's end stops the source there: not a fault.
  const ranged = await fetch(s.url + '/more-later', { headers: { range: 'bytes=100-699' } })
  t.equal(ranged.status, 206)
  t.equal((await bytes(ranged)).length, 600)
  // A range to the end still holds the source to the declared length.
  const rangedFewer = await fetch(s.url + '/fewer', { headers: { range: 'bytes=10-' } })
  t.equal(rangedFewer.status, 206)
  t.ok((await readBody(rangedFewer)).error, 'a ranged response that comes up short is truncated too')
})

t.test('misuse: a clear error at the call, nothing streamed', async t => {
  const gen = sliceSource(body)
  const cases: Record<string, [unknown, unknown, RegExp]> = {
    etagOnly: [gen, { etag }, /invalid option etag: give etag and length together/],
    lengthOnly: [gen, { length: 5 }, /invalid option length: give etag and length together/],
    weak: [gen, { etag: 'W/"v1"', length: 5 }, /invalid option etag: a weak entity-tag cannot validate byte ranges/],
    badEtag: [gen, { etag: 'a b', length: 5 }, /invalid option etag: must be a strong entity-tag/],
    numberEtag: [gen, { etag: 5, length: 5 }, /invalid option etag: must be a strong entity-tag/],
    negative: [gen, { etag, length: -1 }, /invalid option length: must be the size in bytes, a non-negative safe integer, got -1/],
    fraction: [gen, { etag, length: 1.5 }, /got 1\.5/],
    nan: [gen, { etag, length: Number.NaN }, /got NaN/],
    huge: [gen, { etag, length: 2 ** 53 }, /non-negative safe integer/],
    stringLength: [gen, { etag, length: '5' }, /got "5"/],
    notAFunction: [Readable.from([body]), { etag, length: body.length }, /needs a source function \(signal, \{ offset \}\)/],
    ndjsonRange: [gen, { framing: 'ndjson', etag, length: 5 }, /byte ranges are for raw framing/],
    idRaw: [gen, { id: String }, /invalid option id: record ids are for framing: 'ndjson'/],
    idNotFunction: [gen, { framing: 'ndjson', id: 'key' }, /invalid option id: must be a function \(item, index\) => string, got "key"/],
    idNoFunctionSource: [Readable.from([{ a: 1 }], { objectMode: true }), { framing: 'ndjson', id: String }, /needs a source function \(signal, \{ lastEventId \}\)/]
  }
  const s = await streamApp(t, app => {
    app.get('/:kind', async (request, reply) => {
      const [source, options] = cases[(request.params as { kind: string }).kind]!
      return reply.streamSafe(source as never, options as never)
    })
  })
  for (const [kind, [, , message]] of Object.entries(cases)) {
    const response = await fetch(`${s.url}/${kind}`, { headers: { range: 'bytes=0-' } })
    t.equal(response.status, 500, kind)
    t.equal(response.headers.get('content-range'), null)
    t.match(await response.json(), { code: 'INTERNAL', detail: 'Internal Server Error' })
    t.match(s.faults().at(-1), { level: 50, phase: 'before-response', err: { code: 'FST_FAULTLINE_STREAM_OPTION', message } }, kind)
  }
})

t.test('ndjson with id: each data record carries its id; Last-Event-ID reaches the source', async t => {
  const rows = Array.from({ length: 20 }, (_, i) => ({ key: `row-${i}`, n: i }))
  const seen: StreamResume[] = []
  const s = await streamApp(t, app => {
    app.get('/rows', async (request, reply) => reply.streamSafe(async function * (signal, resume) {
      seen.push(resume)
      const after = resume.lastEventId === undefined ? -1 : rows.findIndex(r => r.key === resume.lastEventId)
      for (const row of rows.slice(after + 1)) yield row
    }, { framing: 'ndjson', id: (row: { key: string }) => row.key }))
    app.get('/raw-last-id', async (request, reply) => reply.streamSafe(async function * (signal, resume) {
      yield String(resume.lastEventId)
    }))
  })
  const all = (await (await fetch(s.url + '/rows')).text()).trim().split('\n').map(l => JSON.parse(l))
  t.same(all[0], { type: 'data', id: 'row-0', data: rows[0] })
  t.equal(all.length, 21)
  t.same(all.at(-1), { type: 'end' })
  t.same(seen.at(-1), { offset: 0, lastEventId: undefined })

  const resumed = (await (await fetch(s.url + '/rows', { headers: { 'last-event-id': 'row-16' } })).text()).trim().split('\n').map(l => JSON.parse(l))
  t.same(resumed.map(r => r.id), ['row-17', 'row-18', 'row-19', undefined])
  t.same(seen.at(-1), { offset: 0, lastEventId: 'row-16' })

  const empty = await fetch(s.url + '/rows', { headers: { 'last-event-id': '' } })
  await empty.text()
  t.equal(seen.at(-1)!.lastEventId, undefined, 'an empty Last-Event-ID is none')
  t.equal(await (await fetch(s.url + '/raw-last-id', { headers: { 'last-event-id': 'x y' } })).text(), 'x y', 'raw sources get it too')
})

t.test('a bad id is a fault: a problem before the first byte, an error record after it', async t => {
  const ids: Record<string, (item: number, index: number) => string> = {
    throws: (item) => { if (item === 2) throw new Error('no key'); return String(item) },
    number: (item) => (item === 2 ? 42 : String(item)) as string,
    newline: (item) => item === 2 ? 'a\nb' : String(item),
    empty: (item) => item === 2 ? '' : String(item),
    long: (item) => item === 2 ? 'x'.repeat(1025) : String(item),
    spaces: (item) => item === 2 ? ' padded ' : String(item),
    notFound: (item) => { if (item === 2) throw new NotFoundError('gone'); return String(item) }
  }
  const s = await streamApp(t, app => {
    app.get('/:kind/:from', async (request, reply) => {
      const { kind, from } = request.params as { kind: string, from: string }
      return reply.streamSafe(async function * () {
        for (let i = Number(from); i < 4; i++) yield i
      }, { framing: 'ndjson', id: ids[kind]! as (item: unknown, index: number) => string })
    })
  })
  for (const kind of Object.keys(ids)) {
    const before = await fetch(`${s.url}/${kind}/2`)
    t.equal(before.status, 500, `${kind}: the first record's id fails: a problem response`)
    t.match(await before.json(), { code: 'INTERNAL' })
    t.match(s.faults().at(-1), { phase: 'before-response', err: { code: 'FST_FAULTLINE_STREAM_CHUNK' } }, kind)

    const after = await fetch(`${s.url}/${kind}/0`)
    t.equal(after.status, 200)
    const lines = (await after.text()).trim().split('\n').map(l => JSON.parse(l))
    t.same(lines.slice(0, 2), [{ type: 'data', id: '0', data: 0 }, { type: 'data', id: '1', data: 1 }])
    t.match(lines[2], { type: 'error', error: { status: 500, code: 'INTERNAL' } }, `${kind}: then an error record`)
    t.equal(lines.length, 3)
    t.match(s.faults().at(-1), { phase: 'mid-stream', err: { code: 'FST_FAULTLINE_STREAM_CHUNK', message: /ndjson item 2/ } }, kind)
  }
})

t.test('HTTP/2 (h2c): 200 and 206 with validators, and no connection-specific header', async t => {
  const app = Fastify({ http2: true, forceCloseConnections: true })
  await app.register(faultlineHttp)
  await app.register(faultlineStream)
  app.get('/file', async (request, reply) => reply.streamSafe(sliceSource(body), { etag, length: body.length }))
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const client = http2.connect(url)
  t.teardown(() => client.close())
  async function get (headers: Record<string, string>): Promise<{ headers: http2.IncomingHttpHeaders, body: Buffer, rstCode: number | undefined }> {
    const stream = client.request({ ':path': '/file', ...headers })
    const chunks: Buffer[] = []
    stream.on('data', chunk => chunks.push(chunk))
    const [response] = await Promise.all([
      new Promise<http2.IncomingHttpHeaders>(resolve => stream.once('response', resolve)),
      new Promise(resolve => stream.once('close', resolve))
    ])
    return { headers: response, body: Buffer.concat(chunks), rstCode: stream.rstCode }
  }
  const whole = await get({})
  t.equal(whole.headers[':status'], 200)
  t.equal(whole.headers['accept-ranges'], 'bytes')
  t.equal(whole.headers.etag, etag)
  t.equal(whole.headers['content-length'], String(body.length))
  t.equal(whole.headers.connection, undefined)
  t.ok(whole.body.equals(body))
  t.equal(whole.rstCode, http2.constants.NGHTTP2_NO_ERROR)

  const part = await get({ range: 'bytes=70000-', 'if-range': etag })
  t.equal(part.headers[':status'], 206)
  t.equal(part.headers['content-range'], `bytes 70000-${body.length - 1}/${body.length}`)
  t.ok(part.body.equals(body.subarray(70000)))

  const mid = await get({ range: 'bytes=10-19' })
  t.equal(mid.headers[':status'], 206)
  t.ok(mid.body.equals(body.subarray(10, 20)), 'stops at the last byte asked for')

  const unsatisfiable = await get({ range: `bytes=${body.length}-` })
  t.equal(unsatisfiable.headers[':status'], 416)
  t.equal(unsatisfiable.headers['content-range'], `bytes */${body.length}`)
  t.match(JSON.parse(unsatisfiable.body.toString()), { code: 'RANGE_NOT_SATISFIABLE' })
})
