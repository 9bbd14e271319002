import t from 'tap'
import net from 'node:net'
import { Readable, Stream } from 'node:stream'
import { createReadStream } from 'node:fs'
import { guardProcess } from './helpers/guard.js'
import { streamApp, readBody, foreignStreamLogs, waitFor } from './helpers/stream-app.js'
import { NotFoundError, ForbiddenError, InternalError, ServiceUnavailableError, type StreamSafeRawOptions } from '../index.js'

guardProcess(t)

async function * chunks<T> (...items: T[]): AsyncGenerator<T> {
  for (const item of items) {
    await new Promise(resolve => setImmediate(resolve))
    yield item
  }
}

async function * failAfter<T> (items: T[], err: unknown): AsyncGenerator<T> {
  yield * chunks(...items)
  throw err
}

/** Sends a GET over a plain socket and returns every byte the server wrote before closing. */
async function rawGet (url: string, path: string): Promise<string> {
  const { hostname, port } = new URL(url)
  return await new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${hostname}\r\nConnection: close\r\n\r\n`)
    })
    let data = ''
    socket.setEncoding('latin1')
    socket.on('data', chunk => { data += chunk })
    socket.on('error', reject)
    socket.on('close', () => resolve(data))
  })
}

t.test('raw framing: a source that succeeds is streamed with a clean end', async t => {
  const signals: AbortSignal[] = []
  const s = await streamApp(t, app => {
    app.get('/async', async (request, reply) => reply.streamSafe(chunks<string | Uint8Array>('a', Buffer.from('b'), new Uint8Array([99]))))
    app.get('/callback', (request, reply) => {
      reply.code(201).header('x-kept', 'yes')
      reply.streamSafe(Readable.from(['x', 'y']), { type: 'text/plain; charset=utf-8' })
    })
    app.get('/await', async (request, reply) => {
      await reply.type('text/csv').streamSafe(signal => { signals.push(signal); return chunks('1,2\n') })
    })
    app.get('/promise', (request, reply) => {
      reply.streamSafe(async () => Readable.from([Buffer.from('from a promise')]))
    })
    app.get('/empty', async (request, reply) => reply.streamSafe(chunks<string>()))
    app.get('/empty-chunks', async (request, reply) => reply.streamSafe(chunks('', 'z', '')))
  })

  const a = await fetch(s.url + '/async')
  t.equal(a.status, 200)
  t.equal(a.headers.get('content-type'), 'application/octet-stream')
  t.equal(a.headers.get('content-length'), null)
  t.same(await readBody(a), { text: 'abc', error: undefined })

  const b = await fetch(s.url + '/callback')
  t.equal(b.status, 201)
  t.equal(b.headers.get('content-type'), 'text/plain; charset=utf-8')
  t.equal(b.headers.get('x-kept'), 'yes')
  t.equal(await b.text(), 'xy')

  const c = await fetch(s.url + '/await')
  t.equal(c.headers.get('content-type'), 'text/csv', 'a content type set on the reply is kept')
  t.equal(await c.text(), '1,2\n')
  t.equal(signals.length, 1)
  t.equal(signals[0]!.aborted, false, 'the signal is not aborted when the stream succeeds')

  t.equal(await (await fetch(s.url + '/promise')).text(), 'from a promise')

  const e = await fetch(s.url + '/empty')
  t.equal(e.status, 200)
  t.equal(await e.text(), '')
  t.equal(await (await fetch(s.url + '/empty-chunks')).text(), 'z')

  t.same(s.faults(), [], 'nothing is reported')
  t.same(s.reports, [])
  t.equal(s.lines.filter(l => l.msg === 'request completed').length, 6, 'Fastify still completes each request (onResponse runs)')
})

t.test('an error before the first byte is an ordinary problem response', async t => {
  const onError: unknown[] = []
  const s = await streamApp(t, app => {
    app.addHook('onError', async (request, reply, error) => { onError.push(error) })
    app.get('/thrown', async () => { throw new NotFoundError('no such report') })
    app.get('/stream', async (request, reply) => reply.streamSafe(failAfter<string>([], new NotFoundError('no such report'))))
    app.get('/readable', (request, reply) => { reply.streamSafe(createReadStream('/nonexistent/faultline-stream-test')) })
    app.get('/only-empty', async (request, reply) => reply.streamSafe(failAfter([''], new ForbiddenError('nope'))))
    app.get('/retry', async (request, reply) => reply.streamSafe(failAfter<string>([], new ServiceUnavailableError('later', { retryAfter: 7 }))))
  })

  const thrown = await fetch(s.url + '/thrown')
  const thrownBody = await thrown.json() as Record<string, unknown>
  const streamed = await fetch(s.url + '/stream')
  t.equal(streamed.status, 404)
  t.equal(streamed.headers.get('content-type'), thrown.headers.get('content-type'))
  const body = await streamed.json() as Record<string, unknown>
  t.same({ ...body, instance: undefined, requestId: undefined }, { ...thrownBody, instance: undefined, requestId: undefined }, 'the same body as a thrown fault')
  t.equal(body.detail, 'no such report')

  const lines = s.faults().filter(l => l.reqId === body.requestId)
  t.equal(lines.length, 1, 'one log line')
  t.match(lines[0], { level: 30, transport: 'stream', phase: 'before-response', handled: true, fault: { code: 'NOT_FOUND', status: 404 } })
  const reports = s.reports.filter(r => r.context.phase === 'before-response' && r.context.transport === 'stream')
  t.equal(reports.length, 1, 'the reporters are called once, with transport stream')
  t.equal(onError.length, 2, 'it goes through Fastify\'s error path (onError hooks run)')

  const missing = await fetch(s.url + '/readable')
  t.equal(missing.status, 500)
  t.match(await missing.json(), { status: 500, code: 'INTERNAL', detail: 'Internal Server Error' })
  t.match(s.faults().at(-1), { level: 50, phase: 'before-response', err: { message: /ENOENT/ } })

  const empty = await fetch(s.url + '/only-empty')
  t.equal(empty.status, 403, 'empty chunks do not count as the first byte')

  const retry = await fetch(s.url + '/retry')
  t.equal(retry.status, 503)
  t.equal(retry.headers.get('retry-after'), '7')
  await retry.body?.cancel()
  t.same(foreignStreamLogs(s.lines), [])
})

t.test('raw framing: an error after the headers truncates the response', async t => {
  const s = await streamApp(t, app => {
    app.get('/gen', async (request, reply) => reply.streamSafe(failAfter(['one,', 'two,'], new Error('database went away'))))
    app.get('/readable', (request, reply) => {
      const source = new Readable({ read () {} })
      source.push('partial')
      setTimeout(() => source.destroy(new Error('disk read failed')), 20)
      reply.streamSafe(source)
    })
    app.get('/object-chunk', async (request, reply) => reply.streamSafe(chunks<unknown>('ok', { not: 'bytes' }) as AsyncIterable<string>))
  })

  const response = await fetch(s.url + '/gen')
  t.equal(response.status, 200, 'the status went out with the headers')
  const { text, error } = await readBody(response)
  t.equal(text, 'one,two,', 'the bytes before the failure arrive')
  t.type(error, TypeError, 'the body read rejects: the client sees truncation')
  t.match(String((error as Error).message), /terminated/)

  const wire = await rawGet(s.url, '/gen')
  t.match(wire, /^HTTP\/1\.1 200 OK\r\n/)
  t.match(wire, /transfer-encoding: chunked/i)
  t.notOk(wire.endsWith('0\r\n\r\n'), 'no terminating zero-length chunk')

  const r2 = await readBody(await fetch(s.url + '/readable'))
  t.equal(r2.text, 'partial')
  t.type(r2.error, TypeError)

  const r3 = await readBody(await fetch(s.url + '/object-chunk'))
  t.equal(r3.text, 'ok')
  t.type(r3.error, TypeError)

  await waitFor(() => s.faults().length === 4, 'four reports')
  const faults = s.faults()
  t.same(faults.map(f => [f.level, f.transport, f.phase, (f.fault as { code: string }).code]), [
    [50, 'stream', 'mid-stream', 'INTERNAL'],
    [50, 'stream', 'mid-stream', 'INTERNAL'],
    [50, 'stream', 'mid-stream', 'INTERNAL'],
    [50, 'stream', 'mid-stream', 'INTERNAL']
  ], 'each failure is reported once, mid-stream, at error level')
  t.match(faults[0], { err: { message: 'database went away' } })
  t.match(faults[2], { err: { message: 'disk read failed' } })
  t.match(faults[3], { err: { message: /raw framing writes strings and Buffers, but chunk 1 is an object/ } })
  t.equal(s.reports.length, 4)
  t.same(foreignStreamLogs(s.lines), [], 'Fastify logs nothing of its own about it')
  t.same(s.lines.filter(l => l.level >= 40 && l.handled !== true), [], 'no other warning or error line')
})

t.test('raw framing: a failure when the socket is already gone just closes the response', async t => {
  let closed = false
  const s = await streamApp(t, app => {
    app.get('/', (request, reply) => {
      const source = new Readable({ read () {} })
      source.push('first')
      reply.raw.on('close', () => { closed = true })
      source.once('data', () => {
        setImmediate(() => {
          // The socket dies and the source fails in the same turn, before the close event.
          reply.raw.socket!.destroy()
          source.destroy(new Error('failed as the client vanished'))
        })
      })
      reply.streamSafe(source)
    })
  })
  const { error } = await readBody(await fetch(s.url + '/'))
  t.type(error, TypeError)
  await waitFor(() => closed && s.faults().length === 1, 'the report and the close')
  t.match(s.faults()[0], { level: 50, phase: 'mid-stream', err: { message: 'failed as the client vanished' } })
})

t.test('ndjson framing: data records, then an end or an error record', async t => {
  const s = await streamApp(t, app => {
    app.get('/ok', (request, reply) => { reply.streamSafe(Readable.from([{ a: 1 }, 'two', [3]]), { framing: 'ndjson' }) })
    app.get('/client-fault', async (request, reply) => reply.streamSafe(failAfter([{ n: 1 }], new ForbiddenError('token revoked')), { framing: 'ndjson' }))
    app.get('/server-fault', async (request, reply) => reply.streamSafe(failAfter([{ n: 1 }], new Error('secret connection string')), { framing: 'ndjson' }))
    app.get('/bigint', async (request, reply) => reply.streamSafe(chunks({ n: 1 }, { n: 2n }), { framing: 'ndjson' }))
    app.get('/bigint-first', async (request, reply) => reply.streamSafe(chunks(1n), { framing: 'ndjson' }))
    app.get('/undefined', async (request, reply) => reply.streamSafe(chunks(undefined, null), { framing: 'ndjson', type: 'application/jsonl' }))
    app.get('/empty', async (request, reply) => reply.streamSafe(chunks(), { framing: 'ndjson' }))
  })
  const records = async (path: string): Promise<{ status: number, type: string | null, records: any[] }> => {
    const response = await fetch(s.url + path)
    const { text, error } = await readBody(response)
    t.equal(error, undefined, `${path}: the body ends cleanly`)
    t.ok(text.endsWith('\n'), `${path}: every record ends with a newline`)
    return { status: response.status, type: response.headers.get('content-type'), records: text.split('\n').filter(Boolean).map(line => JSON.parse(line)) }
  }

  const ok = await records('/ok')
  t.equal(ok.type, 'application/x-ndjson')
  t.same(ok.records, [
    { type: 'data', data: { a: 1 } }, { type: 'data', data: 'two' }, { type: 'data', data: [3] }, { type: 'end' }
  ])

  const client = await records('/client-fault')
  t.equal(client.status, 200)
  t.same(client.records[0], { type: 'data', data: { n: 1 } })
  t.match(client.records[1], { type: 'error', error: { status: 403, code: 'FORBIDDEN', detail: 'token revoked', instance: '/client-fault' } })
  t.equal(client.records.length, 2, 'no end record after an error record')

  const server = await records('/server-fault')
  const error = server.records[1].error
  t.same(error, {
    type: 'about:blank', title: 'Internal Server Error', status: 500, detail: 'Internal Server Error', instance: '/server-fault', code: 'INTERNAL', requestId: error.requestId
  }, 'an unexposed fault is redacted as in HTTP responses')
  t.notMatch(JSON.stringify(server.records), /secret/)

  const big = await records('/bigint')
  t.same(big.records[0], { type: 'data', data: { n: 1 } })
  t.match(big.records[1], { type: 'error', error: { status: 500, code: 'INTERNAL' } })
  t.match(s.faults().find(l => l.reqId === big.records[1].error.requestId), { phase: 'mid-stream', err: { message: /ndjson item 1 cannot be serialized as JSON \(Do not know how to serialize a BigInt\)/ } })

  const first = await fetch(s.url + '/bigint-first')
  t.equal(first.status, 500, 'an item that cannot be serialized before the first byte is a 500 problem')
  t.equal(first.headers.get('content-type'), 'application/problem+json; charset=utf-8')
  await first.body?.cancel()

  const undef = await records('/undefined')
  t.equal(undef.type, 'application/jsonl')
  t.same(undef.records, [{ type: 'data', data: null }, { type: 'data', data: null }, { type: 'end' }])

  t.same((await records('/empty')).records, [{ type: 'end' }])

  t.same(s.faults().map(f => f.phase), ['mid-stream', 'mid-stream', 'mid-stream', 'before-response'])
  t.same(foreignStreamLogs(s.lines), [])
})

t.test('a source that is not a stream is a 500 with a descriptive log line', async t => {
  const s = await streamApp(t, app => {
    const cases: Record<string, () => unknown> = {
      number: () => 42,
      string: () => 'body',
      array: () => [1, 2],
      legacy: () => new Stream(),
      nullish: () => null,
      fn: () => () => ({ nope: true }),
      fnThrows: () => () => { throw new Error('could not open') },
      iteratorThrows: () => ({ [Symbol.asyncIterator] () { throw new Error('no iterator today') } }),
      hostile: () => new Proxy({}, { get () { throw new Error('hostile getter') } }),
      thenThrows: () => () => ({ get then () { throw new Error('then getter throws') } })
    }
    app.get('/:kind', async (request, reply) => {
      const { kind } = request.params as { kind: string }
      return reply.streamSafe(cases[kind]!() as Readable)
    })
  })
  const expected: Record<string, RegExp> = {
    number: /the source is 42, not a stream source; expected a Readable, an async iterable, or a function/,
    string: /the source is "body", not a stream source; use reply\.send\(\) for a complete body/,
    array: /the source is an array, not a stream source; wrap a synchronous iterable with Readable\.from\(\)/,
    legacy: /the source is an object, not a stream source; wrap an old-style stream with new Readable\(\)\.wrap\(stream\)/,
    nullish: /the source is null, not a stream source/,
    fn: /the source function returned an object, not a stream source/,
    fnThrows: /^could not open$/,
    iteratorThrows: /^no iterator today$/,
    hostile: /the source is an object, not a stream source; expected a Readable/,
    thenThrows: /^then getter throws$/
  }
  for (const [kind, message] of Object.entries(expected)) {
    const response = await fetch(`${s.url}/${kind}`)
    t.equal(response.status, 500, kind)
    t.match(await response.json(), { status: 500, code: 'INTERNAL', detail: 'Internal Server Error' }, `${kind}: nothing internal is sent`)
    t.match(s.faults().at(-1), { level: 50, transport: 'stream', phase: 'before-response', err: { message } }, `${kind}: the log line says what is wrong`)
  }
  t.match(s.faults()[0], { fault: { code: 'INTERNAL' }, err: { type: 'FaultlineError', code: 'FST_FAULTLINE_STREAM_SOURCE' } }, 'an adopted error logs as itself')
})

t.test('invalid per-call options are a 500 with a descriptive log line', async t => {
  const s = await streamApp(t, app => {
    const cases: Record<string, unknown> = {
      framing: { framing: 'xml' },
      idle: { idleTimeout: -1 },
      type: { type: 'text/plain\r\nx-injected: 1' },
      object: 'ndjson'
    }
    app.get('/:kind', async (request, reply) => {
      const { kind } = request.params as { kind: string }
      return reply.streamSafe(chunks('never'), cases[kind] as StreamSafeRawOptions)
    })
  })
  const expected: Record<string, RegExp> = {
    framing: /invalid option framing: must be 'raw' or 'ndjson', got "xml"/,
    idle: /invalid option idleTimeout: must be an integer number of milliseconds/,
    type: /invalid option type: must be a non-empty content type without control characters/,
    object: /invalid option options: must be an object, got "ndjson"/
  }
  for (const [kind, message] of Object.entries(expected)) {
    const response = await fetch(`${s.url}/${kind}`)
    t.equal(response.status, 500, kind)
    t.equal(response.headers.get('x-injected'), null)
    await response.body?.cancel()
    t.match(s.faults().at(-1), { level: 50, phase: 'before-response', err: { message } }, kind)
  }
})

t.test('a source function that returns a Promise: a failed open is a 502 unless it carries a status', async t => {
  const s = await streamApp(t, app => {
    app.get('/upstream', async (request, reply) => reply.streamSafe(chunks('upstream ', 'body')))
    app.get('/upstream-broken', async (request, reply) => reply.streamSafe(failAfter(['half'], new Error('upstream died'))))
    app.get('/proxy/:path', async (request, reply) => {
      const { path } = request.params as { path: string }
      const port = (app.server.address() as net.AddressInfo).port
      return reply.streamSafe(async signal => {
        const response = await fetch(`http://127.0.0.1:${port}/${path}`, { signal })
        return response.body!
      })
    })
    app.get('/refused', async (request, reply) => reply.streamSafe(async signal => {
      const response = await fetch('http://127.0.0.1:1/', { signal })
      return response.body!
    }))
    app.get('/own-status', async (request, reply) => reply.streamSafe(async () => { throw new NotFoundError('no such upstream object') }))
    app.get('/status-code', async (request, reply) => reply.streamSafe(async () => { throw Object.assign(new Error('teapot'), { statusCode: 418 }) }))
    app.get('/hostile', async (request, reply) => reply.streamSafe(async () => {
      throw Object.defineProperty({}, 'statusCode', { get () { throw new Error('getter') } })
    }))
    app.get('/proxy-object', async (request, reply) => reply.streamSafe(async () => {
      throw new Proxy({}, {})
    }))
  })
  const proxied = await fetch(s.url + '/proxy/upstream')
  t.equal(await proxied.text(), 'upstream body', 'an upstream web stream body is piped through')

  const refused = await fetch(s.url + '/refused')
  t.equal(refused.status, 502)
  t.match(await refused.json(), { status: 502, code: 'BAD_GATEWAY' })
  t.match(s.faults().at(-1), { level: 50, phase: 'before-response', err: { message: 'The stream source could not be opened', cause: [{ message: 'fetch failed' }] } })

  const own = await fetch(s.url + '/own-status')
  t.equal(own.status, 404)
  t.match(await own.json(), { detail: 'no such upstream object' })

  const teapot = await fetch(s.url + '/status-code')
  t.equal(teapot.status, 418)
  await teapot.body?.cancel()

  for (const path of ['/hostile', '/proxy-object']) {
    const hostile = await fetch(s.url + path)
    t.equal(hostile.status, 502, `${path}: a value that cannot be read carries no status`)
    await hostile.body?.cancel()
  }

  const broken = await readBody(await fetch(s.url + '/proxy/upstream-broken'))
  t.equal(broken.text, 'half')
  t.type(broken.error, TypeError, 'a broken upstream body truncates the proxied response')
  await waitFor(() => s.faults().filter(f => f.phase === 'mid-stream').length === 2, 'both mid-stream reports')
  t.same(foreignStreamLogs(s.lines), [])
})

t.test('idleTimeout: a silent source fails with GatewayTimeoutError', async t => {
  const stall = (): AsyncIterable<string> => ({
    [Symbol.asyncIterator]: () => ({ next: async () => await new Promise<IteratorResult<string>>(() => {}) })
  })
  async function * firstThenStall<T> (first: T): AsyncGenerator<T> {
    yield first
    await new Promise(() => {})
  }
  const s = await streamApp(t, app => {
    app.get('/before', async (request, reply) => reply.streamSafe(stall(), { idleTimeout: 50 }))
    app.get('/raw', async (request, reply) => reply.streamSafe(firstThenStall('first'), { idleTimeout: 50 }))
    app.get('/ndjson', async (request, reply) => reply.streamSafe(firstThenStall({ n: 1 }), { framing: 'ndjson', idleTimeout: 50 }))
    app.get('/default', async (request, reply) => reply.streamSafe(stall()))
    app.get('/opening', async (request, reply) => reply.streamSafe(async () => await new Promise<Readable>(() => {})))
    app.get('/off', async (request, reply) => reply.streamSafe((async function * () {
      await new Promise(resolve => setTimeout(resolve, 100))
      yield 'slow but allowed'
    }()), { idleTimeout: 0 }))
  }, { idleTimeout: 60 })

  const before = await fetch(s.url + '/before')
  t.equal(before.status, 504)
  t.match(await before.json(), { status: 504, code: 'GATEWAY_TIMEOUT' })

  const raw = await readBody(await fetch(s.url + '/raw'))
  t.equal(raw.text, 'first')
  t.type(raw.error, TypeError, 'raw: truncated')

  const nd = await fetch(s.url + '/ndjson')
  const lines = (await nd.text()).split('\n').filter(Boolean).map(l => JSON.parse(l))
  t.match(lines, [{ type: 'data', data: { n: 1 } }, { type: 'error', error: { status: 504, code: 'GATEWAY_TIMEOUT' } }])
  t.equal(lines.length, 2, 'one data record, one error record, nothing after it')

  t.equal((await fetch(s.url + '/default')).status, 504, 'the plugin option is the default')
  t.equal((await fetch(s.url + '/opening')).status, 504, 'waiting for the source to open counts as idle')
  t.equal(await (await fetch(s.url + '/off')).text(), 'slow but allowed', 'idleTimeout: 0 overrides the plugin default')

  await waitFor(() => s.faults().length === 5, 'five reports')
  t.match(s.faults()[1], { level: 50, phase: 'mid-stream', err: { message: 'The stream source produced nothing for 50 ms' } })
})

t.test('HEAD: the headers only, and the source is stopped', async t => {
  let finished = false
  const s = await streamApp(t, app => {
    app.get('/', async (request, reply) => reply.streamSafe((async function * () {
      try {
        for (let i = 0; i < 1e6; i++) yield 'chunk'
      } finally {
        finished = true
      }
    }()), { framing: 'ndjson' }))
    app.get('/empty', async (request, reply) => reply.streamSafe(chunks(), { framing: 'ndjson' }))
  })
  const head = await fetch(s.url + '/', { method: 'HEAD' })
  t.equal(head.status, 200)
  t.equal(head.headers.get('content-type'), 'application/x-ndjson')
  t.equal(await head.text(), '')
  await waitFor(() => finished, "the generator's finally")
  const empty = await fetch(s.url + '/empty', { method: 'HEAD' })
  t.equal(empty.status, 200)
  t.same(s.faults(), [])
})

t.test('an async handler that forgets to return the reply: the misuse is logged, the source stopped', async t => {
  let finished = false
  const s = await streamApp(t, app => {
    app.get('/', async (request, reply) => {
      reply.streamSafe(async function * () {
        try {
          await new Promise(resolve => setTimeout(resolve, 30))
          yield 'too late'
        } finally {
          finished = true
        }
      }())
    })
  })
  const response = await fetch(s.url + '/')
  t.equal(response.status, 200)
  t.equal(await response.text(), '', 'Fastify already sent an empty reply')
  await waitFor(() => finished && s.faults().length === 1, 'the misuse report')
  t.match(s.faults()[0], { level: 50, transport: 'stream', err: { message: /the response was already sent before the stream started/ } })
})

t.test('a misuse found when the response closes (the reply was answered elsewhere)', async t => {
  let finished = false
  const s = await streamApp(t, app => {
    app.get('/', (request, reply) => {
      reply.streamSafe(async function * () {
        try {
          await new Promise(() => {})
          yield 'never'
        } finally {
          finished = true
        }
      }())
      reply.send('answered elsewhere')
    })
  })
  t.equal(await (await fetch(s.url + '/')).text(), 'answered elsewhere')
  await waitFor(() => s.faults().length === 1, 'the misuse report')
  t.match(s.faults()[0], { level: 50, err: { message: /already sent/ } })
  t.notOk(finished, 'a generator stuck in an await cannot run its finally; the signal is what stops such sources')
})

t.test('a response whose headers went out by hand before the first chunk: the misuse is logged', async t => {
  const s = await streamApp(t, app => {
    app.get('/', (request, reply) => {
      reply.raw.writeHead(200, { 'content-type': 'text/plain' })
      reply.raw.write('by hand')
      reply.streamSafe(Readable.from(['from the stream']))
      setTimeout(() => reply.raw.end(), 50)
    })
  })
  t.equal(await (await fetch(s.url + '/')).text(), 'by hand')
  await waitFor(() => s.faults().length === 1, 'the misuse report')
  t.match(s.faults()[0], { level: 50, phase: 'before-response', err: { message: /already sent/, code: 'FST_FAULTLINE_STREAM_ALREADY_SENT' } })
})

t.test('plugin registration', async t => {
  const Fastify = (await import('fastify')).default
  const { faultlineHttp, faultlineStream } = await import('../index.js')
  for (const [opts, message] of [
    [{ idleTimeout: -5 }, /faultline-stream: invalid option idleTimeout: must be an integer number of milliseconds from 0 \(off\) to 2147483647, got -5/],
    [{ idleTimeout: 1.5 }, /got 1\.5/],
    [() => 'fast', /faultline-stream: invalid option options: must be an object/]
  ] as const) {
    const app = Fastify()
    app.register(faultlineHttp)
    app.register(faultlineStream, opts as {})
    await t.rejects(async () => { await app.ready() }, { code: 'FST_FAULTLINE_INVALID_OPTION', message })
  }
  const lone = Fastify()
  lone.register(faultlineStream)
  await t.rejects(async () => { await lone.ready() }, /faultline-http/, 'it depends on faultline-http')
  t.type(InternalError, 'function')
})
