// A peer whose messages each fault (4xx: the socket stays open) and that never
// reads the error frames: the server must not queue them without bound. Real
// `ws` clients over loopback, paused (`ws.pause()` stops reading the socket).
import t, { type Test } from 'tap'
import type { WebSocket } from 'ws'
import { BadRequestError } from '../index.js'
import { guardProcess } from './helpers/guard.js'
import { wsApp, type WsApp } from './helpers/ws-app.js'
import { connect } from './helpers/ws-client.js'

guardProcess(t)

const MB = 1024 * 1024
// A bound on the flood, not a timing: past it the server never cut the peer off.
// (Kernel buffers on loopback take a few MB before bufferedAmount grows at all.)
const MAX_MESSAGES = 20_000
const DETAIL = 'd'.repeat(2000) // ~2 KB error frames: the buffers fill in a few thousand messages

interface Flood {
  s: WsApp
  /** The largest `bufferedAmount` the server's listener saw before answering. */
  maxBuffered: () => number
  /** Messages the listener handled. */
  handled: () => number
}

async function floodApp (t: Test, maxBufferedAmount?: number): Promise<Flood> {
  let maxBuffered = 0
  let handled = 0
  const s = await wsApp(t, app => {
    app.get('/ws', { websocket: true }, (socket: WebSocket) => {
      socket.on('message', () => {
        handled++
        maxBuffered = Math.max(maxBuffered, socket.bufferedAmount)
        throw new BadRequestError(DETAIL)
      })
    })
  }, maxBufferedAmount === undefined ? { closeTimeout: 20_000 } : { maxBufferedAmount, closeTimeout: 20_000 })
  return { s, maxBuffered: () => maxBuffered, handled: () => handled }
}

for (const [name, limit] of [['the default (1 MiB)', undefined], ['maxBufferedAmount: 256 KiB', 256 * 1024]] as const) {
  t.test(`a non-reading peer whose messages fault is cut off past ${name}, reported once`, async t => {
    const f = await floodApp(t, limit)
    const client = await connect(f.s.url + '/ws')
    client.ws.pause()
    let sent = 0
    while (sent < MAX_MESSAGES && !f.s.reported.some(r => r.code === 'TOO_MANY_REQUESTS')) {
      for (let i = 0; i < 200; i++) client.ws.send('x')
      sent += 200
      // Let the server take them in (its answers pile up on the paused client's side).
      await new Promise(resolve => setTimeout(resolve, 5))
    }
    t.ok(f.s.reported.some(r => r.code === 'TOO_MANY_REQUESTS'), `cut off after ${f.handled()} faulting messages (${sent} sent)`)
    const bound = limit ?? MB
    // A frame is queued only while at most `bound` bytes are: never more than the limit plus one frame.
    t.ok(f.maxBuffered() > bound && f.maxBuffered() <= bound + 16 * 1024,
      `largest bufferedAmount seen: ${f.maxBuffered()} bytes, limit ${bound}`)
    const handledAtCut = f.handled()
    for (let i = 0; i < 500; i++) client.ws.send('x')
    // The peer reads again: the frames queued before the cut, then the close.
    client.ws.resume()
    t.same(await client.closed, { code: 1008, reason: 'TOO_MANY_REQUESTS' }, 'closed with 1008, policy violation')
    t.ok(client.messages.length > 0 && client.messages.every(m => JSON.parse(m).type === 'error'), `${client.messages.length} error frames, all whole`)
    t.equal(f.handled(), handledAtCut, 'messages after the cut are dropped, not handled')
    const cuts = f.s.reported.filter(r => r.code === 'TOO_MANY_REQUESTS')
    t.equal(cuts.length, 1, 'the cut is reported once')
    t.match(cuts[0], { transport: 'websocket', phase: 'mid-stream' })
    t.match(cuts[0]!.fault.message, /does not read its error frames: \d+ bytes queued/)
    t.equal(f.s.reported.filter(r => r.code === 'BAD_REQUEST').length, handledAtCut, 'one report per handled message, none after')
    t.same(f.s.errorLines(), [], 'nothing at error level: the peer misbehaved, not the server')
  })
}
