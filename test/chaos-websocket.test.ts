// Chaos: thousands of WebSocket clients leave at random byte offsets (inside
// the upgrade request, in the 101 response, mid-frame; FIN or RST) while the
// server streams frames and, sometimes, fails mid-way. Every producer must
// stop, heartbeat and idle timers be cleared, no unhandled rejection, and the
// process's sockets and timers back to the baseline.
import t from 'tap'
import { setImmediate as tick } from 'node:timers/promises'
import type { AddressInfo, Socket } from 'node:net'
import type { WebSocket } from 'ws'
import { guardProcess } from './helpers/guard.js'
import { wsApp } from './helpers/ws-app.js'
import {
  CHAOS_SIZE, aboveBaseline, hasCloseFrame, leaveAt, connectionsLeft, prng, randomCut, resources, runAll, settle, stallAt, tinyFrames
} from './helpers/chaos-client.js'
import { BadRequestError, ServiceUnavailableError } from '../index.js'

guardProcess(t)

const FRAMES = 200
const DATA = 'z'.repeat(1024)
const OPEN = 1

t.test(`${CHAOS_SIZE} WebSockets, each left at a random byte`, async t => {
  const seed = Number(process.env.FAULTLINE_CHAOS_SEED ?? Date.now() % 1_000_000)
  t.comment(`seed ${seed} (FAULTLINE_CHAOS_SEED to replay)`)
  const random = prng(seed)
  let started = 0
  let stopped = 0
  const { app, reported, logs } = await wsApp(t, app => {
    app.get('/ws', { websocket: true }, async (socket, request) => {
      const failAt = Number((request.query as { fail?: string }).fail ?? -1)
      started++
      try {
        for (let i = 0; i < FRAMES; i++) {
          await tick()
          if (socket.readyState !== OPEN) return
          if (i === failAt) throw new ServiceUnavailableError('feed lost')
          socket.send(DATA)
        }
        socket.close(1000)
      } finally {
        stopped++
      }
    })
  }, { heartbeat: 1000, idleTimeout: 60_000 })
  const { port } = app.server.address() as AddressInfo
  const baseline = resources()
  await runAll(CHAOS_SIZE, 32, async () => {
    const fail = random() < 0.25 ? Math.floor(random() * FRAMES) : -1
    const request = `GET /ws?fail=${fail} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n'
    await leaveAt(port, request, randomCut(random, request.length, 160 * 1024), hasCloseFrame)
  })
  await settle(() => started !== stopped ? `${started - stopped} producers still running` : aboveBaseline(baseline))
  t.equal(stopped, started, `all ${started} producers stopped`)
  t.ok(started > CHAOS_SIZE / 2, 'most requests reached a producer')
  const unexpected = reported.filter(r => r.fault.status !== 499 && r.code !== 'SERVICE_UNAVAILABLE')
  t.same(unexpected.map(r => `${r.code} ${r.phase}`), [], 'only client aborts and the handler failures are reported')
  t.same(logs.lines.filter(l => l.level >= 40 && l.fault === undefined).map(l => l.msg), [], 'nothing else logged at warn or above')
})

// The generator the first audit lacked: peers that flood messages which each
// fault (kept open) and stop reading at a random byte. Each holds kernel
// buffers of several MB, so fewer of them: CHAOS_SIZE / 200.
const FLOODERS = Math.max(8, Math.floor(CHAOS_SIZE / 200))
const LIMIT = 64 * 1024
const DETAIL = 'd'.repeat(16 * 1024)

t.test(`${FLOODERS} peers flood faulting messages and stop reading: each cut off with a bounded buffer, reported once`, async t => {
  const seed = Number(process.env.FAULTLINE_CHAOS_SEED ?? Date.now() % 1_000_000)
  t.comment(`seed ${seed} (FAULTLINE_CHAOS_SEED to replay)`)
  const random = prng(seed)
  let maxBuffered = 0
  const { app, reported, logs } = await wsApp(t, app => {
    app.get('/flood', { websocket: true }, (socket: WebSocket) => {
      socket.on('message', () => {
        maxBuffered = Math.max(maxBuffered, socket.bufferedAmount)
        throw new BadRequestError(DETAIL)
      })
    })
  }, { maxBufferedAmount: LIMIT, closeTimeout: 300 })
  const { port } = app.server.address() as AddressInfo
  const request = 'GET /flood HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n'
  const peers: Socket[] = []
  t.teardown(() => { for (const peer of peers) peer.destroy() })
  // 3,000 one-byte messages answer with ~48 MB of frames: far past the kernel's buffers.
  const flood = tinyFrames(3000)
  await runAll(FLOODERS, FLOODERS, async () => {
    peers.push(await stallAt(port, request, 1 + Math.floor(random() * 64 * 1024), flood))
  })
  // The peers are still there, paused: only the server can end these connections.
  const open = await connectionsLeft(app.server)
  t.equal(open, 0, 'the server ended every connection (1008, then terminated), its peers still stalled')
  t.ok(maxBuffered <= LIMIT + DETAIL.length + 1024, `largest bufferedAmount seen: ${maxBuffered} bytes (limit ${LIMIT})`)
  t.equal(reported.filter(r => r.code === 'TOO_MANY_REQUESTS').length, FLOODERS, 'each peer cut off once')
  t.same(reported.filter(r => r.code !== 'TOO_MANY_REQUESTS' && r.code !== 'BAD_REQUEST').map(r => `${r.code} ${r.phase}`), [], 'nothing else reported')
  t.same(logs.lines.filter(l => l.level >= 40 && l.fault === undefined).map(l => l.msg), [], 'nothing else logged at warn or above')
})
