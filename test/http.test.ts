import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import sensible from '@fastify/sensible'
import createHttpErrorTyped from 'http-errors'
import Boom from '@hapi/boom'
import {
  faultlineHttp, NotFoundError, InternalError, ServiceUnavailableError, ConflictError,
  defineFault, type FaultlineHttpOptions, type FaultContext, type Fault
} from '../index.js'
import { captureLogs } from './helpers/logs.js'
import { guardProcess } from './helpers/guard.js'

// http-errors accepts a properties object in any position; its types do not say so.
const createHttpError = createHttpErrorTyped as unknown as (...args: unknown[]) => Error
import { hostileValues } from './helpers/hostile.js'

guardProcess(t)

async function build (opts: FaultlineHttpOptions = {}, level = 'debug'): Promise<{ app: FastifyInstance, logs: ReturnType<typeof captureLogs>, seen: Array<[Fault, FaultContext]> }> {
  const logs = captureLogs()
  const seen: Array<[Fault, FaultContext]> = []
  const app = Fastify({ logger: { level, stream: logs.stream } })
  await app.register(faultlineHttp, { onFault: (f, c) => { seen.push([f, c]) }, ...opts })
  return { app, logs, seen }
}

const PROBLEM = 'application/problem+json; charset=utf-8'

t.test('a thrown NotFoundError is a problem+json 404, logged once at info, reported once', async t => {
  const { app, logs, seen } = await build()
  app.get('/users/:id', async (req) => { throw new NotFoundError(`no user ${(req.params as { id: string }).id}`) })
  const res = await app.inject('/users/7?token=secret')
  t.equal(res.statusCode, 404)
  t.equal(res.headers['content-type'], PROBLEM)
  t.same(res.json(), { type: 'about:blank', title: 'Not Found', status: 404, detail: 'no user 7', instance: '/users/7', code: 'NOT_FOUND', requestId: 'req-1' })
  t.notMatch(res.body, /secret/, 'the query string is not echoed')
  const faults = logs.faults()
  t.equal(faults.length, 1)
  t.match(faults[0], { level: 30, reqId: 'req-1', fault: { code: 'NOT_FOUND', status: 404 }, transport: 'http', phase: 'before-response', handled: true, msg: 'no user 7' })
  t.equal(logs.lines.filter(l => JSON.stringify(l).includes('no user 7')).length, 1, 'Fastify does not log it a second time')
  t.equal(faults[0]!.err, undefined, 'no err record (and no empty stack) on a 4xx line')
  t.equal(seen.length, 1)
  t.match(seen[0]![1], { transport: 'http', phase: 'before-response' })
  t.equal((seen[0]![1].request as { id: string }).id, 'req-1')
})

t.test('a thrown Error with a secret is a generic 500: no message, no stack, logged with stack', async t => {
  const { app, logs } = await build()
  app.get('/', async () => { throw new Error('db password=hunter2') })
  const res = await app.inject('/')
  t.equal(res.statusCode, 500)
  t.same(res.json(), { type: 'about:blank', title: 'Internal Server Error', status: 500, detail: 'Internal Server Error', instance: '/', code: 'INTERNAL', requestId: 'req-1' })
  t.notMatch(res.body, /hunter2|stack|at /)
  const [line] = logs.faults()
  t.match(line, { level: 50, fault: { code: 'INTERNAL', status: 500 }, msg: 'db password=hunter2' })
  t.equal(logs.lines.filter(l => l.err !== undefined).length, 1)
})

t.test('an adopted Error logs as itself: its type and the stack where it was thrown, the message once', async t => {
  const { app, logs } = await build()
  app.get('/', async function routeThatThrows () { throw new TypeError('db password=hunter2') })
  await app.inject('/')
  const [line] = logs.faults()
  const err = line!.err as { type: string, message: string, stack: string, cause?: unknown }
  t.equal(err.type, 'TypeError', 'log tools group by the original type')
  t.match(err.stack, /^TypeError: db password=hunter2\n\s+at (?:Object\.)?routeThatThrows \(.*http\.test\.ts:\d+:\d+\)/, 'the frames of the route')
  t.equal(err.cause, undefined, 'no cause entry repeating the same error')
  t.equal(JSON.stringify(line).split('db password=hunter2').length - 1, 3, 'msg, err.message and the stack\'s first line')
  t.match(line, { fault: { code: 'INTERNAL', status: 500 } })
})

t.test('a 4xx line carries the fault\'s exposed details', async t => {
  const { app, logs } = await build()
  const OutOfStock = defineFault<{ sku: string }>({ code: 'OUT_OF_STOCK', status: 409 })
  app.post('/orders', async () => { throw new OutOfStock('SKU A is out', { details: { sku: 'A' } }) })
  const res = await app.inject({ method: 'POST', url: '/orders' })
  t.equal(res.statusCode, 409)
  const [line] = logs.faults()
  t.match(line, { level: 30, msg: 'SKU A is out', fault: { code: 'OUT_OF_STOCK', status: 409, details: '{"sku":"A"}' } })
  t.equal(line!.err, undefined)
})

t.test('a 4xx/5xx status set on the reply is kept for an error without its own, as Fastify does', async t => {
  const routes = (app: FastifyInstance): void => {
    app.get('/teapot', (_req, reply) => { reply.code(418).send(new Error('teapot')) })
    app.get('/thrown', async (_req, reply) => { reply.code(422); throw new Error('bad shape') })
    app.get('/unavailable', async (_req, reply) => { reply.code(503); throw new Error('pool exhausted at 10.0.3.7') })
    app.get('/own', (_req, reply) => { reply.code(418).send(Object.assign(new Error('gone'), { statusCode: 410 })) })
    app.get('/success-status', async (_req, reply) => { reply.code(201); throw new Error('after all') })
  }
  const bare = Fastify()
  routes(bare)
  const { app, logs } = await build()
  routes(app)
  for (const [url, status] of [['/teapot', 418], ['/thrown', 422], ['/unavailable', 503], ['/own', 410], ['/success-status', 500]] as const) {
    t.equal((await bare.inject(url)).statusCode, status, `Fastify: ${url}`)
    t.equal((await app.inject(url)).statusCode, status, `faultline: ${url}`)
  }
  const teapot = await app.inject('/teapot')
  t.equal(teapot.headers['content-type'], PROBLEM)
  // The status is the reply's; the message stays unexposed: a plain Error never said it was meant for clients.
  t.match(teapot.json(), { status: 418, code: 'IM_A_TEAPOT', title: "I'm a Teapot", detail: "I'm a Teapot" })
  t.match((await app.inject('/thrown')).json(), { status: 422, code: 'UNPROCESSABLE_ENTITY', detail: 'Unprocessable Entity' })
  t.notMatch((await app.inject('/thrown')).body, /bad shape/)
  const unavailable = await app.inject('/unavailable')
  t.match(unavailable.json(), { status: 503, code: 'SERVICE_UNAVAILABLE', detail: 'Service Unavailable' })
  t.notMatch(unavailable.body, /10\.0\.3\.7/, 'a 5xx set on the reply stays unexposed')
  t.match(logs.faults().find(l => l.msg === 'teapot'), { level: 30, fault: { code: 'IM_A_TEAPOT', status: 418 } })
})

t.test('every hostile thrown value comes back as a valid problem+json 500', async t => {
  const { app, logs } = await build()
  const values = hostileValues()
  values.forEach(([, value], i) => { app.get(`/h/${i}`, async () => { throw value }) })
  values.forEach(([, value], i) => { app.get(`/cb/${i}`, (_req, reply) => { reply.send(value instanceof Error ? value : new InternalError('wrapped')) }) })
  for (const [i, [name]] of values.entries()) {
    const res = await app.inject(`/h/${i}`)
    t.equal(res.statusCode, 500, name)
    t.equal(res.headers['content-type'], PROBLEM, name)
    t.match(res.json(), { status: 500, code: 'INTERNAL', detail: 'Internal Server Error' }, name)
    t.notMatch(res.body, /hunter2|secret|proxied/, name)
  }
  t.equal(logs.faults().length, values.length, 'each logged once')
})

t.test('callback-style reply.send(err) goes through the same path', async t => {
  const { app } = await build()
  app.get('/', (_req, reply) => { reply.send(new ConflictError('version mismatch')) })
  const res = await app.inject('/')
  t.equal(res.statusCode, 409)
  t.equal(res.json().detail, 'version mismatch')
})

t.test('validation errors become VALIDATION with the entries', async t => {
  const { app } = await build()
  app.post('/items', {
    schema: { body: { type: 'object', required: ['name'], properties: { name: { type: 'string' }, qty: { type: 'integer' } } } }
  }, async () => 'ok')
  const res = await app.inject({ method: 'POST', url: '/items', payload: { qty: 'x' } })
  t.equal(res.statusCode, 400)
  const body = res.json()
  t.match(body, { code: 'VALIDATION', title: 'Validation Failed', status: 400, in: 'body' })
  t.ok(Array.isArray(body.errors) && body.errors.length >= 1)
  t.match(body.errors[0], { instancePath: String, message: String, keyword: String })
})

t.test("Fastify's body-parser errors keep their status", async t => {
  const { app } = await build()
  app.post('/', { bodyLimit: 10 }, async () => 'ok')
  const invalid = await app.inject({ method: 'POST', url: '/', headers: { 'content-type': 'application/json' }, payload: '{"a":' })
  t.equal(invalid.statusCode, 400, 'invalid JSON')
  t.equal(invalid.json().code, 'BAD_REQUEST')
  const big = await app.inject({ method: 'POST', url: '/', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ a: 'x'.repeat(100) }) })
  t.equal(big.statusCode, 413)
  t.equal(big.json().code, 'PAYLOAD_TOO_LARGE')
  const media = await app.inject({ method: 'POST', url: '/', headers: { 'content-type': 'application/x-unknown' }, payload: 'x' })
  t.equal(media.statusCode, 415)
  t.equal(media.json().code, 'UNSUPPORTED_MEDIA_TYPE')
  const empty = await app.inject({ method: 'POST', url: '/', headers: { 'content-type': 'application/json' }, payload: '' })
  t.equal(empty.statusCode, 400)
})

t.test('http-errors, @fastify/sensible and Boom keep status and their own expose', async t => {
  const { app } = await build()
  await app.register(sensible)
  app.get('/sensible', async () => { throw app.httpErrors.forbidden('not yours') })
  app.get('/sensible-500', async () => { throw app.httpErrors.internalServerError('pool exhausted') })
  app.get('/http-errors', async () => { throw createHttpError(400, 'hidden', { expose: false }) })
  app.get('/boom', async () => { throw Boom.conflict('taken') })
  app.get('/teapot', async () => { throw createHttpError(418, 'short and stout') })
  const forbidden = await app.inject('/sensible')
  t.equal(forbidden.statusCode, 403)
  t.equal(forbidden.json().detail, 'not yours')
  const s500 = await app.inject('/sensible-500')
  t.equal(s500.statusCode, 500)
  t.notMatch(s500.body, /pool/)
  const hidden = await app.inject('/http-errors')
  t.equal(hidden.statusCode, 400)
  t.equal(hidden.json().detail, 'Bad Request', 'their own expose: false hides the message')
  const boom = await app.inject('/boom')
  t.equal(boom.statusCode, 409)
  t.equal(boom.json().detail, 'taken')
  const teapot = await app.inject('/teapot')
  t.equal(teapot.statusCode, 418)
  t.match(teapot.json(), { code: 'IM_A_TEAPOT', title: "I'm a Teapot", detail: 'short and stout' })
})

t.test('Retry-After, details and typeBase', async t => {
  const { app } = await build({ typeBase: 'https://errors.example.com/' })
  const OutOfStock = defineFault<{ sku: string }>({ code: 'OUT_OF_STOCK', status: 409 })
  app.get('/busy', async () => { throw new ServiceUnavailableError('maintenance', { retryAfter: 30, expose: true }) })
  app.get('/stock', async () => { throw new OutOfStock('sku A is out', { details: { sku: 'A' } }) })
  const busy = await app.inject('/busy')
  t.equal(busy.statusCode, 503)
  t.equal(busy.headers['retry-after'], '30')
  t.match(busy.json(), { type: 'https://errors.example.com/service-unavailable', detail: 'maintenance' })
  const stock = await app.inject('/stock')
  t.equal(stock.headers['retry-after'], undefined)
  t.match(stock.json(), { type: 'https://errors.example.com/out-of-stock', code: 'OUT_OF_STOCK', sku: 'A' })
})

t.test('not-found handler, and notFound: false', async t => {
  const { app, logs } = await build()
  const res = await app.inject({ method: 'DELETE', url: '/nowhere?x=1' })
  t.equal(res.statusCode, 404)
  t.match(res.json(), { code: 'NOT_FOUND', detail: 'Route DELETE:/nowhere not found', instance: '/nowhere' })
  t.equal(logs.faults().length, 1)

  const logs2 = captureLogs()
  const own = Fastify({ logger: { level: 'info', stream: logs2.stream } })
  await own.register(faultlineHttp, { notFound: false })
  own.setNotFoundHandler((_req, reply) => { reply.code(404).send('custom') })
  t.equal((await own.inject('/x')).body, 'custom', 'the app keeps its own not-found handler')
})

t.test('a child context with its own error handler keeps it; rethrows reach faultline', async t => {
  const { app, logs } = await build()
  await app.register(async child => {
    child.setErrorHandler(async (err, _req, reply) => {
      if ((err as Error).message === 'mine') return reply.code(418).send({ handledBy: 'child' })
      throw err
    })
    child.get('/mine', async () => { throw new Error('mine') })
    child.get('/rethrow', async () => { throw new NotFoundError('passed up') })
  })
  await app.register(async plain => {
    plain.get('/inherit', async () => { throw new ConflictError('inherited') })
  }, { prefix: '/p' })
  const mine = await app.inject('/mine')
  t.equal(mine.statusCode, 418)
  t.same(mine.json(), { handledBy: 'child' })
  const up = await app.inject('/rethrow')
  t.equal(up.statusCode, 404)
  t.equal(up.headers['content-type'], PROBLEM)
  t.equal(up.json().detail, 'passed up')
  const inherited = await app.inject('/p/inherit')
  t.equal(inherited.statusCode, 409)
  t.equal(inherited.headers['content-type'], PROBLEM)
  t.equal(logs.faults().length, 2, 'only the faults faultline handled are logged by it')
})

t.test('a reporter that throws or rejects changes nothing for the client', async t => {
  const { app, logs } = await build({ onFault: [() => { throw new Error('reporter bug') }, async () => { throw new Error('async bug') }] })
  app.get('/', async () => { throw new NotFoundError('x') })
  const res = await app.inject('/')
  t.equal(res.statusCode, 404)
  t.equal(res.json().detail, 'x')
  await new Promise(resolve => setImmediate(resolve))
  const warnings = logs.lines.filter(l => l.msg === 'faultline: an onFault reporter failed; ignored')
  t.equal(warnings.length, 2)
  t.equal(warnings[0]!.reqId, 'req-1', 'logged on the request logger')
})

t.test('logLevel per class and per code', async t => {
  const { app, logs } = await build({ logLevels: { '4xx': 'warn', NOT_FOUND: 'silent', '5xx': 'fatal' } })
  app.get('/nf', async () => { throw new NotFoundError() })
  app.get('/c', async () => { throw new ConflictError() })
  app.get('/e', async () => { throw new Error('x') })
  await app.inject('/nf')
  await app.inject('/c')
  await app.inject('/e')
  t.same(logs.faults().map(l => [l.level, (l.fault as { code: string }).code]), [[40, 'CONFLICT'], [60, 'INTERNAL']])
})

t.test('logLevel as an object is the same option; a string logLevel stays Fastify\'s', async t => {
  const logs = captureLogs()
  const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
  await app.register(faultlineHttp, { logLevel: { '4xx': 'warn' } } as unknown as FaultlineHttpOptions)
  app.get('/', async () => { throw new ConflictError() })
  await app.inject('/')
  t.equal(logs.faults()[0]!.level, 40)
  const plain = Fastify({ logger: { level: 'info', stream: logs.stream } })
  await plain.register(faultlineHttp, { logLevel: 'error' })
  plain.get('/', async () => { throw new ConflictError() })
  await plain.inject('/')
  t.equal(logs.faults()[1]!.level, 30, 'a string is not a per-fault map')
})

t.test('debug: true adds the real message, stack and cause chain', async t => {
  const { app } = await build({ debug: true })
  app.get('/', async () => { throw new Error('db password=hunter2', { cause: new Error('ECONNREFUSED 10.0.0.1') }) })
  const body = (await app.inject('/')).json()
  t.equal(body.detail, 'db password=hunter2')
  t.match(body.stack, /InternalError/)
  t.match(body.cause, [{ message: 'db password=hunter2' }, { message: 'ECONNREFUSED 10.0.0.1' }])
  t.equal(body.cause.length, 2, 'the whole chain, nothing more')
})

t.test('debug: true under NODE_ENV=production warns loudly at register time, once', async t => {
  const before = process.env.NODE_ENV
  t.teardown(() => { if (before === undefined) delete process.env.NODE_ENV; else process.env.NODE_ENV = before })
  process.env.NODE_ENV = 'production'
  const on = await build({ debug: true })
  await on.app.ready()
  const warnings = on.logs.lines.filter(l => l.level === 40 && /debug is on while NODE_ENV=production/.test(String(l.msg)))
  t.equal(warnings.length, 1)
  const off = await build({ debug: false })
  await off.app.ready()
  t.notOk(off.logs.lines.some(l => /NODE_ENV=production/.test(String(l.msg))), 'no warning without debug')
  process.env.NODE_ENV = 'development'
  const dev = await build({ debug: true })
  await dev.app.ready()
  t.notOk(dev.logs.lines.some(l => /NODE_ENV=production/.test(String(l.msg))), 'no warning outside production')
})

t.test('fastify.faultline: report, toProblem, problemJson, sendProblem, catalog', async t => {
  const { app, logs, seen } = await build()
  app.get('/p', async (req) => {
    return { problem: app.faultline.toProblem(new InternalError('secret'), req), json: app.faultline.problemJson(new NotFoundError('nf'), req) }
  })
  app.get('/send', (_req, reply) => { app.faultline.sendProblem(reply, new ConflictError('c'), { transport: 'stream' }) })
  app.get('/send-fields', (_req, reply) => { app.faultline.sendProblem(reply, new ConflictError('c'), { order: 7 }) })
  defineFault({ code: 'HTTP_TEST_CATALOG', status: 422 })
  t.ok(app.faultline.catalog.some(e => e.code === 'HTTP_TEST_CATALOG'))
  t.ok(app.faultline.catalog.some(e => e.code === 'NOT_FOUND' && e.status === 404))

  const f = app.faultline.report(new Error('background thing'))
  t.equal(f.code, 'INTERNAL')
  t.match(seen.at(-1)![1], { transport: 'http', phase: 'before-response', request: undefined })
  t.match(logs.faults().at(-1), { fault: { code: 'INTERNAL' }, transport: 'http' })
  app.faultline.report('x', { transport: 'background', phase: 'after-response', task: 'mail' })
  t.match(logs.faults().at(-1), { transport: 'background', phase: 'after-response', task: 'mail' })

  const body = (await app.inject('/p?q=1')).json()
  t.same(body.problem, { type: 'about:blank', title: 'Internal Server Error', status: 500, detail: 'Internal Server Error', instance: '/p', code: 'INTERNAL', requestId: body.problem.requestId })
  t.match(JSON.parse(body.json), { code: 'NOT_FOUND', detail: 'nf', instance: '/p' })
  t.same(app.faultline.toProblem(new NotFoundError('no request')), { type: 'about:blank', title: 'Not Found', status: 404, detail: 'no request', code: 'NOT_FOUND' })

  const sent = await app.inject('/send')
  t.equal(sent.statusCode, 409)
  t.match(logs.faults().at(-1), { transport: 'stream', phase: 'before-response' })
  const fields = await app.inject('/send-fields')
  t.equal(fields.statusCode, 409)
  t.match(logs.faults().at(-1), { transport: 'http', phase: 'before-response', order: 7 }, 'a context without a transport is http; its fields reach the log line')
})

t.test('sendProblem after the headers went out truncates instead of lying', async t => {
  const { app, logs } = await build()
  app.get('/late', (_req, reply) => {
    reply.hijack()
    reply.raw.writeHead(200, { 'content-type': 'text/plain' })
    reply.raw.write('partial')
    app.faultline.sendProblem(reply, new Error('broke'), { transport: 'stream' })
  })
  app.get('/gone', (_req, reply) => {
    reply.hijack()
    reply.raw.writeHead(200, { 'content-type': 'text/plain' })
    reply.raw.socket!.destroy()
    app.faultline.sendProblem(reply, new Error('after the socket died'), { transport: 'stream' })
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const res = await fetch(`${base}/late`)
  t.equal(res.status, 200)
  const reader = res.body!.getReader()
  let received = ''
  const failure = await (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read()
        if (done) return undefined
        received += Buffer.from(value).toString()
      }
    } catch (err) {
      return err
    }
  })()
  t.equal(received, 'partial', 'the bytes written before the fault arrive')
  t.ok(failure instanceof Error, 'then the body read fails: truncation is visible')
  t.match(logs.faults().at(-1), { transport: 'stream', phase: 'mid-stream', fault: { code: 'INTERNAL' } })
  await t.rejects(fetch(`${base}/gone`))
  t.match(logs.faults().at(-1), { msg: 'after the socket died', phase: 'mid-stream' })
})

t.test('options are validated at register time', async t => {
  const bad: Array<[unknown, RegExp]> = [
    [{ onFault: 'x' }, /onFault: must be a function or an array of functions/],
    [{ onFault: [() => {}, 1] }, /onFault/],
    [{ typeBase: '' }, /typeBase/],
    [{ typeBase: 'has space/' }, /typeBase/],
    [{ typeBase: 5 }, /typeBase/],
    [{ debug: 'yes' }, /debug: must be a boolean/],
    [{ notFound: 1 }, /notFound: must be a boolean/],
    [{ logLevels: 'info' }, /logLevels: must be an object/],
    [{ logLevels: null }, /logLevels/],
    [{ logLevels: ['info'] }, /logLevels/],
    [{ logLevels: { '4xx': 'loud' } }, /logLevels\.4xx: must be one of trace, debug, info, warn, error, fatal, silent/],
    [{ logLevel: { '5xx': 'loud' } }, /logLevel\.5xx: must be one of/],
    [{ logLevel: { '5xx': 'warn' }, logLevels: { '5xx': 'warn' } }, /either logLevels or logLevel, not both/]
  ]
  for (const [opts, message] of bad) {
    await t.rejects(async () => { await Fastify().register(faultlineHttp, opts as Record<string, never>) }, { code: 'FST_FAULTLINE_INVALID_OPTION', message }, JSON.stringify(opts))
  }
  await t.rejects(async () => { await Fastify().register(faultlineHttp, 'x' as unknown as Record<string, never>) }, { code: 'FST_FAULTLINE_INVALID_OPTION', message: /options: must be an object/ })
})

t.test('the README example over a real socket', async t => {
  const app = Fastify()
  await app.register(faultlineHttp)
  app.get('/users/:id', async (request) => {
    const { id } = request.params as { id: string }
    if (id !== '1') throw new NotFoundError(`No user ${id}`)
    return { id, name: 'Ada' }
  })
  app.get('/crash', async () => { throw new Error('db password=hunter2') })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const ok = await fetch(`${base}/users/1`)
  t.same(await ok.json(), { id: '1', name: 'Ada' })
  const nf = await fetch(`${base}/users/2`)
  t.equal(nf.status, 404)
  t.equal(nf.headers.get('content-type'), PROBLEM)
  t.match(await nf.json(), { status: 404, code: 'NOT_FOUND', detail: 'No user 2' })
  const crash = await fetch(`${base}/crash`)
  t.equal(crash.status, 500)
  const text = await crash.text()
  t.notMatch(text, /hunter2/)
  t.notMatch(text, /at .*\.ts/)
})
