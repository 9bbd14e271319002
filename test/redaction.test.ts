// Redaction audit: in production mode (no `debug`), a secret carried by a
// server fault (its message, a plain Error's message, its cause, its
// details, its stack, a header it carries) never reaches the client through
// any transport (HTTP, stream before and after the headers, SSE before and
// after the first event, WebSocket frame and close reason, background
// work), while the log keeps what an operator needs.
import t from 'tap'
import Fastify from 'fastify'
import { request } from 'undici'
import {
  faultlineHttp, faultlineStream, faultlineSse, faultlineWebsocket, faultlineBackground,
  InternalError, BadGatewayError, defineFault
} from '../index.js'
import { guardProcess } from './helpers/guard.js'
import { observeSocket } from './helpers/ws-observe.js'
import { captureLogs } from './helpers/logs.js'

guardProcess(t)

const SECRET = 'S3CR3T-hunter2-' + Math.random().toString(36).slice(2)
const UpstreamFault = defineFault({ code: 'REDACTION_UPSTREAM', status: 502 })

/**
 * Where the secret hides. `logged: false`: the foundation's log line does not
 * carry it yet (serializeFault logs message, stack and Error causes only);
 * pinned by the todo test at the end and reported in issue 9.
 */
const secrets: Array<{ where: string, make: () => unknown, logged: boolean }> = [
  { where: 'an InternalError message', make: () => new InternalError(`db password ${SECRET}`), logged: true },
  { where: 'a plain Error message', make: () => new Error(`db password ${SECRET}`), logged: true },
  { where: 'a 502 message', make: () => new BadGatewayError(`upstream said ${SECRET}`), logged: true },
  { where: 'a defined 5xx fault message', make: () => new UpstreamFault(`token ${SECRET}`), logged: true },
  { where: 'the cause', make: () => new InternalError('query failed', { cause: new Error(`connect ${SECRET}`) }), logged: true },
  { where: 'a cause that is not an Error', make: () => new InternalError('query failed', { cause: { password: SECRET } }), logged: false },
  { where: 'the details', make: () => new InternalError('query failed', { details: { connection: SECRET } }), logged: false },
  { where: 'the stack', make: () => Object.assign(new Error('boom'), { stack: `Error: boom\n    at connect (${SECRET})` }), logged: true },
  { where: 'a header it carries', make: () => Object.assign(new Error('busy'), { statusCode: 503, headers: { 'x-token': SECRET, 'retry-after': SECRET } }), logged: false }
]

t.test('no transport shows a server fault\'s secret to the client; the log keeps it', async t => {
  const logs = captureLogs()
  const app = Fastify({ logger: { level: 'debug', stream: logs.stream }, forceCloseConnections: true })
  await app.register(faultlineHttp)
  await app.register(faultlineStream)
  await app.register(faultlineSse)
  await app.register(faultlineWebsocket)
  await app.register(faultlineBackground)
  let current: () => unknown = () => undefined
  app.get('/http', async () => { throw current() })
  app.get('/stream-before', async (_req, reply) => reply.streamSafe((async function * () { throw current() })(), { framing: 'ndjson' }))
  app.get('/stream-ndjson', async (_req, reply) => reply.streamSafe((async function * () {
    yield { n: 1 }
    throw current()
  })(), { framing: 'ndjson' }))
  app.get('/sse-before', { sse: true }, async () => { throw current() })
  app.get('/sse-after', { sse: true }, async (_req, reply) => {
    await reply.sse.send({ data: 'first' })
    throw current()
  })
  app.get('/ws', { websocket: true }, () => { throw current() })
  app.get('/background', async (_req, reply) => {
    reply.background(() => { throw current() })
    return { ok: true }
  })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())

  /** Everything a client of `path` gets to see, as text. */
  async function seenBy (path: string): Promise<string> {
    if (path === '/ws') return await wsSeen(address.replace('http', 'ws') + path)
    const res = await request(address + path, { headers: { accept: 'text/event-stream' }, headersTimeout: 10_000, bodyTimeout: 10_000 })
    const body = await res.body.text()
    return `${res.statusCode} ${JSON.stringify(res.headers)}\n${body}`
  }

  for (const { where, make, logged } of secrets) {
    for (const path of ['/http', '/stream-before', '/stream-ndjson', '/sse-before', '/sse-after', '/ws', '/background']) {
      current = make
      logs.lines.length = 0
      const seen = await seenBy(path)
      if (path === '/background') await app.faultline.background.idle()
      t.notOk(seen.includes('S3CR3T'), `${path}: ${where} stays on the server`)
      t.ok(/\b50\d\b/.test(seen) || path === '/background', `${path}: a server error was rendered`)
      if (logged) t.ok(JSON.stringify(logs.lines).includes(SECRET), `${path}: ${where} is in the log`)
      else t.ok(logs.faults().length > 0, `${path}: the fault is logged`)
    }
  }
})

t.test('the log keeps details, a non-Error cause and carried headers of a server fault', async t => {
  const logs = captureLogs()
  const app = Fastify({ logger: { level: 'debug', stream: logs.stream } })
  await app.register(faultlineHttp)
  let current: () => unknown = () => undefined
  app.get('/', async () => { throw current() })
  for (const { where, make } of secrets.filter(s => !s.logged)) {
    current = make
    logs.lines.length = 0
    const res = await app.inject('/')
    t.notOk(res.body.includes('S3CR3T'), `${where} stays on the server`)
    t.ok(JSON.stringify(logs.lines).includes(SECRET), `${where} is in the log`)
  }
})

async function wsSeen (url: string): Promise<string> {
  const { frames, code, reason } = await observeSocket(url)
  return `${code} ${reason.toString('utf8')}\n${frames.join('\n')}`
}
