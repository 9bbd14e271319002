// An onSend hook that fails (an async throw, a sync throw, `done(err)`) must
// never turn an answer into Fastify's plain JSON carrying the hook's message:
// for a route's own body, faultline's handler answers with a redacted problem;
// when the problem itself cannot get through the hooks, faultline writes a
// minimal problem directly (no hook, no other handler), and the failure is
// reported once. Over HTTP/1.1 (real sockets) and HTTP/2.
import t, { type Test } from 'tap'
import { once } from 'node:events'
import { Readable } from 'node:stream'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type onSendHookHandler } from 'fastify'
import { faultlineHttp, faultlineStream, NotFoundError, MethodNotAllowedError, type Fault, type FaultContext } from '../index.js'
import { chainEnd, handFailuresTo } from '../lib/error-chain.js'
import { fallbackHeaders, writeRawResponse } from '../lib/raw-problem.js'
import { captureLogs, type LogLine } from './helpers/logs.js'
import { guardProcess } from './helpers/guard.js'
import { H2_MODES, collectWarnings, h2App, h2Request, h2Session } from './helpers/h2.js'

guardProcess(t)

// First in the file: before any reply went through Fastify's chain, so the symbol is still unknown.
t.test('handFailuresTo: only inside Fastify\'s chain', async t => {
  const handler = chainEnd(() => {})
  t.equal(handFailuresTo({ [Symbol('other')]: 1 }, handler), false, 'a reply Fastify never walked its chain on')
  t.equal(Object.getPrototypeOf(Object.getPrototypeOf(handler)), null, 'nothing runs after it')
  t.equal((Object.getPrototypeOf(handler) as { func?: unknown }).func, undefined)
  const app = Fastify({ logger: false })
  let handed: boolean[] = []
  app.setErrorHandler((_err, _req, reply) => {
    handed = [handFailuresTo(reply, handler), handFailuresTo(reply, handler)]
    reply.code(500).send('x')
  })
  app.get('/', async () => { throw new Error('x') })
  await app.inject('/')
  t.same(handed, [true, true], 'found on a reply inside the chain, then remembered')
  t.equal(handFailuresTo({}, handler), false, 'still nothing on a reply outside it')
})

const SECRET = 'db password=hunter2'
const PROBLEM = 'application/problem+json; charset=utf-8'

/** An injected response that is the redacted `500 INTERNAL` problem, with nothing of the secret. */
function isRedacted500 (t: Test, res: { statusCode: number, headers: Record<string, unknown>, body: string }): void {
  t.equal(res.statusCode, 500)
  t.equal(res.headers['content-type'], PROBLEM)
  t.equal(JSON.parse(res.body).code, 'INTERNAL')
  t.notMatch(res.body, SECRET)
}

type How = 'async' | 'sync' | 'done'
/** Which bodies the hook fails on: every one, problems only, or everything but problems. */
type When = 'always' | 'problems' | 'others'

function isProblem (reply: FastifyReply): boolean {
  return String(reply.getHeader('content-type')).startsWith('application/problem+json')
}

/** An onSend hook that fails as `how` says, on the bodies `when` says, with the secret in its message. */
function failingHook (how: How, when: When, label: string = how): onSendHookHandler {
  const fails = (reply: FastifyReply): boolean => when === 'always' || (when === 'problems') === isProblem(reply)
  const error = (): Error => new Error(`${SECRET} (${label})`)
  if (how === 'async') {
    return async function (_req: FastifyRequest, reply: FastifyReply, payload: unknown) {
      if (fails(reply)) throw error()
      return payload
    } as onSendHookHandler
  }
  if (how === 'sync') {
    return function (_req: FastifyRequest, reply: FastifyReply, payload: unknown, done: (err: Error | null, p?: unknown) => void) {
      if (fails(reply)) throw error()
      done(null, payload)
    } as onSendHookHandler
  }
  return function (_req: FastifyRequest, reply: FastifyReply, payload: unknown, done: (err: Error | null, p?: unknown) => void) {
    if (fails(reply)) done(error())
    else done(null, payload)
  } as onSendHookHandler
}

interface Case { lines: LogLine[], reports: Array<[Fault, FaultContext]>, base: string, app: FastifyInstance }

/** Routes in a scope with the failing hook: a success, a thrown 404, a thrown server fault, a stream failing before its first byte, not-found. */
async function appWith (t: Test, how: How, when: When): Promise<Case> {
  const logs = captureLogs()
  const reports: Case['reports'] = []
  const app = Fastify({ logger: { level: 'info', stream: logs.stream }, forceCloseConnections: true })
  await app.register(faultlineHttp, { onFault: (f, c) => { reports.push([f, c]) } })
  await app.register(faultlineStream)
  await app.register(async scope => {
    scope.addHook('onSend', failingHook(how, when))
    scope.get('/ok', async () => ({ ok: true }))
    scope.get('/not-found', async () => { throw new NotFoundError('No such order') })
    scope.get('/server', async () => { throw new Error('upstream broke') })
    scope.get('/stream', async (_req, reply) => reply.streamSafe(async function * () { throw new Error('no first byte') }()))
    scope.setNotFoundHandler((req, reply) => { scope.faultline.sendProblem(reply, new NotFoundError(`Route ${req.url} not found`)) })
  }, { prefix: '/s' })
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return { lines: logs.lines, reports, base, app }
}

/** What a route answers when the hook fails as `when` says. */
function expected (path: string, when: When): { status: number, code: string | undefined } {
  const route: Record<string, { status: number, code: string | undefined }> = {
    '/s/ok': { status: 200, code: undefined },
    '/s/not-found': { status: 404, code: 'NOT_FOUND' },
    '/s/server': { status: 500, code: 'INTERNAL' },
    '/s/stream': { status: 500, code: 'INTERNAL' },
    '/s/nowhere': { status: 404, code: 'NOT_FOUND' }
  }
  const own = route[path]!
  if (when === 'problems') return own.code === undefined ? own : { status: 500, code: 'INTERNAL' }
  if (when === 'others') return own.code === undefined ? { status: 500, code: 'INTERNAL' } : own
  return { status: 500, code: 'INTERNAL' }
}

const secretLines = (lines: LogLine[]): LogLine[] => lines.filter(l => JSON.stringify(l).includes(SECRET))

for (const how of ['async', 'sync', 'done'] as const) {
  for (const when of ['always', 'problems', 'others'] as const) {
    t.test(`an onSend hook failing (${how}, ${when}) never leaks its message; each failure is reported once`, async t => {
      const c = await appWith(t, how, when)
      for (const path of ['/s/ok', '/s/not-found', '/s/server', '/s/stream', '/s/nowhere']) {
        const before = c.lines.length
        const reportsBefore = c.reports.length
        const res = await fetch(c.base + path)
        const body = await res.text()
        const want = expected(path, when)
        t.equal(res.status, want.status, `${path}: status`)
        t.notMatch(body, SECRET, `${path}: the hook's message stays out of the body`)
        const lines = c.lines.slice(before)
        if (want.code === undefined) {
          t.same(JSON.parse(body), { ok: true }, `${path}: the hook let the route's body through`)
          t.equal(secretLines(lines).length, 0)
          continue
        }
        t.equal(res.headers.get('content-type'), PROBLEM, `${path}: a problem`)
        const problem = JSON.parse(body)
        t.equal(problem.code, want.code, `${path}: code`)
        t.equal(problem.status, want.status)
        t.equal(problem.requestId, res.headers.get('x-request-id'), `${path}: the request id, in the body and the header`)
        if (want.status >= 500) t.equal(problem.detail, problem.title, `${path}: a server fault's detail is its title`)
        // The hook failed once on this request's way out (for /s/ok on its own body, else on the problem), and that is logged once.
        const hookFailed = when === 'always' || (when === 'problems') === (path !== '/s/ok')
        t.equal(secretLines(lines).length, hookFailed ? 1 : 0, `${path}: the hook's message is in ${hookFailed ? 'one log line' : 'no log line'}`)
        if (hookFailed) {
          const [line] = secretLines(lines)
          t.equal(line!.level, 50, `${path}: at error level`)
          t.equal(line!.handled, true)
        }
        t.notOk(lines.some(l => l.handled !== true && (l.err !== undefined || (l.level as number) >= 50)), `${path}: no line from Fastify's own error handler`)
        const hookReports = c.reports.slice(reportsBefore).filter(([f]) => f.message.includes(SECRET))
        t.equal(hookReports.length, secretLines(lines).length, `${path}: the reporters see what the log sees`)
      }
    })
  }
}

t.test('a hook that fails only on problems: the route\'s 404 becomes a minimal 500, written without hooks, reported once', async t => {
  const c = await appWith(t, 'async', 'problems')
  const res = await c.app.inject('/s/not-found')
  t.equal(res.statusCode, 500)
  t.equal(res.headers['content-type'], PROBLEM)
  t.equal(res.headers['content-length'], String(Buffer.byteLength(res.body)))
  t.same(JSON.parse(res.body), {
    type: 'about:blank', title: 'Internal Server Error', status: 500, detail: 'Internal Server Error', instance: '/s/not-found', code: 'INTERNAL', requestId: res.headers['x-request-id']
  })
  const faults = c.lines.filter(l => l.handled === true)
  t.same(faults.map(l => (l.fault as { code: string }).code), ['NOT_FOUND', 'INTERNAL'], 'the route\'s fault, then the hook\'s')
  t.equal(faults[1]!.problemFallback, true, 'the hook\'s line says the problem was written by the fallback')
  t.match((faults[1]!.err as { message: string }).message, SECRET, 'the log keeps what the client may not see')
  t.equal(c.reports[1]![1].problemFallback, true)
  t.equal(c.reports[1]![1].transport, 'http')
})

t.test('a stream failing before its first byte: reported once as a stream fault, the hook\'s failure once as an http one', async t => {
  const c = await appWith(t, 'done', 'problems')
  const res = await fetch(c.base + '/s/stream')
  t.equal(res.status, 500)
  await res.text()
  t.same(c.reports.map(([f, ctx]) => [f.code, ctx.transport, ctx.phase]), [['INTERNAL', 'stream', 'before-response'], ['INTERNAL', 'http', 'before-response']])
  t.notOk(c.reports[0]![0].message.includes(SECRET))
  t.ok(c.reports[1]![0].message.includes(SECRET))
})

t.test('a hook that fails on every body does not loop: two requests in a row on one connection both answer', async t => {
  const c = await appWith(t, 'async', 'always')
  for (let i = 0; i < 2; i++) {
    const res = await fetch(c.base + '/s/not-found')
    t.equal(res.status, 500)
    t.equal(JSON.parse(await res.text()).code, 'INTERNAL')
  }
  t.equal(c.lines.filter(l => l.msg === 'request completed').length, 2, 'each request completes (onResponse runs)')
})

t.test('a child scope with its own error handler and failing hook still ends as a redacted problem', async t => {
  const logs = captureLogs()
  const reports: Fault[] = []
  const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
  await app.register(faultlineHttp, { onFault: f => { reports.push(f) } })
  let mine = 0
  await app.register(async child => {
    child.setErrorHandler((err, _req, reply) => {
      mine++
      reply.code(418).send({ mine: (err as Error).message })
    })
    child.addHook('onSend', failingHook('async', 'always', 'child'))
    child.get('/ok', async () => ({ ok: true }))
  })
  const res = await app.inject('/ok')
  isRedacted500(t, res)
  t.equal(mine, 1, 'the scope\'s own handler ran once; its answer failed in the hook too')
  t.same(reports.map(f => f.status), [418, 500], 'its answer\'s failure (with the status it set), then the problem\'s')
  t.equal(logs.lines.filter(l => l.handled !== true && l.err !== undefined).length, 0, 'no line from Fastify\'s default handler')
})

t.test('a user\'s handler that delegates to sendProblem: a failure on the way out reaches the fallback', async t => {
  const app = Fastify({ logger: false })
  await app.register(faultlineHttp)
  await app.register(async child => {
    child.setErrorHandler((err, _req, reply) => { child.faultline.sendProblem(reply, err) })
    child.addHook('onSend', failingHook('done', 'problems'))
    child.get('/nf', async () => { throw new NotFoundError('nope') })
  })
  const res = await app.inject('/nf')
  isRedacted500(t, res)
})

t.test('the fallback keeps the application\'s headers and drops those of the body that failed', async t => {
  const app = Fastify({ logger: false })
  await app.register(faultlineHttp)
  app.addHook('onRequest', async (_req, reply) => {
    reply.header('access-control-allow-origin', 'https://app.example')
    reply.header('content-security-policy', "default-src 'none'")
  })
  app.addHook('onSend', async (_req, reply) => {
    // As a compressor would, before it fails.
    reply.header('content-encoding', 'gzip')
    reply.raw.setHeader('etag', '"abc"')
    reply.header('x-bad', 'a\r\nb')
    throw new Error(SECRET)
  })
  app.get('/busy', async () => { throw new MethodNotAllowedError('Use POST', { retryAfter: 7 }) })
  const res = await app.inject('/busy')
  t.equal(res.statusCode, 500)
  t.equal(res.headers['access-control-allow-origin'], 'https://app.example', 'CORS stays: a browser can read the problem')
  t.equal(res.headers['content-security-policy'], "default-src 'none'", 'a header of the response as a whole stays')
  t.equal(res.headers['content-encoding'], undefined, 'the failed body\'s encoding is gone')
  t.equal(res.headers.etag, undefined, 'so is its validator, set on the raw response')
  t.equal(res.headers['retry-after'], undefined, 'the 405\'s Retry-After went with it')
  t.equal(res.headers['x-bad'], undefined, 'a header Node refuses is dropped')
  t.equal(res.headers['content-type'], PROBLEM)
  t.equal(JSON.parse(res.body).code, 'INTERNAL')
})

t.test('an exposed fault thrown by the hook is the answer, with its headers, its message and its Retry-After', async t => {
  const app = Fastify({ logger: false })
  await app.register(faultlineHttp, { requestIdHeader: false })
  app.addHook('onSend', async () => {
    throw Object.assign(new Error('Slow down'), { statusCode: 429, expose: true, headers: { 'x-limit': '10' } })
  })
  app.get('/', async () => ({ ok: true }))
  const res = await app.inject('/')
  t.equal(res.statusCode, 429)
  t.equal(res.headers['x-limit'], '10')
  t.equal(res.headers['x-request-id'], undefined, 'the request id header is off')
  t.equal(JSON.parse(res.body).detail, 'Slow down')
  const { ServiceUnavailableError } = await import('../index.js')
  const app2 = Fastify({ logger: false })
  await app2.register(faultlineHttp)
  app2.addHook('onSend', async () => { throw new ServiceUnavailableError('Maintenance', { retryAfter: 30 }) })
  app2.get('/', async () => ({ ok: true }))
  const res2 = await app2.inject('/')
  t.equal(res2.statusCode, 503)
  t.equal(res2.headers['retry-after'], '30')
  t.equal(JSON.parse(res2.body).retryAfter, 30)
})

t.test('HEAD: the fallback writes the headers only', async t => {
  const c = await appWith(t, 'async', 'always')
  const res = await fetch(c.base + '/s/not-found', { method: 'HEAD' })
  t.equal(res.status, 500)
  t.equal(res.headers.get('content-type'), PROBLEM)
  t.equal(await res.text(), '')
})

t.test('a hook that wrote the head itself before failing: the response is cut, never a clean end', async t => {
  const logs = captureLogs()
  const app = Fastify({ logger: { level: 'info', stream: logs.stream }, forceCloseConnections: true })
  await app.register(faultlineHttp)
  app.addHook('onSend', async (_req, reply) => {
    if (!isProblem(reply)) return
    reply.raw.writeHead(200, { 'content-type': 'text/plain' })
    reply.raw.write('partial')
    throw new Error(SECRET)
  })
  app.get('/nf', async () => { throw new NotFoundError('nope') })
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const res = await fetch(base + '/nf')
  t.equal(res.status, 200)
  await t.rejects(res.text(), 'the body is truncated')
  const lines = secretLines(logs.lines)
  t.equal(lines.length, 1)
  t.equal(lines[0]!.phase, 'mid-stream')
})

t.test('a response that cannot be written is cut, not left hanging', async t => {
  const app = Fastify({ logger: false, forceCloseConnections: true })
  await app.register(faultlineHttp)
  app.addHook('onSend', async (_req, reply) => {
    if (!isProblem(reply)) return
    // Sabotage, as an attacker's hook might: nothing can be written.
    reply.raw.writeHead = () => { throw new Error('no head for you') }
    throw new Error(SECRET)
  })
  app.get('/nf', async () => { throw new NotFoundError('nope') })
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  await t.rejects(fetch(base + '/nf'), 'the client sees the connection fail')
})

t.test('a client gone before the hook fails: reported, nothing written', async t => {
  const logs = captureLogs()
  const app = Fastify({ logger: { level: 'info', stream: logs.stream }, forceCloseConnections: true })
  await app.register(faultlineHttp)
  let inHandler!: () => void
  const handled = new Promise<void>(resolve => { inHandler = resolve })
  app.addHook('onSend', async (_req, reply) => {
    if (!isProblem(reply)) return
    await once(reply.raw, 'close')
    throw new Error(SECRET)
  })
  app.get('/nf', async () => {
    inHandler()
    throw new NotFoundError('nope')
  })
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const ac = new AbortController()
  const pending = fetch(base + '/nf', { signal: ac.signal })
  await handled
  ac.abort()
  await t.rejects(pending)
  while (secretLines(logs.lines).length === 0) await new Promise(resolve => setTimeout(resolve, 5))
  t.equal(secretLines(logs.lines).length, 1, 'the hook\'s failure is still reported')
})

for (const mode of H2_MODES) {
  t.test(`HTTP/2 (${mode}): a failing onSend hook answers a redacted problem, no connection header, no warning`, async t => {
    const warnings = collectWarnings(t)
    const h = await h2App(t, mode, app => {
      app.register(async scope => {
        scope.addHook('onRequest', async (_req, reply) => { reply.header('connection', 'keep-alive') })
        scope.addHook('onSend', failingHook('async', 'always'))
        scope.get('/nf', async () => { throw new NotFoundError('nope') })
        scope.get('/ok', async () => ({ ok: true }))
        scope.get('/stream', async (_req, reply) => reply.streamSafe(Readable.from((async function * () { throw new Error('no first byte') })())))
        scope.get('/sse', { sse: true }, async () => { throw new Error('no first event') })
      })
    })
    const session = await h2Session(t, h)
    for (const path of ['/nf', '/ok', '/stream', '/sse']) {
      const res = await h2Request(session, path, { headers: { accept: 'text/event-stream' } })
      t.equal(res.status, 500, path)
      t.equal(res.rstCode, 0, `${path}: a clean end of a whole response`)
      t.equal(res.headers['content-type'], PROBLEM)
      t.equal(res.headers.connection, undefined)
      t.equal(JSON.parse(res.body).code, 'INTERNAL')
      t.notMatch(res.body, SECRET)
    }
    t.equal(secretLines(h.lines).length, 4, 'one line per request carries the hook\'s message')
    t.same(warnings, [])
  })
}

t.test('fallbackHeaders', async t => {
  t.same(fallbackHeaders({ 'set-cookie': ['a=1', 'b=2'], 'content-type': 'text/html', connection: 'close', 'x-n': 3 }, { 'content-type': PROBLEM }, false),
    { 'set-cookie': ['a=1', 'b=2'], connection: 'close', 'x-n': 3, 'content-type': PROBLEM })
  t.same(fallbackHeaders({ connection: 'close', 'keep-alive': 'x', vary: 'origin' }, {}, true), { vary: 'origin' }, 'HTTP/2: no connection-specific header')
})

t.test('writeRawResponse replaces every header already set', async t => {
  const app = Fastify({ logger: false })
  app.get('/', (_req, reply) => {
    reply.hijack()
    reply.raw.setHeader('x-old', '1')
    writeRawResponse(reply.raw, 503, { 'x-new': '2' }, 'body', false)
  })
  const res = await app.inject('/')
  t.equal(res.statusCode, 503)
  t.equal(res.headers['x-old'], undefined)
  t.equal(res.headers['x-new'], '2')
  t.equal(res.body, 'body')
})

t.test('a logger that throws while faultline reports: the client still gets a redacted problem', async t => {
  let thrown = 0
  const stream = {
    write (line: string) {
      // A destination that fails on error lines (a full disk, a closed pipe).
      if (line.includes('"level":50')) {
        thrown++
        throw new Error(`${SECRET} (logger)`)
      }
    }
  }
  const app = Fastify({ logger: { level: 'info', stream } })
  await app.register(faultlineHttp)
  app.get('/crash', async () => { throw new Error(SECRET) })
  const res = await app.inject('/crash')
  isRedacted500(t, res)
  t.equal(thrown, 2, 'the handler\'s report failed, then the fallback\'s (caught)')
})
