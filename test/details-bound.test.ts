// maxDetailsBytes on every transport that renders details: a problem+json
// body, an ndjson error record, an SSE error event and a WebSocket error
// frame all come from the one renderer, so all of them keep small details
// and drop large ones whole with the same `detailsOmitted` marker; the drop
// is logged once per fault code.
import t, { type Test } from 'tap'
import Fastify from 'fastify'
import type { AddressInfo } from 'node:net'
import { faultlineHttp, faultlineStream, faultlineSse, faultlineWebsocket, faultFromProblem, BadRequestError, ConflictError } from '../index.js'
import { captureLogs } from './helpers/logs.js'
import { connect } from './helpers/ws-client.js'
import { guardProcess } from './helpers/guard.js'

guardProcess(t)

const LIMIT = 200

/** `n` members of 20 bytes or so each. */
function details (n: number): Record<string, string> {
  return Object.fromEntries(Array.from({ length: n }, (_, i) => [`field${i}`, `value ${i}`]))
}

async function * failing (n: number): AsyncGenerator<unknown> {
  yield { ok: 1 }
  throw new BadRequestError('bad row', { details: details(n) })
}

type SseReply = { sse: { send: (source: unknown) => Promise<void> } }

async function buildApp (t: Test): Promise<{ base: string, logs: ReturnType<typeof captureLogs> }> {
  const logs = captureLogs()
  const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
  await app.register(faultlineHttp, { maxDetailsBytes: LIMIT })
  await app.register(faultlineStream)
  await app.register(faultlineSse)
  await app.register(faultlineWebsocket)
  app.get('/http/:n', async (request) => {
    throw new BadRequestError('bad', { details: details(Number((request.params as { n: string }).n)) })
  })
  app.get('/conflict/:n', async (request) => {
    throw new ConflictError('taken', { details: details(Number((request.params as { n: string }).n)) })
  })
  app.get('/ndjson/:n', (request, reply) => reply.streamSafe(failing(Number((request.params as { n: string }).n)), { framing: 'ndjson' }))
  app.get('/sse/:n', { sse: true }, async (request, reply) => {
    await (reply as unknown as SseReply).sse.send({ data: 'first' })
    throw new BadRequestError('bad event', { details: details(Number((request.params as { n: string }).n)) })
  })
  app.get('/ws/:n', { websocket: true }, (socket, request) => {
    socket.on('message', () => { throw new BadRequestError('bad message', { details: details(Number((request.params as { n: string }).n)) }) })
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return { base: `127.0.0.1:${(app.server.address() as AddressInfo).port}`, logs }
}

/** The problem each transport carried for a fault with `n` details members. */
async function problems (base: string, n: number): Promise<Record<string, Record<string, unknown>>> {
  const http = await (await fetch(`http://${base}/http/${n}`)).json() as Record<string, unknown>
  const lines = (await (await fetch(`http://${base}/ndjson/${n}`)).text()).trim().split('\n').map(l => JSON.parse(l) as { type: string, error?: Record<string, unknown> })
  const ndjson = lines.find(l => l.type === 'error')!.error!
  const events = await (await fetch(`http://${base}/sse/${n}`, { headers: { accept: 'text/event-stream' } })).text()
  const sse = JSON.parse(/event: error\n(?:id: .*\n)?data: (.*)\n/.exec(events)![1]!) as Record<string, unknown>
  const client = await connect(`ws://${base}/ws/${n}`)
  client.ws.send('hi')
  const frame = JSON.parse(await client.next()) as { type: string, error: Record<string, unknown> }
  client.ws.close()
  await client.closed
  return { http, ndjson, sse, websocket: frame.error }
}

t.test('details within maxDetailsBytes reach the client on every transport', async t => {
  const { base, logs } = await buildApp(t)
  for (const [transport, problem] of Object.entries(await problems(base, 3))) {
    t.match(problem, { code: 'BAD_REQUEST', field0: 'value 0', field2: 'value 2' }, transport)
    t.equal(problem.detailsOmitted, undefined, transport)
  }
  t.same(logs.lines.filter(l => /maxDetailsBytes/.test(String(l.msg))), [], 'nothing to warn about')
})

t.test('larger details are dropped whole, with a marker, on every transport; warned once per code', async t => {
  const { base, logs } = await buildApp(t)
  for (const [transport, problem] of Object.entries(await problems(base, 50))) {
    t.match(problem, { code: 'BAD_REQUEST', status: 400, detailsOmitted: { reason: 'too-large', limit: LIMIT } }, transport)
    t.equal(Object.keys(problem).filter(k => k.startsWith('field')).length, 0, `${transport}: no member of the dropped details`)
  }
  const conflict = await (await fetch(`http://${base}/conflict/50`)).json() as Record<string, unknown>
  t.match(conflict, { code: 'CONFLICT', detailsOmitted: { reason: 'too-large', limit: LIMIT } })
  await fetch(`http://${base}/conflict/60`)
  const warnings = logs.lines.filter(l => /maxDetailsBytes/.test(String(l.msg)))
  t.same(warnings.map(w => [w.level, w.code, w.maxDetailsBytes]), [[40, 'BAD_REQUEST', LIMIT], [40, 'CONFLICT', LIMIT]], 'one warning per code, however many faults')
  t.match(warnings[0]!.msg, /faultline-http: the details of a BAD_REQUEST fault exceed maxDetailsBytes \(200 bytes\)/)
})

t.test('the default keeps 16 KiB of details', async t => {
  const app = Fastify()
  await app.register(faultlineHttp)
  app.get('/fits', async () => { throw new BadRequestError('x', { details: { blob: 'x'.repeat(16 * 1024 - 11) } }) })
  app.get('/over', async () => { throw new BadRequestError('x', { details: { blob: 'x'.repeat(16 * 1024 - 10) } }) })
  t.equal((await app.inject('/fits')).json().blob.length, 16 * 1024 - 11, '{"blob":"…"} of exactly 16384 bytes is kept')
  t.same((await app.inject('/over')).json().detailsOmitted, { reason: 'too-large', limit: 16 * 1024 })
  t.equal(app.faultline.toProblem(new BadRequestError('x', { details: { blob: 'x'.repeat(16 * 1024) } })).detailsOmitted !== undefined, true, 'toProblem applies it too')
  await app.close()
})

t.test('maxDetailsBytes is validated at register time', async t => {
  for (const bad of [0, -1, 1.5, Number.NaN, Infinity, '16384', null]) {
    const app = Fastify()
    app.register(faultlineHttp, { maxDetailsBytes: bad as number })
    const err = await app.ready().then(() => undefined, (e: unknown) => e as Error & { code?: string })
    t.equal(err?.code, 'FST_FAULTLINE_INVALID_OPTION', `${String(bad)} is refused`)
    t.match(err?.message, /^faultline-http: invalid option maxDetailsBytes: must be a positive integer \(bytes of JSON, e\.g\. 16384\)/)
    await app.close()
  }
})

t.test('warnings are bounded too: at most 1,000 codes are remembered', async t => {
  const logs = captureLogs()
  const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
  await app.register(faultlineHttp, { maxDetailsBytes: 50 })
  // A fault rebuilt from a remote problem keeps that problem's code: codes are open-ended here.
  app.get('/relay/:i', async (request) => {
    throw faultFromProblem({ code: `REMOTE_${(request.params as { i: string }).i}`, status: 400, blob: 'x'.repeat(100) })
  })
  let dropped = 0
  for (let i = 0; i < 1005; i++) if ((await app.inject(`/relay/${i}`)).json().detailsOmitted?.limit === 50) dropped++
  t.equal(dropped, 1005, 'every one dropped')
  t.equal(logs.lines.filter(l => /maxDetailsBytes/.test(String(l.msg))).length, 1000)
  await app.close()
})
