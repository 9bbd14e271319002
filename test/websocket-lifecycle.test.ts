import t from 'tap'
import { connect as netConnect, type Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { InternalError } from '../lib/fault.js'
import { guardProcess } from './helpers/guard.js'
import { connect, waitFor, WAIT_MS, type Client } from './helpers/ws-client.js'
import { wsApp } from './helpers/ws-app.js'

guardProcess(t)

const frame = (text: string): { type: string, error: Record<string, unknown> } => JSON.parse(text)

// The client's TCP socket, to stop reading (a peer that hangs) or to write raw frames.
function rawSocket (client: Client): Socket {
  return (client.ws as unknown as { _socket: Socket })._socket
}

t.test('a client that drops the connection is a client abort, at debug', async t => {
  let serverClosed!: Promise<unknown[]>
  const { url, reportOf, logs, errorLines } = await wsApp(t, app => {
    app.get('/hold', { websocket: true }, socket => { serverClosed = waitFor(socket, 'close') })
  })
  const client = await connect(url + '/hold')
  client.ws.terminate()
  const [code] = await serverClosed
  t.equal(code, 1006)
  t.match(await reportOf('CLIENT_CLOSED'), { transport: 'websocket', phase: 'mid-stream' })
  t.match(logs.faults(), [{ level: 20, fault: { code: 'CLIENT_CLOSED', status: 499 } }])
  t.equal(logs.faults().length, 1, 'logged once')
  t.same(errorLines(), [])
})

t.test('a clean close by the client is not a fault', async t => {
  let serverClosed!: Promise<unknown[]>
  const { url, reported } = await wsApp(t, app => {
    app.get('/hold', { websocket: true }, socket => { serverClosed = waitFor(socket, 'close') })
  })
  const client = await connect(url + '/hold')
  client.ws.close(1000, 'bye')
  const [code] = await serverClosed
  t.equal(code, 1000)
  t.same(reported, [])
})

t.test('heartbeat: a peer that stops answering pings is terminated, as a client abort', async t => {
  const { url, reportOf, errorLines } = await wsApp(t, app => {
    app.get('/hold', { websocket: true }, () => {})
  }, { heartbeat: { interval: 30, maxMissed: 2 } })
  const client = await connect(url + '/hold', { autoPong: false })
  const closed = await client.closed
  t.equal(closed.code, 1006, 'terminated, no close frame')
  const r = await reportOf('CLIENT_CLOSED')
  t.match(r, { transport: 'websocket', phase: 'mid-stream' })
  t.match(r.fault.message, /did not answer 2 ping/)
  t.equal(errorLines().length, 0)
})

t.test('heartbeat: a peer that answers stays connected', async t => {
  const { url, reported } = await wsApp(t, app => {
    app.get('/hold', { websocket: true }, () => {})
  }, { heartbeat: 20 })
  const client = await connect(url + '/hold')
  for (let i = 0; i < 4; i++) await waitFor(client.ws, 'ping')
  t.equal(client.ws.readyState, client.ws.OPEN, 'still open after four pings')
  client.ws.close(1000)
  await client.closed
  t.same(reported, [])
})

t.test('idleTimeout: no message for that long closes as REQUEST_TIMEOUT (4408)', async t => {
  const { url, reportOf } = await wsApp(t, app => {
    app.get('/echo', { websocket: true }, socket => {
      socket.on('message', data => socket.send(String(data)))
    })
  }, { idleTimeout: 100 })
  const client = await connect(url + '/echo')
  client.ws.send('hi')
  t.equal(await client.next(), 'hi')
  t.same(await client.closed, { code: 4408, reason: 'REQUEST_TIMEOUT' })
  t.match(frame(client.messages[1]!).error, { status: 408, code: 'REQUEST_TIMEOUT' })
  t.match(await reportOf('REQUEST_TIMEOUT'), { phase: 'mid-stream' })
})

t.test('fastify.close(): open sockets get 1001 and a reason, then the server closes', async t => {
  const { app, url, reported } = await wsApp(t, app => {
    app.get('/hold', { websocket: true }, () => {})
  })
  const a = await connect(url + '/hold')
  const b = await connect(url + '/hold')
  await app.close()
  t.same(await a.closed, { code: 1001, reason: 'SERVER_SHUTDOWN' })
  t.same(await b.closed, { code: 1001, reason: 'SERVER_SHUTDOWN' })
  t.equal(app.websocketServer.clients.size, 0, 'no socket left open')
  t.equal(app.server.listening, false)
  t.equal(app.server.listenerCount('upgrade'), 0, 'upgrade listener removed')
  t.same(reported, [], 'shutdown is not a fault')
})

t.test('fastify.close(): a socket whose upgrade finishes during the close gets 1001 too, its handler never runs', async t => {
  let release!: () => void
  const gate = new Promise<void>(resolve => { release = resolve })
  let entered!: () => void
  const inHook = new Promise<void>(resolve => { entered = resolve })
  let closeStarted!: () => void
  const shutdownStarted = new Promise<void>(resolve => { closeStarted = resolve })
  let handlerRan = false
  const { app, url } = await wsApp(t, app => {
    app.get('/hold', { websocket: true }, socket => {
      // Observe the server sending 1001 to this peer: the shutdown is under way.
      const close = socket.close
      socket.close = function (...args: Parameters<typeof close>) { closeStarted(); close.apply(this, args) }
    })
    app.get('/slow', {
      websocket: true,
      preValidation: async () => { entered(); await gate }
    }, () => { handlerRan = true })
  })
  // A peer that does not read keeps the shutdown waiting for its close...
  const stuck = await connect(url + '/hold')
  rawSocket(stuck).pause()
  // ...while another upgrade is still in its hooks.
  const pending = connect(url + '/slow')
  await inHook
  const closing = app.close()
  await shutdownStarted
  release()
  const late = await pending
  t.same(await late.closed, { code: 1001, reason: 'SERVER_SHUTDOWN' })
  t.equal(handlerRan, false)
  rawSocket(stuck).resume()
  t.same(await stuck.closed, { code: 1001, reason: 'SERVER_SHUTDOWN' })
  await closing
})

t.test('fastify.close() with clientTracking off still closes every socket', async t => {
  const { app, url } = await wsApp(t, app => {
    app.get('/hold', { websocket: true }, () => {})
  }, { websocket: { options: { clientTracking: false } } })
  const a = await connect(url + '/hold')
  await app.close()
  t.same(await a.closed, { code: 1001, reason: 'SERVER_SHUTDOWN' })
})

t.test('fastify.close(): peers that do not answer the close are terminated after closeTimeout', async t => {
  const { app, url, reportOf } = await wsApp(t, app => {
    app.get('/hold', { websocket: true }, socket => {
      socket.on('message', () => { throw new InternalError('closing this one') })
    })
  }, { closeTimeout: 100 })
  const idle = await connect(url + '/hold')
  const closing = await connect(url + '/hold')
  closing.ws.send('fail')
  rawSocket(closing).pause()
  rawSocket(idle).pause()
  await reportOf('INTERNAL') // the server has sent 1011 and waits for the peer's close frame
  await app.close()
  t.equal(app.websocketServer.clients.size, 0, 'both terminated')
  t.equal(app.server.listening, false)
  idle.ws.terminate()
  closing.ws.terminate()
})

t.test('protocol errors: the protocol\'s close code, reported once, the process unaffected', async t => {
  const { url, reported, errorLines, logs } = await wsApp(t, app => {
    app.get('/echo', { websocket: true }, socket => {
      socket.on('message', data => socket.send(String(data)))
    })
  }, { websocket: { options: { maxPayload: 16 } } })

  const big = await connect(url + '/echo')
  big.ws.send('x'.repeat(100))
  t.equal((await big.closed).code, 1009, 'message too big')

  const utf8 = await connect(url + '/echo')
  utf8.ws.send(Buffer.from([0x61, 0xff, 0xfe]), { binary: false })
  t.equal((await utf8.closed).code, 1007, 'invalid UTF-8 in a text frame')

  const frameErr = await connect(url + '/echo')
  rawSocket(frameErr).write(Buffer.from([0x83, 0x80, 0, 0, 0, 0])) // reserved opcode 3
  t.equal((await frameErr.closed).code, 1002, 'invalid frame')

  t.same(reported.map(r => [r.code, r.transport, r.phase]), [
    ['PAYLOAD_TOO_LARGE', 'websocket', 'mid-stream'],
    ['BAD_REQUEST', 'websocket', 'mid-stream'],
    ['BAD_REQUEST', 'websocket', 'mid-stream']
  ], 'each reported once')
  t.equal(logs.faults().length, 3, 'each logged once')
  t.same(errorLines(), [], 'nothing at error level: the peer broke the protocol')
})

t.test('a protocol error on a socket no faultline handler owns is reported, the socket terminated', async t => {
  const { app, reportOf } = await wsApp(t, app => {
    app.get('/http-only', async () => 'not a websocket route')
  })
  const { port } = app.server.address() as AddressInfo
  const sock = netConnect(port, '127.0.0.1')
  sock.on('error', () => {})
  sock.resume() // read (and drop) what the server sends, so its end is seen
  await waitFor(sock, 'connect')
  const request = 'GET /http-only HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`
  // The upgrade and a frame with a reserved opcode, in one write.
  sock.write(Buffer.concat([Buffer.from(request), Buffer.from([0x83, 0x80, 0, 0, 0, 0])]))
  t.match(await reportOf('BAD_REQUEST'), { transport: 'websocket', phase: 'mid-stream' })
  await waitFor(sock, 'close')
})

t.test('fastify.close() does not wait for a socket no faultline handler owns', async t => {
  const { app } = await wsApp(t, app => {
    app.get('/http-only', async () => 'not a websocket route')
  })
  const { port } = app.server.address() as AddressInfo
  const sock = netConnect(port, '127.0.0.1')
  sock.on('error', () => {})
  await waitFor(sock, 'connect')
  sock.write('GET /http-only HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`)
  // The 101, then @fastify/websocket's close frame, which this peer never answers.
  const [first] = await waitFor<[Buffer]>(sock, 'data')
  t.match(String(first), /^HTTP\/1.1 101/)
  t.equal(app.websocketServer.clients.size, 1)
  // ws would wait 30 s for the close handshake; the bound here is well below that.
  await Promise.race([
    app.close(),
    new Promise((_resolve, reject) => setTimeout(() => reject(new Error('fastify.close() waited for the socket')), WAIT_MS))
  ])
  t.equal(app.websocketServer.clients.size, 0)
  sock.destroy()
})

t.test('websocket.options.server: upgrades on another HTTP server, closed and detached on fastify.close()', async t => {
  const other = createServer()
  await new Promise<void>(resolve => other.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => other.close(() => resolve())))
  const { app } = await wsApp(t, app => {
    app.get('/fail', { websocket: true }, () => { throw new InternalError() })
    app.get('/hold', { websocket: true }, () => {})
  }, { websocket: { options: { server: other } } })
  const url = `ws://127.0.0.1:${(other.address() as AddressInfo).port}`
  t.same(await (await connect(url + '/fail')).closed, { code: 1011, reason: 'INTERNAL' })
  const held = await connect(url + '/hold')
  t.equal(other.listenerCount('upgrade'), 1)
  await app.close()
  t.same(await held.closed, { code: 1001, reason: 'SERVER_SHUTDOWN' })
  t.equal(other.listenerCount('upgrade'), 0, 'its upgrade listener is removed')
})
