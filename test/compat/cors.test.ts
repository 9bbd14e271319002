import t from 'tap'
import cors from '@fastify/cors'
import { ForbiddenError } from '../../index.js'
import { guardProcess } from '../helpers/guard.js'
import { compatApp, isProblem } from '../helpers/compat-app.js'

guardProcess(t)

const ORIGIN = 'https://app.example.com'

t.test('@fastify/cors: problem responses carry the CORS headers a browser needs to read them', async t => {
  const { app } = await compatApp(t, async app => {
    await app.register(cors, { origin: ORIGIN, exposedHeaders: ['x-request-id'] })
    app.get('/crash', async () => { throw new Error('db password=hunter2') })
    app.get('/forbidden', async () => { throw new ForbiddenError('Not yours') })
  })

  for (const [path, status, code] of [['/crash', 500, 'INTERNAL'], ['/forbidden', 403, 'FORBIDDEN'], ['/missing', 404, 'NOT_FOUND']] as const) {
    const res = await app.inject({ url: path, headers: { origin: ORIGIN } })
    t.equal(res.statusCode, status, path)
    t.ok(isProblem(res.headers['content-type']), `${path}: problem+json`)
    t.equal(res.headers['access-control-allow-origin'], ORIGIN, `${path}: the allowed origin is echoed`)
    t.equal(res.headers['access-control-expose-headers'], 'x-request-id', `${path}: exposed headers kept`)
    t.equal(res.json().code, code, path)
  }
  t.notMatch((await app.inject({ url: '/crash', headers: { origin: ORIGIN } })).body, /hunter2/)

  const other = await app.inject({ url: '/forbidden', headers: { origin: 'https://evil.example' } })
  t.equal(other.statusCode, 403)
  t.equal(other.headers['access-control-allow-origin'], ORIGIN, 'a fixed origin is what cors sends to anyone (the browser compares it)')
})

t.test('@fastify/cors: preflights, and an origin callback that refuses', async t => {
  const { app, reports } = await compatApp(t, async app => {
    await app.register(cors, {
      // The README's pattern: refuse an origin by passing an error to the callback.
      origin: (origin, cb) => {
        if (origin === undefined || origin === ORIGIN) cb(null, true)
        else if (origin.endsWith('.blocked.example')) cb(new ForbiddenError(`Origin ${origin} is not allowed`), false)
        else cb(new Error('Not allowed'), false)
      }
    })
    app.post('/items', async () => ({ ok: true }))
  })

  const ok = await app.inject({ method: 'OPTIONS', url: '/items', headers: { origin: ORIGIN, 'access-control-request-method': 'POST' } })
  t.equal(ok.statusCode, 204, 'a valid preflight is cors\'s own 204')
  t.equal(ok.headers['access-control-allow-origin'], ORIGIN)
  t.equal(reports.length, 0)

  const forbidden = await app.inject({ method: 'OPTIONS', url: '/items', headers: { origin: 'https://x.blocked.example', 'access-control-request-method': 'POST' } })
  t.equal(forbidden.statusCode, 403, 'a fault from the origin callback keeps its status')
  t.ok(isProblem(forbidden.headers['content-type']))
  t.equal(forbidden.json().code, 'FORBIDDEN')
  t.equal(forbidden.json().detail, 'Origin https://x.blocked.example is not allowed')

  const refused = await app.inject({ method: 'POST', url: '/items', headers: { origin: 'https://evil.example' } })
  t.equal(refused.statusCode, 500, 'a plain Error from the callback is a server fault, as any plain Error')
  t.ok(isProblem(refused.headers['content-type']))
  t.same([refused.json().code, refused.json().detail], ['INTERNAL', 'Internal Server Error'], 'its message stays in the log')
  t.same(reports.map(r => r.fault.status), [403, 500], 'each reported once')

  // strictPreflight (the default): cors answers a malformed preflight itself, before any route.
  const bad = await app.inject({ method: 'OPTIONS', url: '/items', headers: { origin: ORIGIN } })
  t.equal(bad.statusCode, 400)
  t.equal(bad.body, 'Invalid Preflight Request', 'cors\'s own plain-text answer: not an error, nothing reported')
  t.equal(reports.length, 2)
})
