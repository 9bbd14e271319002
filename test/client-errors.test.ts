// What Node's HTTP parser refuses before there is a request never reaches an
// error handler: Fastify's `clientErrorHandler` option gets it, with the raw
// socket. faultlineClientErrors answers it as problem+json, reports it once
// at debug, and never writes into a response already on its way.
import t, { type Test } from 'tap'
import { createServer, type Server } from 'node:http'
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net'
import { Readable } from 'node:stream'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { faultlineHttp, faultlineClientErrors, type Fault, type FaultContext } from '../index.js'
import { toClientErrorFault } from '../lib/normalize.js'
import { guardProcess } from './helpers/guard.js'
import { captureLogs } from './helpers/logs.js'
import { waitFor, WAIT_MS } from './helpers/ws-client.js'

guardProcess(t)

interface App {
  app: FastifyInstance
  port: number
  reports: Array<{ fault: Fault, ctx: FaultContext<unknown> }>
  logs: ReturnType<typeof captureLogs>
}

async function build (t: Test, options: FastifyServerOptions = {}, withFaultline = true): Promise<App> {
  const logs = captureLogs()
  const reports: App['reports'] = []
  const app = Fastify({ logger: { level: 'debug', stream: logs.stream }, forceCloseConnections: true, clientErrorHandler: faultlineClientErrors, ...options })
  if (withFaultline) await app.register(faultlineHttp, { onFault: (fault, ctx) => { reports.push({ fault, ctx }) } })
  app.get('/ok', async () => 'ok')
  app.get('/slow', async (_request, reply) => {
    const body = new Readable({ read () {} })
    body.push('first part;')
    const timer = setTimeout(() => { body.push('second part'); body.push(null) }, 300)
    body.on('close', () => clearTimeout(timer))
    return reply.type('text/plain').send(body)
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return { app, port: (app.server.address() as AddressInfo).port, reports, logs }
}

/** Writes `parts` (the later ones `gapMs` apart) over a raw socket; resolves with all the server sent, once it closed. */
async function exchange (port: number, parts: string[], gapMs = 0): Promise<string> {
  const socket = netConnect(port, '127.0.0.1')
  // The server may answer (and close) before it has read all we send.
  socket.on('error', () => {})
  const chunks: Buffer[] = []
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  await waitFor(socket, 'connect')
  const closed = waitFor(socket, 'close', WAIT_MS)
  for (const [i, part] of parts.entries()) {
    if (i > 0 && gapMs > 0) await new Promise(resolve => setTimeout(resolve, gapMs))
    if (!socket.destroyed) socket.write(part)
  }
  await closed
  return Buffer.concat(chunks).toString('latin1')
}

/** The status line, the headers (lower-cased names) and the parsed body of one raw answer. */
function parseAnswer (answer: string): { status: string, headers: Record<string, string>, body: Record<string, unknown> } {
  const split = answer.indexOf('\r\n\r\n')
  const [status, ...lines] = answer.slice(0, split).split('\r\n')
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim()
  }
  const body = answer.slice(split + 4)
  t.equal(Buffer.byteLength(body), Number(headers['content-length']), 'content-length is the body\'s')
  return { status: status!, headers, body: JSON.parse(body) as Record<string, unknown> }
}

const HUGE_HEADER = 'a'.repeat(64 * 1024)

t.test('a header section over the limit: 431 problem+json, connection closed, reported once at debug without the header', async t => {
  const { port, reports, logs } = await build(t)
  const answer = parseAnswer(await exchange(port, [`GET /ok HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${HUGE_HEADER}\r\n\r\n`]))
  t.equal(answer.status, 'HTTP/1.1 431 Request Header Fields Too Large')
  t.equal(answer.headers['content-type'], 'application/problem+json; charset=utf-8')
  t.equal(answer.headers.connection, 'close')
  t.same(answer.body, {
    type: 'about:blank',
    title: 'Request Header Fields Too Large',
    status: 431,
    detail: 'The request\'s header fields are too large',
    code: 'REQUEST_HEADER_FIELDS_TOO_LARGE'
  }, 'no instance and no request id: there was no request')
  t.equal(reports.length, 1)
  t.match(reports[0]!.ctx, { transport: 'http', phase: 'before-response', level: 'debug', clientError: true })
  const lines = logs.faults()
  t.equal(lines.length, 1)
  t.match(lines[0], { level: 20, fault: { code: 'REQUEST_HEADER_FIELDS_TOO_LARGE', status: 431, causeCode: 'HPE_HEADER_OVERFLOW' }, clientError: true })
  t.notOk(logs.lines.some(line => JSON.stringify(line).includes('aaaaaaaaaaaaaaaa')), 'no log line carries the header')
  t.equal((await exchange(port, ['GET /ok HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'])).endsWith('\r\n\r\nok'), true, 'the next connection is served')
})

t.test('a request line that is not HTTP: 400 problem+json', async t => {
  const { port, reports } = await build(t)
  const answer = parseAnswer(await exchange(port, ['NOT HTTP AT ALL\r\n\r\n']))
  t.equal(answer.status, 'HTTP/1.1 400 Bad Request')
  t.match(answer.body, { status: 400, code: 'BAD_REQUEST', detail: 'The request could not be read as HTTP' })
  t.same(reports.map(r => r.fault.code), ['BAD_REQUEST'], 'reported once')
})

t.test('chunk extensions over their limit: 413 problem+json, before the route\'s own answer', async t => {
  const { port, reports } = await build(t)
  const raw = await exchange(port, [`GET /ok HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n1;${'e'.repeat(64 * 1024)}\r\n`])
  const answer = parseAnswer(raw)
  t.equal(answer.status, 'HTTP/1.1 413 Payload Too Large')
  t.match(answer.body, { status: 413, code: 'PAYLOAD_TOO_LARGE' })
  t.equal(raw.match(/HTTP\/1\.1 /g)!.length, 1, 'one answer on the connection')
  t.equal(reports.filter(r => r.ctx.clientError === true).length, 1)
})

t.test('requestTimeout elapsed: 408 problem+json', async t => {
  const { port, reports } = await build(t, {
    // Node checks request deadlines every 30 s by default: a server of our own checks every 50 ms.
    serverFactory: (handler) => createServer({ connectionsCheckingInterval: 50, requestTimeout: 200, headersTimeout: 200 }, handler)
  })
  const answer = parseAnswer(await exchange(port, ['GET /ok HTTP/1.1\r\nHost: 127.0.0.1\r\n']))
  t.equal(answer.status, 'HTTP/1.1 408 Request Timeout')
  t.match(answer.body, { status: 408, code: 'REQUEST_TIMEOUT', detail: 'The request was not received in time' })
  t.same(reports.map(r => r.fault.code), ['REQUEST_TIMEOUT'], 'reported once')
})

t.test('a response on its way: nothing written into it, the connection is cut (truncation), reported mid-stream', async t => {
  const { port, reports } = await build(t)
  const raw = await exchange(port, ['GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', 'GARBAGE\r\n\r\n'], 100)
  t.match(raw, /^HTTP\/1\.1 200 OK\r\n/)
  t.match(raw, /first part;/)
  t.notMatch(raw, /HTTP\/1\.1 400/, 'no second answer spliced into the body')
  t.notMatch(raw, /\r\n0\r\n\r\n$/, 'no terminating chunk: the client sees truncation')
  const clientErrors = reports.filter(r => r.ctx.clientError === true)
  t.equal(clientErrors.length, 1)
  t.match(clientErrors[0]!, { fault: { code: 'BAD_REQUEST' }, ctx: { phase: 'mid-stream' } })
})

t.test('a peer that reset the connection: nothing written, reported as a client abort', async t => {
  const { app, reports } = await build(t)
  const seen = waitFor<[Error]>(app.server, 'clientError')
  const socket = netConnect((app.server.address() as AddressInfo).port, '127.0.0.1')
  socket.on('error', () => {})
  await waitFor(socket, 'connect')
  socket.write('GET /ok HTTP/1.1\r\nHost: 127.')
  await new Promise(resolve => setTimeout(resolve, 50))
  socket.resetAndDestroy()
  const [err] = await seen
  t.equal((err as Error & { code?: string }).code, 'ECONNRESET')
  t.same(reports.map(r => [r.fault.code, r.ctx.level]), [['CLIENT_CLOSED', 'debug']], 'reported once, at debug')
})

t.test('without faultlineHttp: still problem+json, nothing reported', async t => {
  const { port, logs } = await build(t, {}, false)
  const answer = parseAnswer(await exchange(port, ['NOT HTTP AT ALL\r\n\r\n']))
  t.match(answer.body, { status: 400, code: 'BAD_REQUEST' })
  t.same(logs.faults(), [], 'no fault logged')
})

t.test('a logger that throws while the fault is reported: the peer still gets its answer, the server goes on', async t => {
  const noop = (): void => {}
  const logger = {
    level: 'debug',
    info: noop,
    warn: noop,
    error: noop,
    fatal: noop,
    trace: noop,
    debug (obj: unknown): void {
      if (typeof obj === 'object' && obj !== null && 'clientError' in obj) throw new Error('the log destination is gone')
    },
    child () { return logger }
  }
  const app = Fastify({ loggerInstance: logger as never, clientErrorHandler: faultlineClientErrors, forceCloseConnections: true })
  await app.register(faultlineHttp)
  app.get('/ok', async () => 'ok')
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const { port } = app.server.address() as AddressInfo
  const answer = parseAnswer(await exchange(port, ['NOT HTTP AT ALL\r\n\r\n']))
  t.match(answer.body, { status: 400, code: 'BAD_REQUEST' })
  t.match(await exchange(port, ['GET /ok HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n']), /\r\n\r\nok$/)
})

t.test('as a plain clientError listener (this is the server) or called without a this: answers all the same', async t => {
  const server: Server = createServer((_req, res) => res.end('ok'))
  server.on('clientError', faultlineClientErrors)
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => server.close(() => resolve())))
  const answer = parseAnswer(await exchange((server.address() as AddressInfo).port, ['NOT HTTP AT ALL\r\n\r\n']))
  t.match(answer.body, { status: 400, code: 'BAD_REQUEST' })

  // Called directly, with a hostile error and no `this`, on a real socket.
  const received: Buffer[] = []
  const sockets = createNetServer(socket => {
    Reflect.apply(faultlineClientErrors, null, [new Proxy(new Error('x'), {}), socket])
  })
  await new Promise<void>(resolve => sockets.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => sockets.close(() => resolve())))
  const client: Socket = netConnect((sockets.address() as AddressInfo).port, '127.0.0.1')
  client.on('data', (chunk: Buffer) => received.push(chunk))
  client.on('error', () => {})
  await waitFor(client, 'close')
  const direct = parseAnswer(Buffer.concat(received).toString('latin1'))
  t.equal(direct.status, 'HTTP/1.1 500 Internal Server Error')
  t.match(direct.body, { status: 500, code: 'INTERNAL', detail: 'Internal Server Error' }, 'a hostile value: the generic problem')
})

t.test('toClientErrorFault maps Node\'s client errors as Node answers them', async t => {
  const coded = (code: string): Error => Object.assign(new Error(`Parse Error: ${code}`), { code })
  const cases: Array<[unknown, string, number]> = [
    [coded('HPE_HEADER_OVERFLOW'), 'REQUEST_HEADER_FIELDS_TOO_LARGE', 431],
    [coded('HPE_CHUNK_EXTENSIONS_OVERFLOW'), 'PAYLOAD_TOO_LARGE', 413],
    [coded('ERR_HTTP_REQUEST_TIMEOUT'), 'REQUEST_TIMEOUT', 408],
    [coded('HPE_INVALID_METHOD'), 'BAD_REQUEST', 400],
    [coded('ECONNRESET'), 'CLIENT_CLOSED', 499],
    [new Error('no code'), 'INTERNAL', 500],
    [null, 'INTERNAL', 500],
    [Object.defineProperty({}, 'code', { get () { throw new Error('no') } }), 'INTERNAL', 500]
  ]
  for (const [value, code, status] of cases) {
    const fault = toClientErrorFault(value)
    t.match(fault, { code, status }, code)
    if (status !== 500 && value instanceof Error) t.equal(fault.cause, value, `${code}: the error is the cause`)
  }
  t.equal(toClientErrorFault(coded('HPE_HEADER_OVERFLOW')).stack!.split('\n').length, 1, 'no frames of faultline\'s own captured')
})
