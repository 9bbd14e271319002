import t from 'tap'
import helmet from '@fastify/helmet'
import { Readable } from 'node:stream'
import { NotFoundError } from '../../index.js'
import { guardProcess } from '../helpers/guard.js'
import { compatApp, isProblem } from '../helpers/compat-app.js'

guardProcess(t)

t.test('@fastify/helmet: its security headers are on problem responses and streamed bodies', async t => {
  const { app } = await compatApp(t, async app => {
    await app.register(helmet)
    app.get('/crash', async () => { throw new Error('boom') })
    app.get('/gone', async () => { throw new NotFoundError('No such thing') })
    app.get('/stream', async (request, reply) => reply.streamSafe(Readable.from(['a', 'b'])))
    app.get('/stream-fails-first', async (request, reply) => reply.streamSafe(async () => { throw new NotFoundError('nothing to stream') }))
  })

  for (const [path, status] of [['/crash', 500], ['/gone', 404], ['/missing', 404], ['/stream', 200], ['/stream-fails-first', 404]] as const) {
    const res = await app.inject(path)
    t.equal(res.statusCode, status, path)
    t.equal(res.headers['x-content-type-options'], 'nosniff', `${path}: nosniff`)
    t.match(res.headers['content-security-policy'], /default-src 'self'/, `${path}: CSP`)
    t.equal(res.headers['x-frame-options'], 'SAMEORIGIN', `${path}: frame options`)
    t.match(res.headers['strict-transport-security'], /max-age=/, `${path}: HSTS`)
    if (status !== 200) t.ok(isProblem(res.headers['content-type']), `${path}: problem+json`)
  }
  t.equal((await app.inject('/stream')).body, 'ab')
})
