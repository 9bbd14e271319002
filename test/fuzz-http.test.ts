// Property-based tests over thrown values, through a real Fastify route: the
// response is always a valid problem+json with a 400-599 status, one line, no
// header injection, and nothing ever escapes as an unhandled rejection; the
// same when an onSend hook fails, however it fails.
import t from 'tap'
import fc from 'fast-check'
import Fastify, { type FastifyReply, type onSendHookHandler } from 'fastify'
import { faultlineHttp, faultlineStream, InternalError, defineFault, toFault, toProblem, stringifyProblem } from '../index.js'
import { guardProcess } from './helpers/guard.js'
import { wellFormed } from '../lib/problem.js'
import { RUNS, thrown, nastyString, hostileDetails } from './helpers/arbitraries.js'
import { captureLogs } from './helpers/logs.js'

guardProcess(t)

t.test('anything thrown through a route is a valid problem+json response', async t => {
  const app = Fastify({ logger: { level: 'debug', stream: { write () {} } } })
  await app.register(faultlineHttp)
  let current: unknown
  app.get('/throw', async () => { throw current })
  app.get('/send', (_req, reply) => { reply.send(current instanceof Error ? current : new InternalError('x', { cause: current })) })
  await fc.assert(fc.asyncProperty(thrown, fc.boolean(), async (value, viaSend) => {
    current = value
    const res = await app.inject(viaSend ? '/send' : '/throw')
    if (res.statusCode < 400 || res.statusCode > 599) return false
    if (res.headers['content-type'] !== 'application/problem+json; charset=utf-8') return false
    if (/[\r\n\u2028\u2029]/.test(res.body)) return false
    const body = JSON.parse(res.body)
    if (body.status !== res.statusCode || typeof body.code !== 'string' || typeof body.title !== 'string' || typeof body.detail !== 'string') return false
    const retryAfter = res.headers['retry-after']
    if (retryAfter !== undefined && !/^\d+$/.test(String(retryAfter))) return false
    // A 5xx shows its message only when the thrown error itself declared it safe (http-errors' `expose`).
    if (res.statusCode >= 500 && body.detail !== body.title && declaredExpose(value) !== true) return false
    return true
  }), { numRuns: RUNS })
  t.pass(`${RUNS} thrown values rendered as valid problem+json`)
})

function declaredExpose (value: unknown): unknown {
  try {
    return (value as { expose?: unknown }).expose
  } catch {
    return undefined
  }
}

t.test('a secret in an unexposed fault never reaches the body', async t => {
  const app = Fastify({ logger: false })
  await app.register(faultlineHttp)
  let current: unknown
  app.get('/', async () => { throw current })
  const secret = fc.string({ minLength: 12, maxLength: 40 }).map(s => `SECRET-${s}-END`)
  await fc.assert(fc.asyncProperty(secret, fc.constantFrom('message', 'cause', 'details', 'stack', 'plain'), async (s, where) => {
    current = where === 'message'
      ? new InternalError(s)
      : where === 'cause'
        ? new InternalError('x', { cause: new Error(s) })
        : where === 'details'
          ? new InternalError('x', { details: { s } })
          : where === 'stack'
            ? Object.assign(new Error('x'), { stack: s })
            : new Error(s)
    const res = await app.inject('/')
    return res.statusCode === 500 && !res.body.includes('SECRET-')
  }), { numRuns: RUNS })
  t.pass('no secret leaked')
})

t.test('problem JSON is one parseable line for any message, code and details', async t => {
  let n = 0
  fc.assert(fc.property(nastyString, nastyString, fc.oneof(fc.dictionary(fc.string({ maxLength: 10 }), fc.jsonValue({ maxDepth: 2 })), hostileDetails), (message, code, details) => {
    const Cls = defineFault({ code: wellFormed(`FUZZ_${n++}_${code.replace(/[\u0000-\u001f\u007f]/g, '')}`.slice(0, 200)), status: 422 }) // eslint-disable-line no-control-regex
    const json = stringifyProblem(toProblem(new Cls(message, { details })))
    if (/[\r\n\u2028\u2029]/.test(json)) return false
    const parsed = JSON.parse(json)
    return parsed.detail === (message === '' ? 'Unprocessable Entity' : message) && parsed.status === 422
  }), { numRuns: RUNS })
  fc.assert(fc.property(thrown, value => {
    const json = stringifyProblem(toProblem(toFault(value)))
    return !/[\r\n\u2028\u2029]/.test(json) && typeof JSON.parse(json).status === 'number'
  }), { numRuns: RUNS })
  t.pass('always one line')
})

// Issue 21: onSend hooks that fail (every way a hook can fail, on some bodies
// or all, in scopes with and without their own error handler) never turn an
// answer into Fastify's plain JSON with the hook's message, never loop, and
// never log through Fastify's default handler.
t.test('a failing onSend hook always ends as the route\'s answer or a redacted problem', async t => {
  const SECRET = 'SECRET-hook-END'
  const spec = fc.record({
    how: fc.constantFrom('async', 'sync', 'done', 'reject-empty', 'done-value'),
    when: fc.constantFrom('always', 'problems', 'others', 'first'),
    value: fc.oneof(fc.constant(undefined), thrown),
    route: fc.constantFrom('ok', 'throw', 'missing', 'stream'),
    scope: fc.constantFrom('plain', 'own-handler', 'delegating'),
    routeThrows: thrown
  })
  type Spec = typeof spec extends fc.Arbitrary<infer S> ? S : never
  let current: Spec | undefined
  let calls = 0
  // Fastify's onSend runner reads a sync `throw null` as no error and sends
  // no payload (lib/hooks.js: cb(error) without the payload, then
  // `err != null` is false): an empty body that no handler ever sees.
  let bodyDropped = false
  const logs = captureLogs()
  const app = Fastify({ logger: { level: 'debug', stream: logs.stream } })
  await app.register(faultlineHttp)
  await app.register(faultlineStream)
  function hook (this: unknown, _req: unknown, reply: FastifyReply, payload: unknown, done: (err: unknown, p?: unknown) => void): unknown {
    const s = current!
    const problem = String(reply.getHeader('content-type')).startsWith('application/problem+json')
    const fails = s.when === 'always' || (s.when === 'first' ? calls++ === 0 : (s.when === 'problems') === problem)
    // The hook's error: a secret in a plain Error, or anything at all.
    const error = s.value === undefined ? new Error(SECRET) : s.value
    if (s.how === 'async' || s.how === 'reject-empty') {
      return fails ? Promise.reject(s.how === 'reject-empty' ? undefined : error) : Promise.resolve(payload)
    }
    if (!fails) return done(null, payload)
    if (s.how === 'sync') {
      if (error === null) bodyDropped = true
      throw error
    }
    done(s.how === 'done-value' ? (error ?? SECRET) : error)
  }
  for (const scope of ['plain', 'own-handler', 'delegating'] as const) {
    await app.register(async child => {
      if (scope === 'own-handler') child.setErrorHandler((_err, _req, reply) => { reply.code(418).send({ mine: true }) })
      if (scope === 'delegating') child.setErrorHandler((err, _req, reply) => { child.faultline.sendProblem(reply, err) })
      // A hook with four parameters: Fastify hands it `done` (an async one would be given none).
      child.addHook('onSend', hook as onSendHookHandler)
      child.get('/ok', async () => ({ ok: true }))
      child.get('/throw', async () => { throw current!.routeThrows })
      child.get('/stream', async (_req, reply) => reply.streamSafe(async function * () { throw current!.routeThrows }()))
    }, { prefix: `/${scope}` })
  }
  await fc.assert(fc.asyncProperty(spec, async s => {
    current = s
    calls = 0
    bodyDropped = false
    const before = logs.lines.length
    const res = await app.inject(`/${s.scope}/${s.route === 'missing' ? 'nowhere' : s.route}`)
    const lines = logs.lines.slice(before)
    // Fastify's own handlers log without `handled`; faultline's lines all carry it.
    if (lines.some(l => l.handled !== true && l.err !== undefined)) return false
    if (bodyDropped) return res.body === ''
    if (res.statusCode === 200) return s.route === 'ok' && res.body === '{"ok":true}'
    if (res.statusCode === 418 && s.scope === 'own-handler' && res.body === '{"mine":true}') return true
    if (res.statusCode < 400 || res.statusCode > 599) return false
    if (res.headers['content-type'] !== 'application/problem+json; charset=utf-8') return false
    if (/[\r\n\u2028\u2029]/.test(res.body) || res.body.includes(SECRET)) return false
    const body = JSON.parse(res.body)
    if (body.status !== res.statusCode || typeof body.code !== 'string') return false
    // A server fault's detail is its title, unless what was thrown declared itself safe to show.
    const declared = declaredExpose(s.value) === true || declaredExpose(s.routeThrows) === true
    return res.statusCode < 500 || body.detail === body.title || declared
  }), { numRuns: RUNS })
  t.pass(`${RUNS} hook failures answered as the route's body or a redacted problem`)
})
