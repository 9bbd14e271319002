// Property-based tests over thrown values, through a real Fastify route: the
// response is always a valid problem+json with a 400-599 status, one line, no
// header injection, and nothing ever escapes as an unhandled rejection.
import t from 'tap'
import fc from 'fast-check'
import Fastify from 'fastify'
import { faultlineHttp, InternalError, defineFault, toFault, toProblem, stringifyProblem } from '../index.js'
import { guardProcess } from './helpers/guard.js'
import { wellFormed } from '../lib/problem.js'
import { RUNS, thrown, nastyString, hostileDetails } from './helpers/arbitraries.js'

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
