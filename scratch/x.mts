import Fastify from 'fastify'
import fstatic from '@fastify/static'
import { faultlineHttp } from '../index.js'
const app = Fastify()
await app.register(faultlineHttp)
await app.register(fstatic, { root: '/tmp/st18', prefix: '/public/' })
for (const [url, h] of [['/public/nope.txt', {}], ['/public/a.txt', { range: 'bytes=100-200' }], ['/public/../etc/passwd', {}], ['/public/%00', {}]] as const) {
  const r = await app.inject({ url, headers: h })
  console.log(url, r.statusCode, r.headers, r.body)
}
