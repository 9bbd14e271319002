// What the client needs is on the wire on every transport: retryAfter in
// every problem body, the request id in a header on problem and streamed
// responses (configurable, with an off switch).
import t from 'tap'
import Fastify from 'fastify'
import { faultlineHttp, type FaultlineHttpOptions } from '../plugins/http.js'
import { faultlineStream } from '../plugins/stream.js'
import { faultlineSse } from '../plugins/sse.js'
import { ServiceUnavailableError, type Fault } from '../lib/fault.js'

async function app (options: FaultlineHttpOptions = {}): Promise<ReturnType<typeof Fastify>> {
  const fastify = Fastify({ logger: false })
  await fastify.register(faultlineHttp, options)
  await fastify.register(faultlineStream)
  await fastify.register(faultlineSse)
  const busy = (): Fault => new ServiceUnavailableError('busy', { retryAfter: 12 })
  fastify.get('/http', async () => { throw busy() })
  fastify.get('/raw', async (request, reply) => reply.streamSafe(async function * () { yield 'a' }()))
  fastify.get('/ndjson', async (request, reply) => reply.streamSafe((async function * () {
    yield 1
    throw busy()
  }()), { framing: 'ndjson' }))
  fastify.get('/sse', { sse: true }, async (request, reply) => {
    await reply.sse.send(async function * () {
      yield { data: 1 }
      throw busy()
    }())
  })
  t.teardown(() => fastify.close())
  return fastify
}

t.test('retryAfter (seconds) is in the problem body on HTTP, ndjson and SSE; the header stays', async t => {
  const f = await app()
  const http = await f.inject('/http')
  t.equal(http.headers['retry-after'], '12')
  t.equal(http.json().retryAfter, 12)
  const ndjson = (await f.inject('/ndjson')).payload.trim().split('\n').map((l: string) => JSON.parse(l))
  t.equal(ndjson.at(-1).error.retryAfter, 12)
  const sse = (await f.inject({ url: '/sse', headers: { accept: 'text/event-stream' } })).payload
  t.match(sse, /event: error\ndata: \{[^\n]*"retryAfter":12[^\n]*\}\nretry: 12000\n/)
})

t.test('the request id goes out in x-request-id on problem and streamed responses', async t => {
  const f = await app()
  for (const url of ['/http', '/raw', '/ndjson', '/nowhere']) {
    const res = await f.inject(url)
    t.match(res.headers['x-request-id'], /^req-/, url)
  }
  const sse = await f.inject({ url: '/sse', headers: { accept: 'text/event-stream' } })
  t.match(sse.headers['x-request-id'], /^req-/, '/sse')
  const ndjson = await f.inject('/ndjson')
  t.equal(ndjson.payload.trim().split('\n').map((l: string) => JSON.parse(l)).at(-1).error.requestId, ndjson.headers['x-request-id'], 'the same id as in the error record')
})

t.test('requestIdHeader: another name, or false for none; a bad name is a register-time error', async t => {
  const named = await app({ requestIdHeader: 'X-Trace-Id' })
  const res = await named.inject('/raw')
  t.ok(res.headers['x-trace-id'])
  t.notOk(res.headers['x-request-id'])
  const off = await app({ requestIdHeader: false })
  for (const url of ['/http', '/raw']) t.notOk((await off.inject(url)).headers['x-request-id'], `${url}: off`)
  for (const bad of ['', 'bad header', 'x\r\ny', 7]) {
    const f = Fastify({ logger: false })
    await t.rejects(async () => { await f.register(faultlineHttp, { requestIdHeader: bad as string }).ready() }, { code: 'FST_FAULTLINE_INVALID_OPTION', message: /requestIdHeader/ }, JSON.stringify(bad))
  }
})
