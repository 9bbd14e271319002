import t from 'tap'
import jwt from '@fastify/jwt'
import { guardProcess } from '../helpers/guard.js'
import { compatApp, isProblem } from '../helpers/compat-app.js'

guardProcess(t)

t.test('@fastify/jwt: a missing, bad or expired token is a 401 problem; the plugin\'s code stays in the log', async t => {
  const { app, faults, reports } = await compatApp(t, async app => {
    await app.register(jwt, { secret: 'supersecret' })
    app.addHook('onRequest', async (request) => { await request.jwtVerify() })
    app.get('/me', async (request) => ({ user: (request.user as { sub: string }).sub }))
  })
  const good = app.jwt.sign({ sub: 'ada' })
  const expired = app.jwt.sign({ sub: 'ada', exp: Math.floor(Date.now() / 1000) - 60 })

  const ok = await app.inject({ url: '/me', headers: { authorization: `Bearer ${good}` } })
  t.equal(ok.statusCode, 200)
  t.same(ok.json(), { user: 'ada' })

  const cases = [
    ['no header', {}, 'FST_JWT_NO_AUTHORIZATION_IN_HEADER'],
    ['bad signature', { authorization: `Bearer ${good.slice(0, -4)}AAAA` }, 'FST_JWT_AUTHORIZATION_TOKEN_INVALID'],
    ['expired', { authorization: `Bearer ${expired}` }, 'FST_JWT_AUTHORIZATION_TOKEN_EXPIRED']
  ] as const
  for (const [name, headers, pluginCode] of cases) {
    const res = await app.inject({ url: '/me', headers })
    t.equal(res.statusCode, 401, name)
    t.ok(isProblem(res.headers['content-type']), name)
    const body = res.json()
    t.match(body, { status: 401, code: 'UNAUTHORIZED', title: 'Unauthorized' }, name)
    t.notMatch(res.body, /FST_JWT/, `${name}: the plugin's code is not on the wire`)
    t.match(faults().at(-1), { level: 30, fault: { code: 'UNAUTHORIZED', status: 401, causeCode: pluginCode } }, `${name}: it is in the log line`)
  }
  t.equal(reports.length, 3)
  t.equal((await app.inject('/me')).json().detail, 'No Authorization was found in request.headers', 'jwt\'s 4xx messages are client-safe and shown')
})
