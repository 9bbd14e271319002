import t from 'tap'
import auth from '@fastify/auth'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { ForbiddenError, UnauthorizedError } from '../../index.js'
import { guardProcess } from '../helpers/guard.js'
import { compatApp, isProblem } from '../helpers/compat-app.js'

guardProcess(t)

type Done = (err?: Error) => void

t.test('@fastify/auth: failed strategies are a 401 problem (a strategy\'s own fault keeps its status)', async t => {
  const { app, faults } = await compatApp(t, async app => {
    // The README's shape: strategies as decorators, `done(err)` when they fail.
    app.decorate('verifyKey', function (request: FastifyRequest, reply: FastifyReply, done: Done) {
      done(request.headers['x-key'] === 'k' ? undefined : new Error('bad key for tenant 42'))
    })
    app.decorate('verifyAdmin', async function (request: FastifyRequest) {
      if (request.headers['x-role'] === 'guest') throw new ForbiddenError('Admins only')
      if (request.headers['x-role'] !== 'admin') throw new UnauthorizedError('Sign in as an admin')
    })
    await app.register(auth)
    const verifyKey = (app as unknown as { verifyKey: Parameters<typeof app.auth>[0][number] }).verifyKey
    const verifyAdmin = (app as unknown as { verifyAdmin: Parameters<typeof app.auth>[0][number] }).verifyAdmin
    app.get('/either', { preHandler: app.auth([verifyKey]) }, async () => ({ ok: true }))
    app.get('/both', { preHandler: app.auth([verifyKey, verifyAdmin], { relation: 'and' }) }, async () => ({ ok: true }))
  })

  t.equal((await app.inject({ url: '/either', headers: { 'x-key': 'k' } })).statusCode, 200)

  const plain = await app.inject('/either')
  t.equal(plain.statusCode, 401, 'auth\'s 401 for a strategy that failed with a plain Error (Fastify\'s rule: the reply\'s status)')
  t.ok(isProblem(plain.headers['content-type']))
  t.match(plain.json(), { code: 'UNAUTHORIZED', detail: 'Unauthorized' })
  t.notMatch(plain.body, /tenant 42/, 'a plain Error\'s message is not shown')
  t.match(faults().at(-1), { fault: { code: 'UNAUTHORIZED', status: 401 }, msg: 'bad key for tenant 42' }, 'it is in the log')

  const guest = await app.inject({ url: '/both', headers: { 'x-key': 'k', 'x-role': 'guest' } })
  t.equal(guest.statusCode, 403, 'a strategy\'s own fault keeps its status')
  t.match(guest.json(), { code: 'FORBIDDEN', detail: 'Admins only' })

  const anon = await app.inject({ url: '/both', headers: { 'x-key': 'k' } })
  t.equal(anon.statusCode, 401)
  t.match(anon.json(), { code: 'UNAUTHORIZED', detail: 'Sign in as an admin' })

  t.equal((await app.inject({ url: '/both', headers: { 'x-key': 'k', 'x-role': 'admin' } })).statusCode, 200)
})
