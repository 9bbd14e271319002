// The WebSocket lifecycle (lib/websocket-session.ts) through a fake socket
// and a host that records reports. The plugin's own tests cover it end to
// end with real `ws` clients.
import t from 'tap'
import { EventEmitter } from 'node:events'
import { WebSocketSessions, type WsHost, type WsSettings } from '../lib/websocket-session.js'
import { toFault, toProblem, stringifyProblem, BadRequestError, ConflictError, InternalError } from '../index.js'
import type { Phase } from '../lib/report.js'
import { guardProcess } from './helpers/guard.js'

guardProcess(t)

type Handler = (event: { type: string }) => unknown

/** A `ws` stand-in: records sends and closes; `close()` completes at once unless `answers` is false. */
class FakeSocket extends EventEmitter {
  readyState = 1
  bufferedAmount = 0
  sent: string[] = []
  closes: Array<[number, string]> = []
  pings = 0
  terminated = false
  answers = true
  private readonly handlers = new Map<Handler, (...args: unknown[]) => unknown>()

  send (data: string): void { this.sent.push(data) }
  close (code: number, reason: string): void {
    this.closes.push([code, reason])
    this.readyState = 2
    if (this.answers) this.finish(code)
  }

  terminate (): void {
    this.terminated = true
    this.finish(1006)
  }

  ping (): void { this.pings++ }
  finish (code: number): void {
    if (this.readyState === 3) return
    this.readyState = 3
    this.emit('close', code)
  }

  addEventListener (type: string, handler: Handler): void {
    const listener = (): unknown => handler.call(this, { type })
    this.handlers.set(handler, listener)
    this.on(type, listener)
  }

  removeEventListener (type: string, handler: Handler): void {
    const listener = this.handlers.get(handler)
    if (listener !== undefined) this.off(type, listener)
  }
}

const BASE: WsSettings = { errorFrame: true, maxBufferedAmount: 1000, closeCodes: undefined, heartbeat: undefined, idleTimeout: undefined, closeTimeout: 1000 }

function harness (settings: Partial<WsSettings> = {}): { sessions: WebSocketSessions<string>, reports: Array<[string, Phase, string, boolean]> } {
  const reports: Array<[string, Phase, string, boolean]> = []
  const host: WsHost<string> = {
    report (err, phase, request, dedupe) { const fault = toFault(err); reports.push([fault.code, phase, request, dedupe]); return fault },
    problemJson (fault) { return stringifyProblem(toProblem(fault)) }
  }
  return { sessions: new WebSocketSessions(host, { ...BASE, ...settings }), reports }
}

const tick = async (): Promise<void> => await new Promise(resolve => setImmediate(resolve))

t.test('a handler that throws or rejects: error frame, then the mapped close', async t => {
  const { sessions, reports } = harness()
  const sync = new FakeSocket()
  sessions.run(sync, 'req-1', () => { throw new ConflictError('taken') })
  t.same(sync.closes, [[4409, 'CONFLICT']])
  t.match(JSON.parse(sync.sent[0]!), { type: 'error', error: { status: 409, code: 'CONFLICT', detail: 'taken' } })
  const async = new FakeSocket()
  sessions.run(async, 'req-2', async () => { throw new InternalError('db down') })
  await tick()
  t.same(async.closes, [[1011, 'INTERNAL']])
  t.same(reports, [['CONFLICT', 'mid-stream', 'req-1', true], ['INTERNAL', 'mid-stream', 'req-2', true]])
  t.equal(sessions.size, 0, 'closed sockets are forgotten')
})

t.test('listeners: a message fault below 500 keeps the socket open; others close it', async t => {
  const { sessions, reports } = harness({ closeCodes: { CONFLICT: 4999 } })
  const socket = new FakeSocket()
  sessions.run(socket, 'req', () => {
    socket.on('message', (data: string) => {
      if (data === 'bad') throw new BadRequestError('bad message')
      if (data === 'conflict') return Promise.reject(new ConflictError('again'))
    })
    socket.addEventListener('message', async () => {})
  })
  socket.emit('message', 'bad')
  socket.emit('message', 'conflict')
  await tick()
  t.equal(socket.sent.length, 2, 'two error frames')
  t.same(socket.closes, [], 'still open')
  t.same(reports.map(r => [r[0], r[1], r[3]]), [['BAD_REQUEST', 'message', false], ['CONFLICT', 'message', false]], 'each message its own occurrence')
  t.equal(socket.emit('nothing-listens'), false)

  const onmessage = new FakeSocket()
  sessions.run(onmessage, 'req', () => {
    const handler = async (): Promise<void> => { throw new InternalError('listener broke') }
    onmessage.addEventListener('message', handler)
    onmessage.addEventListener('message', handler)
    onmessage.addEventListener('ping', { handleEvent () {} } as unknown as Handler)
    onmessage.removeEventListener('ping', { handleEvent () {} } as unknown as Handler)
  })
  onmessage.emit('message', 'x')
  await tick()
  t.same(onmessage.closes, [[1011, 'INTERNAL']], 'a 5xx from a listener closes')
  onmessage.removeEventListener('message', () => {})
})

t.test('`error` keeps the transport\'s path; socketError fails owned sockets only', async t => {
  const { sessions, reports } = harness({ errorFrame: false })
  const socket = new FakeSocket()
  sessions.run(socket, 'req', () => {})
  let seen: unknown
  socket.on('error', err => { seen = err })
  socket.emit('error', new Error('native'))
  t.match(seen, { message: 'native' })
  t.equal(sessions.socketError(new Error('reset'), socket), true)
  t.same(socket.sent, [], 'no error frame when turned off')
  t.same(socket.closes, [[1011, 'INTERNAL']])
  t.equal(sessions.socketError(new Error('stray'), new FakeSocket()), false)
  // A socket that is not open any more: reported, nothing sent.
  const closing = new FakeSocket()
  sessions.run(closing, 'req', () => {})
  closing.readyState = 2
  sessions.socketError(new ConflictError('late'), closing)
  t.same(closing.closes, [])
  t.same(reports.map(r => r[0]), ['INTERNAL', 'CONFLICT'])
})

t.test('a peer that drops without a close frame is a client abort; one we closed is not', async t => {
  const { sessions, reports } = harness()
  const dropped = new FakeSocket()
  sessions.run(dropped, 'req', () => {})
  dropped.finish(1006)
  const closedByUs = new FakeSocket()
  sessions.run(closedByUs, 'req', () => { throw new ConflictError('x') })
  t.same(reports.map(r => r[0]), ['CLIENT_CLOSED', 'CONFLICT'])
})

t.test('heartbeat: pongs keep the peer; missed pings terminate it', async t => {
  const { sessions, reports } = harness({ heartbeat: { interval: 5, maxMissed: 2 } })
  const alive = new FakeSocket()
  alive.on('ping', () => {})
  sessions.run(alive, 'req', () => {})
  const silent = new FakeSocket()
  sessions.run(silent, 'req', () => {})
  // Failed by its handler, its close not answered yet: no more pings for it.
  const closing = new FakeSocket()
  closing.answers = false
  sessions.run(closing, 'req', () => { throw new ConflictError('x') })
  t.ok(sessions.beating, 'one timer, shared, runs while sockets are open')
  const pong = setInterval(() => alive.emit('pong'), 2)
  while (!silent.terminated) await new Promise(resolve => setTimeout(resolve, 5))
  clearInterval(pong)
  t.ok(silent.pings >= 2)
  t.notOk(alive.terminated)
  t.equal(closing.pings, 0, 'a socket we are closing is not pinged')
  closing.finish(1000)
  t.same(reports.map(r => r[0]), ['CONFLICT', 'CLIENT_CLOSED'])
  t.ok(sessions.beating, 'still running for the live socket')
  alive.finish(1000)
  t.notOk(sessions.beating, 'stopped with the last socket')
  const later = new FakeSocket()
  sessions.run(later, 'req', () => {})
  t.ok(sessions.beating, 'started again by the next socket')
  await sessions.shutdown()
  t.notOk(sessions.beating, 'stopped on shutdown')
})

t.test('idle timeout: no message for that long closes as 4408; messages re-arm it', async t => {
  const { sessions, reports } = harness({ idleTimeout: 30 })
  const chatty = new FakeSocket()
  sessions.run(chatty, 'req', () => { chatty.on('message', () => {}) })
  const quiet = new FakeSocket()
  sessions.run(quiet, 'req', () => {})
  const talk = setInterval(() => chatty.emit('message', 'hi'), 5)
  while (quiet.closes.length === 0) await new Promise(resolve => setTimeout(resolve, 5))
  clearInterval(talk)
  t.same(quiet.closes, [[4408, 'REQUEST_TIMEOUT']])
  t.same(chatty.closes, [])
  t.same(reports.map(r => r[0]), ['REQUEST_TIMEOUT'])
  chatty.finish(1000)
})

t.test('shutdown: 1001 to every socket, terminate those that do not answer, close late arrivals', async t => {
  const { sessions, reports } = harness({ closeTimeout: 20 })
  const polite = new FakeSocket()
  sessions.run(polite, 'req', () => {})
  const deaf = new FakeSocket()
  deaf.answers = false
  sessions.run(deaf, 'req', () => {})
  await sessions.shutdown()
  t.same(polite.closes, [[1001, 'SERVER_SHUTDOWN']])
  t.ok(deaf.terminated, 'terminated after closeTimeout')
  let ran = false
  const late = new FakeSocket()
  sessions.run(late, 'req', () => { ran = true })
  t.notOk(ran, 'a socket upgraded after shutdown began is not served')
  t.same(late.closes, [[1001, 'SERVER_SHUTDOWN']])
  t.same(reports, [], 'a shutdown is not a fault of the peers')
})

t.test('a peer that does not read: past maxBufferedAmount no frame; a kept-open 4xx cuts it off with 1008, reported once', async t => {
  const { sessions, reports } = harness({ closeTimeout: 20 })
  const deaf = new FakeSocket()
  deaf.answers = false
  let handled = 0
  sessions.run(deaf, 'req', () => { deaf.on('message', () => { handled++; throw new BadRequestError('bad') }) })
  deaf.emit('message', 'x')
  t.equal(deaf.sent.length, 1, 'under the limit: the error frame')
  deaf.bufferedAmount = 1000
  deaf.emit('message', 'x')
  t.equal(deaf.sent.length, 2, 'at the limit: still answered')
  deaf.bufferedAmount = 1001
  deaf.emit('message', 'x')
  t.equal(deaf.sent.length, 2, 'past the limit: no frame')
  t.same(deaf.closes, [[1008, 'TOO_MANY_REQUESTS']])
  for (let i = 0; i < 100; i++) deaf.emit('message', 'x')
  t.equal(handled, 3, 'messages after the cut are dropped')
  t.same(reports.map(r => [r[0], r[1]]), [
    ['BAD_REQUEST', 'message'], ['BAD_REQUEST', 'message'], ['BAD_REQUEST', 'message'], ['TOO_MANY_REQUESTS', 'mid-stream']
  ], 'each message fault, then the cut once')
  while (!deaf.terminated) await new Promise(resolve => setTimeout(resolve, 5))
  t.pass('terminated when it does not finish the close within closeTimeout')
  t.equal(sessions.size, 0)
})

t.test('past maxBufferedAmount, a fault that closes skips its frame and closes with its own code', async t => {
  const { sessions, reports } = harness()
  const slow = new FakeSocket()
  slow.bufferedAmount = 5000
  sessions.run(slow, 'req', () => { throw new InternalError('boom') })
  t.same(slow.sent, [])
  t.same(slow.closes, [[1011, 'INTERNAL']])
  t.same(reports.map(r => r[0]), ['INTERNAL'])
  const quiet = new FakeSocket()
  quiet.bufferedAmount = 5000
  const off = harness({ errorFrame: false })
  off.sessions.run(quiet, 'req', () => { quiet.on('message', () => { throw new BadRequestError('bad') }) })
  quiet.emit('message', 'x')
  t.same(quiet.closes, [], 'errorFrame: false queues nothing of ours: nothing to cut')
  quiet.finish(1000)
})

t.test('every socket shares one set of guards, on a prototype: no method of its own', async t => {
  const { sessions, reports } = harness()
  const a = new FakeSocket()
  const b = new FakeSocket()
  const handler = async (): Promise<void> => { throw new BadRequestError('no') }
  for (const socket of [a, b]) sessions.run(socket, 'req', () => { socket.addEventListener('message', handler) })
  for (const method of ['emit', 'addEventListener', 'removeEventListener'] as const) {
    t.equal(a[method], b[method], `one ${method} guard for both`)
    t.notOk(Object.hasOwn(a, method), `${method} is not the socket's own`)
  }
  t.ok(a instanceof FakeSocket, 'still an instance of its class')
  t.same(Object.keys(a).filter(key => ['emit', 'addEventListener', 'removeEventListener'].includes(key)), [], 'nothing new to enumerate')
  t.same(a.listeners('message'), b.listeners('message'), 'one guard per handler, shared by the sockets it is added to')
  a.emit('message', 'x')
  b.emit('message', 'x')
  await tick()
  t.same(reports.map(r => r[0]), ['BAD_REQUEST', 'BAD_REQUEST'], 'each rejection is its own socket\'s')
  t.equal(a.sent.length, 1)
  t.equal(b.sent.length, 1)
  a.removeEventListener('message', handler)
  t.equal(a.listenerCount('message'), 0, 'removed through its guard')
  t.equal(b.listenerCount('message'), 1, 'from that socket only')
  a.finish(1000)
  b.finish(1000)
})

t.test('a socket whose methods are its own gets the guards in place', async t => {
  const { sessions, reports } = harness()
  const socket = new FakeSocket()
  const natives: Array<string | symbol> = []
  socket.emit = function patched (this: FakeSocket, event: string | symbol, ...args: unknown[]): boolean {
    natives.push(event)
    return EventEmitter.prototype.emit.call(this, event, ...args)
  }
  sessions.run(socket, 'req', () => { socket.on('message', () => { throw new BadRequestError('no') }) })
  socket.on('error', () => {})
  socket.emit('message', 'x')
  socket.emit('error', new Error('native'))
  t.same(natives, ['error'], 'its own emit is the native path')
  t.same(reports.map(r => r[0]), ['BAD_REQUEST'])
  socket.finish(1000)
  t.equal(sessions.size, 0)
})

t.test('the session sees its socket close even when the handler removed every close listener', async t => {
  const { sessions, reports } = harness()
  const socket = new FakeSocket()
  sessions.run(socket, 'req', () => { socket.removeAllListeners('close') })
  socket.finish(1006)
  t.equal(sessions.size, 0, 'forgotten')
  t.same(reports.map(r => r[0]), ['CLIENT_CLOSED'])
  t.equal(sessions.socketError(new Error('late'), socket), false, 'a closed socket is not owned any more')
})

t.test('a listener of another event that throws is a mid-stream fault, reported once per socket', async t => {
  const { sessions, reports } = harness()
  const socket = new FakeSocket()
  sessions.run(socket, 'req', () => { socket.on('ping', () => { throw new ConflictError('not now') }) })
  socket.emit('ping')
  t.same(reports, [['CONFLICT', 'mid-stream', 'req', true]])
  t.equal(socket.sent.length, 1, 'an error frame')
  t.same(socket.closes, [], 'a 4xx keeps the socket open')
  socket.finish(1000)
})
