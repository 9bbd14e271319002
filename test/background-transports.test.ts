import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import WebSocket from 'ws'
import { faultlineHttp, faultlineBackground, type Fault } from '../index.js'
import { faultlineWebsocket } from '../plugins/websocket.js'
import { faultlineSse } from '../plugins/sse.js'
import type { FaultContext } from '../lib/report.js'
import { guardProcess } from './helpers/guard.js'
import { within } from './helpers/within.js'
import { captureLogs } from './helpers/logs.js'

guardProcess(t)

interface Reported { fault: Fault, ctx: FaultContext<FastifyRequest> }

async function build (t: Test): Promise<{ app: FastifyInstance, reports: Reported[], logs: ReturnType<typeof captureLogs> }> {
  const logs = captureLogs()
  const reports: Reported[] = []
  const app = Fastify({ logger: { level: 'debug', stream: logs.stream }, forceCloseConnections: true })
  await app.register(faultlineHttp, { onFault: (fault, ctx) => { reports.push({ fault, ctx }) } })
  await app.register(faultlineBackground)
  t.teardown(() => app.close())
  return { app, reports, logs }
}

async function listen (app: FastifyInstance): Promise<number> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  return typeof address === 'object' && address !== null ? address.port : 0
}

t.test('a WebSocket route: tasks from a hook, the handler and a message listener run after the upgrade; failures are reported with the request', async t => {
  const { app, reports, logs } = await build(t)
  await app.register(faultlineWebsocket)
  const ran: string[] = []
  let wsRequestId = ''
  let fromMessage!: () => void
  const messageTaskRan = new Promise<void>(resolve => { fromMessage = resolve })
  app.get('/ws', {
    websocket: true,
    preHandler (request, reply, done) {
      // Before the upgrade: the upgrade response is this request's response.
      reply.background(() => { ran.push('from hook') })
      done()
    }
  }, (socket, request) => {
    wsRequestId = request.id
    app.faultline.background.schedule(async function afterUpgrade () { throw new Error('ws task failed') }, { request })
    socket.on('message', () => {
      app.faultline.background.schedule(() => { ran.push('from message'); fromMessage() }, { request, name: 'on-message' })
      socket.send('scheduled')
    })
    socket.send('ready')
  })
  const port = await listen(app)
  const client = new WebSocket(`ws://127.0.0.1:${port}/ws`)
  const messages: string[] = []
  const gotScheduled = new Promise<void>((resolve, reject) => {
    client.on('message', data => {
      messages.push(String(data))
      if (String(data) === 'ready') client.send('go')
      if (String(data) === 'scheduled') resolve()
    })
    client.on('error', reject)
  })
  await within(t, gotScheduled, 'the message round trip')
  await within(t, messageTaskRan, 'the message task')
  await within(t, app.faultline.background.idle(), 'idle')
  t.equal(client.readyState, WebSocket.OPEN, 'a failing task does not touch the socket')
  t.same(messages, ['ready', 'scheduled'])
  t.same(ran, ['from hook', 'from message'])
  t.same(reports.map(r => [r.ctx.transport, r.ctx.phase, r.ctx.task, r.ctx.request?.id, r.fault.code]), [
    ['background', 'after-response', 'afterUpgrade', wsRequestId, 'INTERNAL']
  ])
  t.equal(logs.faults().filter(l => l.transport === 'background').length, 1, 'logged once')
  const closed = new Promise(resolve => client.once('close', resolve))
  client.close()
  await within(t, closed, 'the socket to close')
})

t.test('an SSE route: tasks run once the event stream has ended; failures are reported with the request', async t => {
  const { app, reports } = await build(t)
  await app.register(faultlineSse)
  const finishedAtStart: boolean[] = []
  let sseRequestId = ''
  app.get('/events', { sse: true }, async (request, reply) => {
    sseRequestId = request.id
    reply.background(function afterStream () {
      finishedAtStart.push(reply.raw.writableFinished)
      throw new Error('sse task failed')
    })
    await reply.sse.send({ data: 'one' })
    await reply.sse.send({ data: 'two' })
  })
  const port = await listen(app)
  const res = await within(t, fetch(`http://127.0.0.1:${port}/events`, { headers: { accept: 'text/event-stream' } }), 'the response')
  t.equal(res.status, 200)
  const text = await within(t, res.text(), 'the event stream')
  t.match(text, /data: "one"\n\ndata: "two"\n\n/)
  await within(t, app.faultline.background.idle(), 'idle')
  t.same(finishedAtStart, [true], 'the stream had ended when the task started')
  t.same(reports.map(r => [r.ctx.transport, r.ctx.phase, r.ctx.task, r.ctx.request?.id, r.fault.code]), [
    ['background', 'after-response', 'afterStream', sseRequestId, 'INTERNAL']
  ])
})
