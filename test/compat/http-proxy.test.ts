import t, { type Test } from 'tap'
import net from 'node:net'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import proxy from '@fastify/http-proxy'
import { BadGatewayError, GatewayTimeoutError } from '../../index.js'
import { guardProcess } from '../helpers/guard.js'
import { compatApp, isProblem } from '../helpers/compat-app.js'
import { readBody } from '../helpers/stream-app.js'

guardProcess(t)

/** An upstream on a loopback port, closed at teardown. */
async function upstream (t: Test, handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler)
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

/** A loopback port with nothing listening on it. */
async function closedPort (): Promise<number> {
  const server = net.createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise(resolve => server.close(resolve))
  return port
}

t.test('@fastify/http-proxy: an upstream that refuses the connection is a 502 problem', async t => {
  const port = await closedPort()
  const { url, reports } = await compatApp(t, async app => {
    await app.register(proxy, { upstream: `http://127.0.0.1:${port}`, prefix: '/api' })
  }, { listen: true })

  const res = await fetch(`${url}/api/items`)
  t.equal(res.status, 502)
  t.ok(isProblem(res.headers.get('content-type')))
  const body = await res.json()
  t.match(body, { status: 502, code: 'BAD_GATEWAY', title: 'Bad Gateway', detail: 'Bad Gateway', instance: '/api/items' })
  t.notMatch(JSON.stringify(body), /ECONNREFUSED|127\.0\.0\.1/, 'the upstream address stays in the log')
  t.equal(reports.length, 1)
  const fault = reports[0]!.fault
  t.ok(fault instanceof BadGatewayError)
  t.equal(fault.retryable, true)
  t.match(fault.message, /ECONNREFUSED/)
  t.equal((fault.cause as { code: string }).code, 'FST_REPLY_FROM_INTERNAL_SERVER_ERROR', 'reply-from\'s error is the cause')
  t.equal(((fault.cause as { cause: { code: string } }).cause).code, 'ECONNREFUSED', 'and the upstream\'s under it')
})

t.test('@fastify/http-proxy: an upstream that resets before its headers is a 502, not a client abort', async t => {
  const target = await upstream(t, (req) => { req.socket.destroy() })
  const { url, reports } = await compatApp(t, async app => {
    await app.register(proxy, { upstream: target, prefix: '/api' })
  }, { listen: true })

  const res = await fetch(`${url}/api/items`)
  t.equal(res.status, 502)
  t.ok(isProblem(res.headers.get('content-type')))
  t.equal((await res.json()).code, 'BAD_GATEWAY')
  t.equal(reports.length, 1)
  t.ok(reports[0]!.fault instanceof BadGatewayError)
  t.equal(reports[0]!.context.phase, 'before-response')
})

t.test('@fastify/http-proxy: an upstream that answers too late is a 504 problem', async t => {
  const target = await upstream(t, (req, res) => { setTimeout(() => res.end('late'), 2000).unref() })
  const { url, reports } = await compatApp(t, async app => {
    await app.register(proxy, { upstream: target, prefix: '/api', undici: { headersTimeout: 100 } })
  }, { listen: true })

  const res = await fetch(`${url}/api/slow`)
  t.equal(res.status, 504)
  t.ok(isProblem(res.headers.get('content-type')))
  t.match(await res.json(), { code: 'GATEWAY_TIMEOUT', title: 'Gateway Timeout' })
  t.ok(reports[0]!.fault instanceof GatewayTimeoutError)
  t.equal(reports[0]!.fault.retryable, true)
})

t.test('@fastify/http-proxy: an upstream body cut mid-way is truncation, never a clean end', async t => {
  const target = await upstream(t, (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.write('x'.repeat(1000))
    setTimeout(() => res.socket?.destroy(), 50)
  })
  const { url } = await compatApp(t, async app => {
    await app.register(proxy, { upstream: target, prefix: '/api' })
  }, { listen: true })

  const res = await fetch(`${url}/api/export`)
  t.equal(res.status, 200, 'the upstream\'s headers went out')
  const { text, error } = await readBody(res)
  t.equal(text, 'x'.repeat(1000), 'every byte before the cut')
  t.ok(error instanceof TypeError, 'then the client sees an incomplete body (fetch: terminated)')
})

t.test('@fastify/http-proxy: the upstream\'s own error responses pass through untouched', async t => {
  const target = await upstream(t, (req, res) => {
    res.writeHead(404, { 'content-type': 'application/json' })
    res.end('{"upstream":"not here"}')
  })
  const { url, reports } = await compatApp(t, async app => {
    await app.register(proxy, { upstream: target, prefix: '/api' })
  }, { listen: true })
  const res = await fetch(`${url}/api/x`)
  t.equal(res.status, 404)
  t.equal(res.headers.get('content-type'), 'application/json')
  t.same(await res.json(), { upstream: 'not here' }, 'an answer is not a failure: nothing is rewritten')
  t.equal(reports.length, 0)
})
