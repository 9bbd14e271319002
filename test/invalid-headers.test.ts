// A header value Node refuses (CR/LF, or a character above U+00FF, set by a
// route from user input) must not turn the problem into Fastify's plain JSON
// with the internal message: the header is dropped, the problem goes out, the
// fault is reported once.
import t from 'tap'
import Fastify from 'fastify'
import { faultlineHttp, faultlineStream, NotFoundError, type Fault, type FaultContext } from '../index.js'
import { headersToWrite, invalidHeaderNames } from '../lib/headers.js'
import { captureLogs } from './helpers/logs.js'
import { guardProcess } from './helpers/guard.js'

guardProcess(t)

t.test('invalidHeaderNames follows Node\'s rules', async t => {
  t.same(invalidHeaderNames({ a: 'x', b: 1, c: ['y', 2], d: undefined, e: 'tab\there', f: 'é latin-1 ÿ' }), [])
  t.same(invalidHeaderNames({ a: 'x\r\ny', b: 'ok', c: '€', d: ['ok', 'x\n'], e: {}, 'bad name': 'v', f: 'nul\0' }), ['a', 'c', 'd', 'e', 'bad name', 'f'])
})

t.test('headersToWrite: the headers set with reply.header(), without a copy; reply.getHeaders() where Fastify keeps them elsewhere', async t => {
  const app = Fastify()
  app.get('/', async (_req, reply) => {
    reply.header('x-one', 'a')
    reply.raw.setHeader('x-raw', 'checked by Node')
    const headers = headersToWrite(reply)
    t.equal(headers['x-one'], 'a')
    t.equal(headers['x-raw'], undefined, 'the raw response\'s own headers passed Node\'s setHeader check')
    t.equal(headersToWrite(reply), headers, 'the same object every time: nothing copied')
    return 'ok'
  })
  t.equal((await app.inject('/')).statusCode, 200)
  const elsewhere = { getHeaders: () => ({ 'x-two': 'b' }) }
  t.same(headersToWrite(elsewhere), { 'x-two': 'b' }, 'no headers slot: getHeaders()')
  const odd = { [Symbol('fastify.reply.headers')]: 'not an object', getHeaders: () => ({ 'x-three': 'c' }) }
  t.same(headersToWrite(odd), { 'x-three': 'c' }, 'a slot that holds no object: getHeaders()')
})

t.test('a refused header never costs the problem, on any route, over a real socket', async t => {
  const logs = captureLogs()
  const seen: Array<[Fault, FaultContext]> = []
  const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
  await app.register(faultlineHttp, { onFault: (f, c) => { seen.push([f, c]) } })
  await app.register(faultlineStream)
  const user = 'evil\r\nSet-Cookie: session=stolen'
  app.get('/ok', async (_req, reply) => { reply.header('x-user', user); return { ok: 1 } })
  app.get('/nf', async (_req, reply) => { reply.header('x-user', 'é€'); throw new NotFoundError('nope') })
  app.get('/stream', async (_req, reply) => { reply.header('x-user', user); return reply.streamSafe(async function * () { yield 'x' }) })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`

  for (const [path, status, code] of [['/ok', 500, 'INTERNAL'], ['/nf', 404, 'NOT_FOUND'], ['/stream', 500, 'INTERNAL']] as const) {
    const before = logs.lines.length
    const res = await fetch(base + path)
    const body = await res.text()
    t.equal(res.status, status, path)
    t.equal(res.headers.get('content-type'), 'application/problem+json; charset=utf-8', `${path}: a problem`)
    t.equal(res.headers.get('x-user'), null, `${path}: the refused header is dropped`)
    t.equal(res.headers.get('set-cookie'), null, `${path}: nothing injected`)
    t.equal(JSON.parse(body).code, code)
    t.notMatch(body, /Invalid character|x-user|ERR_INVALID_CHAR/, `${path}: no internal message`)
    const lines = logs.lines.slice(before).filter(l => l.err !== undefined || l.handled === true)
    t.equal(lines.length, 1, `${path}: logged once`)
  }
  t.equal(seen.length, 3, 'reported once each')
  t.same(seen[1]![1].droppedHeaders, ['x-user'], 'the log line names the dropped header')
})
