// Clients leaving at once across every transport of one server (issue 21,
// item 8): plain HTTP (a handler still waiting), streamSafe raw, streamSafe
// ndjson, SSE and WebSocket, a fifth each, all open at the same time, then
// all gone in the same instant (half FIN, half RST). The clients
// live in a forked child (test/helpers/abort-clients.ts) so their file
// descriptors do not count against this process's limit. Afterwards: every
// producer stopped, every streamed abort reported once at debug as a client
// abort (499), nothing at warn or above, no warning (MaxListenersExceeded),
// sockets, timers and listeners back to the baseline, the server still
// serving. FAULTLINE_CHAOS_MIXED sets the total (rounded to a multiple of 5,
// at least 500). The default is 2,500, to stay near 30 s on 2 busy cores
// (opening the connections is most of it); 10,000 passes too, in about 70 s
// there: FAULTLINE_CHAOS_MIXED=10000 npx tap test/chaos-mixed.test.ts.
import t from 'tap'
import { fork } from 'node:child_process'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import { faultlineHttp, faultlineSse, faultlineStream, faultlineWebsocket, type Fault, type FaultContext } from '../index.js'
import { guardProcess } from './helpers/guard.js'
import { captureLogs } from './helpers/logs.js'
import { aboveBaseline, resources, settle } from './helpers/chaos-client.js'
import { foreignStreamLogs } from './helpers/stream-app.js'
import { plainNodeEnv } from './helpers/child-env.js'

guardProcess(t)

const TRANSPORTS = ['/http', '/raw', '/ndjson', '/sse', '/ws'] as const
type Path = typeof TRANSPORTS[number]
const TOTAL = Math.max(500, Math.round(Number(process.env.FAULTLINE_CHAOS_MIXED ?? 2500) / 5) * 5 || 2500)
const PER = TOTAL / TRANSPORTS.length

t.test(`${TOTAL.toLocaleString('en')} concurrent aborts across HTTP, raw, ndjson, SSE and WebSocket`, async t => {
  const logs = captureLogs()
  const reports: Array<{ fault: Fault, context: FaultContext }> = []
  const warnings: string[] = []
  const onWarning = (warning: Error): void => { warnings.push(`${warning.name}: ${warning.message}`) }
  process.on('warning', onWarning)
  t.teardown(() => { process.off('warning', onWarning) })

  const app = Fastify({ logger: { level: 'debug', stream: logs.stream }, forceCloseConnections: true })
  await app.register(faultlineHttp, { onFault: (fault, context) => { reports.push({ fault, context }) } })
  await app.register(faultlineStream)
  await app.register(faultlineSse, { sse: { heartbeatInterval: 1000 } })
  // No heartbeat: a raw client never answers a ping, and would be cut for it before it leaves.
  await app.register(faultlineWebsocket)
  const counts = Object.fromEntries(TRANSPORTS.map(path => [path, { started: 0, stopped: 0 }])) as Record<Path, { started: number, stopped: number }>

  app.get('/http', async (_request, reply) => {
    counts['/http'].started++
    try {
      // A slow handler: it is still waiting when its client leaves.
      await once(reply.raw, 'close')
    } finally {
      counts['/http'].stopped++
    }
    return { late: true }
  })
  async function * producer<T> (path: Path, signal: AbortSignal, first: T): AsyncGenerator<T> {
    counts[path].started++
    try {
      yield first
      if (!signal.aborted) await once(signal, 'abort')
    } finally {
      counts[path].stopped++
    }
  }
  app.get('/raw', async (_request, reply) => reply.streamSafe(signal => producer('/raw', signal, 'first\n')))
  app.get('/ndjson', async (_request, reply) => reply.streamSafe(signal => producer('/ndjson', signal, { n: 1 }), { framing: 'ndjson' }))
  app.get('/sse', { sse: true }, async (_request, reply) => {
    const stop = new AbortController()
    reply.sse.onClose(() => stop.abort())
    await reply.sse.send(producer('/sse', stop.signal, { data: 'first' }))
  })
  app.get('/ws', { websocket: true }, socket => {
    counts['/ws'].started++
    socket.on('close', () => { counts['/ws'].stopped++ })
    socket.send('hello')
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const { port } = app.server.address() as AddressInfo
  const serverListeners = (): string => ['connection', 'request', 'upgrade', 'clientError'].map(e => `${e}:${app.server.listenerCount(e)}`).join(' ')
  const listenersBefore = serverListeners()
  const baseline = resources()

  const child = fork(new URL('./helpers/abort-clients.ts', import.meta.url), {
    execArgv: ['--import', 'tsx'],
    env: plainNodeEnv(),
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill() })
  const messages: Array<Record<string, unknown>> = []
  child.on('message', (message: Record<string, unknown>) => messages.push(message))
  const next = async (what: string, ms: number): Promise<Record<string, unknown>> => {
    const seen = messages.length
    await settle(() => messages.length > seen ? '' : `waiting for ${what}`, ms)
    const message = messages[seen]!
    if (typeof message.error === 'string') throw new Error(`clients: ${message.error}`)
    return message
  }

  const started = Date.now()
  const plan = Array.from({ length: TOTAL }, (_, i) => TRANSPORTS[i % TRANSPORTS.length]!)
  child.send({ port, plan })
  const ready = await next('every client open', 60_000)
  t.equal(ready.ready, TOTAL, 'every client connected and got its first bytes')
  // The plain HTTP handlers have no first byte to show: wait until each is running.
  await settle(() => TRANSPORTS.every(path => counts[path].started === PER) ? '' : `started ${JSON.stringify(counts)}`)
  const opened = Date.now()
  t.comment(`${TOTAL} open in ${opened - started} ms (the clients' own connecting: ${String(ready.ms)} ms)`)
  t.same(TRANSPORTS.map(path => counts[path].stopped), [0, 0, 0, 0, 0], 'nothing stopped before the clients left')

  child.send('leave')
  const left = await next('the clients to leave', 20_000)
  t.equal(left.left, TOTAL, 'every client left at once')
  await settle(() => {
    const wrong: string[] = []
    for (const path of TRANSPORTS) if (counts[path].stopped !== PER) wrong.push(`${path} stopped ${counts[path].stopped}/${PER}`)
    if (app.faultline.sse.open !== 0) wrong.push(`sse open ${app.faultline.sse.open}`)
    if (app.websocketServer.clients.size !== 0) wrong.push(`ws open ${app.websocketServer.clients.size}`)
    const above = aboveBaseline(baseline)
    if (above !== '') wrong.push(above)
    return wrong.join('; ')
  }, 20_000)
  t.comment(`${TOTAL} aborted and settled in ${Date.now() - opened} ms (total ${Date.now() - started} ms)`)
  t.pass('every producer stopped, no stream or socket left open, resources back to the baseline')

  // Every streamed abort reported once, as a client abort, at debug.
  const byTransport = new Map<string, number>()
  for (const { fault, context } of reports) {
    const key = `${context.transport} ${fault.status}`
    byTransport.set(key, (byTransport.get(key) ?? 0) + 1)
  }
  t.same(Object.fromEntries(byTransport), { 'stream 499': 2 * PER, 'sse 499': PER, 'websocket 499': PER }, 'one client abort per streamed connection, nothing else')
  const faultLines = logs.faults()
  t.equal(faultLines.length, reports.length, 'each logged once')
  t.same([...new Set(faultLines.map(l => l.level))], [20], 'all at debug')
  t.same(logs.lines.filter(l => l.level >= 40).map(l => l.msg), [], 'nothing logged at warn or above')
  t.same(foreignStreamLogs(logs.lines), [], 'Fastify logged nothing of its own about the streams')
  t.same(warnings, [], 'no process warning (MaxListenersExceeded and the like)')
  t.equal(serverListeners(), listenersBefore, 'no server listener left behind')

  const res = await fetch(`http://127.0.0.1:${port}/ndjson`, { signal: AbortSignal.timeout(10_000) }).catch((err: unknown) => err)
  t.ok(res instanceof Response && res.status === 200, 'the server still serves')
  if (res instanceof Response) await res.body?.cancel()
})
