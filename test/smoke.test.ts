import t from 'tap'
import Fastify from 'fastify'
import { faultlineHttp, NotFoundError } from '../index.js'

t.test('smoke', async t => {
  const app = Fastify()
  await app.register(faultlineHttp)
  app.get('/', async () => { throw new NotFoundError('x') })
  const r = await app.inject('/')
  t.equal(r.statusCode, 404)
})
