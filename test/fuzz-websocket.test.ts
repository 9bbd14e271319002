// Property-based tests over thrown values through faultline-websocket, over
// real loopback sockets: whatever a handler or message listener throws, the
// peer gets an error frame and a sendable close code with a reason of at most
// 123 bytes of valid UTF-8 (or, for a listener's 4xx, the socket stays open).
import t from 'tap'
import fc from 'fast-check'
import WebSocket from 'ws'
import { guardProcess } from './helpers/guard.js'
import { wsApp } from './helpers/ws-app.js'
import { RUNS, thrownOrFault } from './helpers/arbitraries.js'
import { closeProblem, errorFrameProblem } from './helpers/chaos-checks.js'

guardProcess(t)

const WAIT_MS = 10_000

interface Seen { frames: string[], code: number, reason: Buffer }

/** Connects, optionally sends one message, and resolves with what the server sent and how it closed; bounded. */
function session (url: string, message: string | undefined): Promise<Seen> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    const frames: string[] = []
    const timer = setTimeout(() => { ws.terminate(); reject(new Error('timed out waiting for the close')) }, WAIT_MS)
    ws.on('error', () => {})
    ws.on('open', () => { if (message !== undefined) ws.send(message) })
    ws.on('message', data => {
      frames.push(String(data))
      // A listener's 4xx keeps the socket open: the client ends it.
      if (message !== undefined) ws.close(1000, 'client done')
    })
    ws.on('close', (code, reason) => {
      clearTimeout(timer)
      resolve({ frames, code, reason })
    })
  })
}

t.test('anything a handler or listener throws closes with a sendable code and a short valid reason', async t => {
  let current: unknown
  const { url } = await wsApp(t, app => {
    app.get('/sync', { websocket: true }, () => { throw current })
    app.get('/async', { websocket: true }, async () => { throw current })
    app.get('/listener', { websocket: true }, socket => {
      socket.on('message', async () => { throw current })
    })
  })
  let failure: string | undefined
  await fc.assert(fc.asyncProperty(thrownOrFault, fc.constantFrom('/sync', '/async', '/listener'), async (value, path) => {
    current = value
    const listener = path === '/listener'
    const { frames, code, reason } = await session(url + path, listener ? 'go' : undefined)
    failure = frames.length !== 1 ? `${frames.length} frames` : errorFrameProblem(frames[0]!)
    if (failure === undefined) {
      const status = JSON.parse(frames[0]!).error.status as number
      // A listener's 4xx is answered with the frame alone; the client closed with 1000.
      failure = listener && status < 500
        ? (code === 1000 ? undefined : `kept-open socket closed with ${code}`)
        : closeProblem(code, reason)
    }
    return failure === undefined
  }), { numRuns: RUNS * 3, endOnFailure: true }).catch(err => { throw new Error(`${String(failure)}\n${String(err)}`) })
  t.pass(`${RUNS * 3} thrown values closed cleanly`)
})
