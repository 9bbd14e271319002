// Injection: fault messages, codes, details and carried headers full of CR,
// LF, CRLF, U+2028/U+2029, NUL, `</script>`, quotes and fake protocol text,
// through every transport. No header is added or split (Retry-After stays a
// number of seconds, no trailers), no SSE field or event is added, no ndjson
// record is split, the WebSocket frame stays one JSON value and the close
// reason valid UTF-8.
import t, { type Test } from 'tap'
import fc from 'fast-check'
import Fastify from 'fastify'
import { request } from 'undici'
import {
  faultlineHttp, faultlineStream, faultlineSse, faultlineWebsocket,
  Fault, ServiceUnavailableError, ForbiddenError, defineFault, type FaultClass
} from '../index.js'
import { guardProcess } from './helpers/guard.js'
import { observeSocket } from './helpers/ws-observe.js'
import { wellFormed } from '../lib/problem.js'
import { nastyString, RUNS } from './helpers/arbitraries.js'
import { closeProblem, errorEventProblem, errorFrameProblem, ndjsonErrorProblem, problemResponseProblem } from './helpers/chaos-checks.js'

guardProcess(t)

const PAYLOADS = [
  'a\r\nSet-Cookie: session=stolen', 'a\nX-Injected: 1', 'a\rX-Injected: 1', '\r\n\r\nHTTP/1.1 200 OK\r\n\r\n',
  'x\nevent: message\ndata: forged\n\n', 'x\r\nid: 999\r\nretry: 1\r\n\r\n', 'x\u2028data: forged\u2029', '\0id: \0',
  '</script><script>alert(1)</script>', '"\'`\\', '{"type":"end"}\n{"type":"data","data":1}', ':comment\n\n'
]

/** A hand-written Fault subclass: its code skips defineFault's validation, so it can hold anything. */
function rawFaultClass (code: string, status: number): FaultClass {
  return class extends Fault {
    static override code = code
    static override status = status
    static override title = 'Raw'
  } as unknown as FaultClass
}

let defined = 0
/** The hostile faults for one payload: in the message, the details, a code (raw and defined), a carried Retry-After. */
function faultsFor (payload: string): Array<[string, () => unknown]> {
  const printable = payload.replace(/[\u0000-\u001f\u007f]/g, '') || 'X' // eslint-disable-line no-control-regex
  // defineFault refuses lone surrogates; the raw hand-written code above keeps them.
  const Defined = defineFault({ code: wellFormed(`INJ_${defined++}_${printable}`.slice(0, 200)), status: 403 })
  return [
    ['a 403 message', () => new ForbiddenError(payload)],
    ['a 503 message with retryAfter', () => new ServiceUnavailableError(payload, { retryAfter: 2 })],
    ['details keys and values', () => new ForbiddenError('x', { details: { [payload]: payload } })],
    ['a raw 4xx code', () => new (rawFaultClass(payload, 410))('gone')],
    ['a raw 5xx code', () => new (rawFaultClass(payload, 503))('down')],
    ['a defined code', () => new Defined(payload)],
    ['a carried Retry-After header', () => Object.assign(new Error(payload), { statusCode: 503, headers: { 'retry-after': payload } })]
  ]
}

/** Why the headers of a response carry something injected; undefined when clean. */
function headerProblem (headers: Record<string, string | string[] | undefined>, trailers: Record<string, unknown>): string | undefined {
  for (const name of Object.keys(headers)) {
    if (/set-cookie|x-injected|^id$|^event$/i.test(name)) return `injected header ${name}`
    if (/[\r\n\0]/.test(String(headers[name]))) return `line break in ${name}`
  }
  const retryAfter = headers['retry-after']
  if (retryAfter !== undefined && !/^\d+$/.test(String(retryAfter))) return `Retry-After ${String(retryAfter)}`
  if (Object.keys(trailers).length > 0) return `trailers ${JSON.stringify(trailers)}`
  return undefined
}

async function injectionApp (t: Test): Promise<{ base: string, set: (make: () => unknown) => void }> {
  const app = Fastify({ logger: false, forceCloseConnections: true })
  await app.register(faultlineHttp)
  await app.register(faultlineStream)
  await app.register(faultlineSse)
  await app.register(faultlineWebsocket)
  let current: () => unknown = () => undefined
  app.get('/http', async () => { throw current() })
  app.get('/stream-before', async (_req, reply) => reply.streamSafe((async function * () { throw current() })()))
  app.get('/stream-ndjson', async (_req, reply) => reply.streamSafe((async function * () {
    yield { n: 1 }
    throw current()
  })(), { framing: 'ndjson' }))
  app.get('/stream-raw', async (_req, reply) => reply.streamSafe((async function * () {
    yield 'first'
    throw current()
  })()))
  app.get('/sse-before', { sse: true }, async () => { throw current() })
  app.get('/sse-after', { sse: true }, async (_req, reply) => {
    await reply.sse.send({ data: 'first' })
    throw current()
  })
  app.get('/sse-fault', { sse: true }, async (_req, reply) => {
    await reply.sse.send({ data: 'first' })
    reply.sse.fault(current(), { close: true })
  })
  app.get('/ws', { websocket: true }, () => { throw current() })
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return { base, set: make => { current = make } }
}

/** Why what `path` rendered breaks its framing; undefined when it holds. */
async function check (base: string, path: string, loneSurrogate: boolean): Promise<string | undefined> {
  if (path === '/ws') return await wsCheck(base.replace('http', 'ws') + path)
  // Known bug (see test/fuzz-sse.test.ts): a lone surrogate in a terminal code loses the event (or hangs the stream).
  if (loneSurrogate && path.startsWith('/sse') && path !== '/sse-before') return undefined
  const res = await request(base + path, { headers: { accept: 'text/event-stream' }, headersTimeout: 10_000, bodyTimeout: 10_000 })
  const body = await res.body.text().then(text => text, () => undefined)
  const headers = headerProblem(res.headers, res.trailers)
  if (headers !== undefined) return headers
  if (path === '/stream-raw') return body === undefined ? undefined : 'the raw stream ended cleanly'
  if (path === '/http' || path.endsWith('-before')) return body === undefined ? 'the body failed' : problemResponseProblem(res.statusCode, res.headers['content-type'], body)
  if (body === undefined) return 'the body failed'
  if (path === '/stream-ndjson') return ndjsonErrorProblem(body)
  return errorEventProblem(body)
}

async function wsCheck (url: string): Promise<string | undefined> {
  const { frames, code, reason } = await observeSocket(url)
  return frames.length !== 1 ? `${frames.length} frames` : errorFrameProblem(frames[0]!) ?? closeProblem(code, reason)
}

/** A payload as ASCII for a test name: a raw U+2028 would split the TAP line. */
function ascii (text: string): string {
  return JSON.stringify(text).replace(/[^\x20-\x7e]/g, c => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'))
}

const PATHS = ['/http', '/stream-before', '/stream-ndjson', '/stream-raw', '/sse-before', '/sse-after', '/sse-fault', '/ws']

t.test('known injection payloads, in every part of a fault, through every transport', async t => {
  const { base, set } = await injectionApp(t)
  for (const payload of PAYLOADS) {
    for (const [where, make] of faultsFor(payload)) {
      set(make)
      for (const path of PATHS) {
        t.equal(await check(base, path, false), undefined, `${ascii(payload)} in ${where} via ${path}`)
      }
    }
  }
})

t.test('arbitrary hostile strings, in every part of a fault, through every transport', async t => {
  const { base, set } = await injectionApp(t)
  let failure: string | undefined
  await fc.assert(fc.asyncProperty(nastyString, fc.nat(6), fc.constantFrom(...PATHS), async (payload, which, path) => {
    const [where, make] = faultsFor(payload)[which]!
    set(make)
    const loneSurrogate = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(payload) && where.endsWith('code')
    failure = await check(base, path, loneSurrogate)
    if (failure !== undefined) failure = `${where} via ${path}: ${failure}`
    return failure === undefined
  }), { numRuns: RUNS, endOnFailure: true }).catch(err => { throw new Error(`${String(failure)}\n${String(err)}`) })
  t.pass(`${RUNS} hostile strings rendered without injection`)
})

async function retryAfterOf (values: fc.Arbitrary<unknown>): Promise<boolean> {
  const app = Fastify({ logger: false })
  await app.register(faultlineHttp)
  let current: unknown
  app.get('/', async () => { throw current })
  let ok = true
  await fc.assert(fc.asyncProperty(values, fc.boolean(), async (value, carried) => {
    current = carried
      ? Object.assign(new Error('busy'), { statusCode: 503, headers: { 'retry-after': value } })
      : new ServiceUnavailableError('busy', { retryAfter: value as number })
    const res = await app.inject('/')
    const retryAfter = res.headers['retry-after']
    return res.statusCode === 503 && (retryAfter === undefined || /^\d+$/.test(String(retryAfter)))
  }), { numRuns: RUNS }).catch(() => { ok = false })
  await app.close()
  return ok
}

t.test('Retry-After is always a whole number of seconds', async t => {
  const values = fc.oneof(
    fc.double({ min: -1e9, max: 1e9 }), fc.integer(), fc.constantFrom(Number.NaN, Infinity, -Infinity, -1, 0.5, '1e3', ' 5', '5\r\nX: y', '120', null, {})
  )
  t.ok(await retryAfterOf(values), 'digits only, or no header')
})

// Found by this suite: `retryAfter: 1e21` (or a carried numeric header of that
// size) rendered as `Retry-After: 1e+21`, which is not a delay-seconds value.
t.test('a huge retryAfter never renders in exponent notation', async t => {
  t.ok(await retryAfterOf(fc.constantFrom(1e21, 1e300, Number.MAX_VALUE)), 'digits only, or no header')
})

// Found by this suite: with `typeBase`, typeSlug called encodeURIComponent on
// the code, which throws URIError on a lone surrogate: HTTP answered with
// Fastify's default JSON body ("URI malformed"), and an ndjson stream failing
// after its first record was an unhandled rejection. defineFault now refuses
// such codes; a hand-written subclass can still set one, and the renderers cope.
t.test('with typeBase, a lone surrogate in a fault code still renders problem+json', async t => {
  t.throws(() => defineFault({ code: 'TYPEBASE_LONE_\ud83d', status: 500 }), { code: 'FST_FAULTLINE_INVALID_FAULT' }, 'defineFault refuses it')
  const app = Fastify({ logger: false })
  await app.register(faultlineHttp, { typeBase: 'https://errors.example.com/' })
  class Lone extends Fault {
    static override code = 'TYPEBASE_LONE_\ud83d'
    static override status = 500
    static override title = 'Internal Server Error'
  }
  app.get('/', async () => { throw new Lone('x') })
  const res = await app.inject('/')
  t.equal(problemResponseProblem(res.statusCode, res.headers['content-type'], res.body), undefined)
  await app.close()
})
