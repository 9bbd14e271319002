// The client resumes where a stream broke: raw with Range + If-Range (only
// for a strong ETag and Accept-Ranges: bytes, accepting only a 206 of that
// entity starting exactly there), ndjson with Last-Event-ID (only when the
// records carry ids). Never a spliced, repeated or lost byte or record.
import t from 'tap'
import Fastify from 'fastify'
import { guardProcess } from './helpers/guard.js'
import { makeBody, sha256, sliceSource } from './helpers/resumable.js'
import { resumeApp } from './helpers/resume-app.js'
import { faultlineHttp, faultlineStream, ServiceUnavailableError as RootUnavailable } from '../index.js'
import { readBody, readNdjson, StreamTruncatedError, type Fault } from '../client/index.js'

guardProcess(t)

const FAST = { baseDelay: 1, maxDelay: 20 }
const body = makeBody(600_000, 3)

async function collect<T> (items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const item of items) out.push(item)
  return out
}

/** Reads everything, returning what arrived and the error, if any. */
async function drain<T> (items: AsyncIterable<T>): Promise<{ items: T[], error: Fault | undefined }> {
  const out: T[] = []
  try {
    for await (const item of items) out.push(item)
    return { items: out, error: undefined }
  } catch (err) {
    return { items: out, error: err as Fault }
  }
}

t.test('readBody resumes with Range and If-Range, and the bytes are the source\'s', async t => {
  const s = await resumeApp(t, body, 0)
  s.plan('a', { breaks: [100_000, 100_001, 450_000] })
  const chunks = await collect(readBody(`${s.base}/raw/a`, { retry: FAST }))
  t.equal(sha256(chunks), sha256(body))
  const requests = s.seen.filter(r => r.url === '/raw/a')
  t.same(requests.map(r => [r.range, r.ifRange]), [
    [undefined, undefined],
    ['bytes=100000-', '"chaos-v1"'],
    ['bytes=100001-', '"chaos-v1"'],
    ['bytes=450000-', '"chaos-v1"']
  ])
})

t.test('readBody does not resume what it cannot resume safely', async t => {
  let version = 1
  const hits = new Map<string, number>()
  const app = Fastify({ logger: false, forceCloseConnections: true })
  await app.register(faultlineHttp)
  await app.register(faultlineStream)
  const breakOnce = (key: string): number | undefined => {
    const n = (hits.get(key) ?? 0) + 1
    hits.set(key, n)
    return n === 1 ? 200_000 : undefined
  }
  // No validators: a plain stream.
  app.get('/plain', async (request, reply) => reply.streamSafe(signal => sliceSource(body, { failAt: breakOnce('plain') })(signal, { offset: 0, lastEventId: undefined })))
  // A weak ETag and Accept-Ranges set by hand: not resumable.
  app.get('/weak', async (request, reply) => {
    reply.header('etag', 'W/"w"').header('accept-ranges', 'bytes')
    return reply.streamSafe(signal => sliceSource(body, { failAt: breakOnce('weak') })(signal, { offset: 0, lastEventId: undefined }))
  })
  // The entity changes after the first response: If-Range no longer matches, the server sends 200.
  app.get('/changing', async (request, reply) => reply.streamSafe(sliceSource(body, { failAt: version === 1 ? 200_000 : undefined }), { etag: `"v${version++}"`, length: body.length }))
  // A server that ignores If-Range and Range (same ETag, 200 again).
  app.get('/ignores', async (request, reply) => {
    reply.header('etag', '"same"').header('accept-ranges', 'bytes')
    return reply.streamSafe(signal => sliceSource(body, { failAt: breakOnce('ignores') })(signal, { offset: 0, lastEventId: undefined }))
  })
  // A resumable first response that breaks at 200000; the tests below answer the resume by hand.
  app.get('/elsewhere', async (request, reply) => reply.streamSafe(sliceSource(body, { failAt: 200_000 }), { etag: '"e"', length: body.length }))
  // A strong ETag without Accept-Ranges: bytes: not resumable either.
  app.get('/no-ranges', async (request, reply) => {
    reply.header('etag', '"n"').header('accept-ranges', 'none')
    return reply.streamSafe(signal => sliceSource(body, { failAt: breakOnce('no-ranges') })(signal, { offset: 0, lastEventId: undefined }))
  })
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())

  for (const path of ['/plain', '/weak', '/no-ranges']) {
    const { items, error } = await drain(readBody(base + path, { retry: FAST }))
    t.ok(error instanceof StreamTruncatedError, `${path}: truncated`)
    t.equal(Buffer.concat(items).length, 200_000, `${path}: the bytes before the cut, nothing after`)
    t.equal(hits.get(path.slice(1)), 1, `${path}: no second request`)
  }

  const changed = await drain(readBody(base + '/changing', { retry: FAST }))
  t.ok(changed.error instanceof StreamTruncatedError)
  t.match(changed.error, { retryable: false, message: /ended at byte 200000 and could not be resumed: the server answered 200, not 206/ })
  t.equal(Buffer.concat(changed.items).length, 200_000, 'never spliced with the new entity')
  t.equal(version, 3, 'one resume attempt, then it stops')

  const ignored = await drain(readBody(base + '/ignores', { retry: FAST }))
  t.match(ignored.error, { code: 'STREAM_TRUNCATED', retryable: false, message: /answered 200, not 206/ })
  t.equal(hits.get('ignores'), 2)

  // Misbehaving servers, answering the resume by hand.
  const fake = await drain(readBody(base + '/x', {
    retry: FAST,
    fetch: async (url, init) => {
      const range = new Headers(init?.headers).get('range')
      if (range === null) return await fetch(base + '/elsewhere', init)
      return new Response(new Uint8Array(body.subarray(0, 10)), { status: 206, headers: { etag: '"e"', 'content-range': `bytes 0-9/${body.length}` } })
    }
  }))
  t.match(fake.error, { code: 'STREAM_TRUNCATED', retryable: false, message: /it starts at byte 0, not 200000/ })
  t.equal(Buffer.concat(fake.items).length, 200_000)

  const otherTag = await drain(readBody(base + '/x', {
    retry: FAST,
    fetch: async (url, init) => {
      const range = new Headers(init?.headers).get('range')
      if (range === null) return await fetch(base + '/elsewhere', init)
      return new Response(new Uint8Array(body.subarray(200_000)), { status: 206, headers: { etag: '"other"', 'content-range': `bytes 200000-${body.length - 1}/${body.length}` } })
    }
  }))
  t.match(otherTag.error, { message: /its ETag "\\"other\\"" is not "e"/ })

  const shorter = await drain(readBody(base + '/x', {
    retry: FAST,
    fetch: async (url, init) => {
      const range = new Headers(init?.headers).get('range')
      if (range === null) return await fetch(base + '/elsewhere', init)
      return new Response(new Uint8Array(body.subarray(200_000, 200_010)), { status: 206, headers: { etag: '"e"', 'content-range': `bytes 200000-200009/${body.length}` } })
    }
  }))
  t.match(shorter.error, { message: /covers bytes 200000-200009\/600000, not the rest of 600000/ })

  const unknownLength = await drain(readBody(base + '/x', {
    retry: FAST,
    fetch: async (url, init) => {
      const range = new Headers(init?.headers).get('range')
      if (range === null) return await fetch(base + '/elsewhere', init)
      return new Response(new Uint8Array(body.subarray(200_000, 200_010)), { status: 206, headers: { etag: '"e"', 'content-range': 'bytes 200000-200009/*' } })
    }
  }))
  t.match(unknownLength.error, { message: /covers bytes 200000-200009\/\*, not the rest of 600000/ })

  const noRange = await drain(readBody(base + '/x', {
    retry: FAST,
    fetch: async (url, init) => {
      const range = new Headers(init?.headers).get('range')
      if (range === null) return await fetch(base + '/elsewhere', init)
      return new Response('', { status: 206, headers: { etag: '"e"', 'content-range': 'bytes 200000-1/*' } })
    }
  }))
  t.match(noRange.error, { message: /its Content-Range "bytes 200000-1\/\*" is not a byte range/ })
})

t.test('a caller\'s own Range header is not resumed', async t => {
  const s = await resumeApp(t, body, 0)
  s.plan('own', { breaks: [300_000] })
  const { items, error } = await drain(readBody(`${s.base}/raw/own`, { retry: FAST, init: { headers: { range: 'bytes=100000-' } } }))
  t.ok(error instanceof StreamTruncatedError)
  t.equal(Buffer.concat(items).length, 200_000)
  t.equal(s.seen.filter(r => r.url === '/raw/own').length, 1)
})

t.test('retries without progress are bounded by the policy', async t => {
  let resumes = 0
  const { items, error } = await drain(readBody('http://resume.invalid/file', {
    retry: { attempts: 3, baseDelay: 1 },
    fetch: async (url, init) => {
      if (new Headers(init?.headers).get('range') === null) {
        let pulls = 0
        return new Response(new ReadableStream({
          pull (controller) {
            if (pulls++ === 0) controller.enqueue(new Uint8Array(body.subarray(0, 1000)))
            else controller.error(new TypeError('terminated'))
          }
        }), { status: 200, headers: { etag: '"b"', 'accept-ranges': 'bytes', 'content-length': String(body.length) } })
      }
      resumes++
      return new Response('{"status":503,"code":"SERVICE_UNAVAILABLE"}', { status: 503 })
    }
  }))
  t.equal(Buffer.concat(items).length, 1000)
  t.match(error, { code: 'SERVICE_UNAVAILABLE' })
  t.equal(resumes, 3, 'three resume attempts, then the fault')
})

t.test('readNdjson resumes after the last id: no record lost or repeated', async t => {
  const s = await resumeApp(t, body, 1000)
  s.plan('n', { breaks: [10, 11, 700] })
  const records = await collect(readNdjson<{ i: number }>(`${s.base}/ndjson/n`, { retry: FAST }))
  t.same(records.map(r => r.i), Array.from({ length: 1000 }, (_, i) => i))
  t.same(s.seen.filter(r => r.url === '/ndjson/n').map(r => r.lastEventId), [undefined, '9', '10', '699'])
})

t.test('readNdjson cannot resume records without ids, or a server that ignores Last-Event-ID', async t => {
  let hits = 0
  const app = Fastify({ logger: false, forceCloseConnections: true })
  await app.register(faultlineHttp)
  await app.register(faultlineStream)
  app.get('/no-ids', async (request, reply) => reply.streamSafe(async function * () {
    hits++
    yield { n: 1 }
    throw new RootUnavailable('upstream went away')
  }, { framing: 'ndjson' }))
  // Restarts from its first record on a resume.
  const restarts = new Map<string, number>()
  app.get('/restarts/:tag', async (request, reply) => {
    const tag = (request.params as { tag: string }).tag
    const n = (restarts.get(tag) ?? 0) + 1
    restarts.set(tag, n)
    return reply.streamSafe(async function * () {
      yield 'a'
      yield 'b'
      if (n === 1) throw new RootUnavailable('upstream went away')
    }, { framing: 'ndjson', id: (item: string) => item })
  })
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())

  const noIds = await drain(readNdjson(base + '/no-ids', { retry: FAST }))
  t.same(noIds.items, [{ n: 1 }])
  t.match(noIds.error, { code: 'SERVICE_UNAVAILABLE' }, 'the fault itself: it cannot go on without repeating a record')
  t.equal(hits, 1)

  // faultlineHttp names each response with its request id (x-request-id); the client reads it unless told not to.
  for (const tag of ['ignored', 'tagged']) {
    const restarted = await drain(readNdjson(`${base}/restarts/${tag}`, { retry: FAST, requestIdHeader: tag === 'tagged' ? 'x-request-id' : false }))
    t.same(restarted.items, ['a', 'b'])
    t.match(restarted.error, { code: 'STREAM_TRUNCATED', retryable: false, message: /could not be resumed after record "b": the server sent record "a" again/ })
    if (tag === 'tagged') t.match(restarted.error?.details, { requestId: /^req-\d+$/ }, 'the request id of the response that restarted')
    else t.equal(restarted.error?.details, undefined, 'no request id read: no details')
    t.equal(restarts.get(tag), 2)
  }
})
