// WebSocket protocol violations at the frame level (issue 21, item 8): a
// raw TCP peer does the handshake by hand, then sends frames no well-behaved
// client would: invalid UTF-8 (in one frame, split across fragments, in a
// close reason), frames larger than `maxPayload` (declared in the header and
// never sent, or built from small fragments), a 2^63 length. What the peer
// sees on the wire is the protocol's close code in a close frame; each
// violation is reported once (not at error level: the peer broke the
// protocol); nothing is left open.
import t from 'tap'
import { connect as netConnect, type Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { guardProcess } from './helpers/guard.js'
import { waitFor, WAIT_MS } from './helpers/ws-client.js'
import { until } from './helpers/sse-client.js'
import { wsApp } from './helpers/ws-app.js'

guardProcess(t)

const TEXT = 0x1
const CONTINUATION = 0x0
const CLOSE = 0x8

/** A masked client frame; `length` overrides the declared payload length (the payload is still what is given). */
function frame (opcode: number, payload: Buffer, { fin = true, length = payload.length }: { fin?: boolean, length?: number | bigint } = {}): Buffer {
  const head = [(fin ? 0x80 : 0) | opcode]
  let ext = Buffer.alloc(0)
  if (typeof length === 'bigint' || length > 0xffff) {
    head.push(0x80 | 127)
    ext = Buffer.alloc(8)
    ext.writeBigUInt64BE(BigInt(length))
  } else if (length > 125) {
    head.push(0x80 | 126)
    ext = Buffer.alloc(2)
    ext.writeUInt16BE(length)
  } else {
    head.push(0x80 | length)
  }
  const mask = randomBytes(4)
  const masked = Buffer.from(payload.map((byte, i) => byte ^ mask[i % 4]!))
  return Buffer.concat([Buffer.from(head), ext, mask, masked])
}

interface RawPeer {
  socket: Socket
  /** Resolves with what the server sent after the handshake, once it closed the TCP connection. */
  ended: Promise<{ frames: Array<{ opcode: number, payload: Buffer }>, bytes: number }>
}

/** Opens a TCP connection and does the WebSocket handshake by hand. */
async function rawPeer (app: FastifyInstance, path: string): Promise<RawPeer> {
  const { port } = app.server.address() as AddressInfo
  const socket = netConnect(port, '127.0.0.1')
  socket.on('error', () => {})
  await waitFor(socket, 'connect')
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`)
  let received = Buffer.alloc(0)
  let upgraded: () => void
  const handshake = new Promise<void>(resolve => { upgraded = resolve })
  socket.on('data', (chunk: Buffer) => {
    received = Buffer.concat([received, chunk])
    if (received.includes('\r\n\r\n')) upgraded()
  })
  const ended = new Promise<RawPeer['ended'] extends Promise<infer T> ? T : never>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the server did not close the connection')), WAIT_MS)
    socket.once('close', () => {
      clearTimeout(timer)
      const body = received.subarray(received.indexOf('\r\n\r\n') + 4)
      resolve({ frames: parseFrames(body), bytes: body.length })
    })
  })
  ended.catch(() => {})
  await handshake
  if (!received.toString('latin1').startsWith('HTTP/1.1 101')) throw new Error(`no upgrade: ${received.toString('latin1', 0, 200)}`)
  return { socket, ended }
}

/** Unmasked server frames. */
function parseFrames (bytes: Buffer): Array<{ opcode: number, payload: Buffer }> {
  const frames: Array<{ opcode: number, payload: Buffer }> = []
  let at = 0
  while (at + 2 <= bytes.length) {
    const opcode = bytes[at]! & 0x0f
    let length = bytes[at + 1]! & 0x7f
    at += 2
    if (length === 126) { length = bytes.readUInt16BE(at); at += 2 } else if (length === 127) { length = Number(bytes.readBigUInt64BE(at)); at += 8 }
    frames.push({ opcode, payload: bytes.subarray(at, at + length) })
    at += length
  }
  return frames
}

/** The close code and reason of the only frame the server sent. */
function closeOf (frames: Array<{ opcode: number, payload: Buffer }>): { code: number, reason: string } | string {
  if (frames.length !== 1 || frames[0]!.opcode !== CLOSE) return `frames ${JSON.stringify(frames.map(f => f.opcode))}`
  const payload = frames[0]!.payload
  return { code: payload.readUInt16BE(0), reason: payload.subarray(2).toString('utf8') }
}

const INVALID_UTF8 = Buffer.from([0x61, 0xff, 0xfe])

// Each case: the bytes the peer sends after the handshake, the close code it must get, the fault reported.
const CASES: Array<[string, Buffer, number, string]> = [
  ['invalid UTF-8 in a text frame', frame(TEXT, INVALID_UTF8), 1007, 'BAD_REQUEST'],
  ['invalid UTF-8 split across fragments', Buffer.concat([
    frame(TEXT, Buffer.from([0x61, 0xe2, 0x82]), { fin: false }),
    frame(CONTINUATION, Buffer.from([0x28]))
  ]), 1007, 'BAD_REQUEST'],
  ['a lone surrogate encoded as UTF-8 (CESU)', frame(TEXT, Buffer.from([0xed, 0xa0, 0x80])), 1007, 'BAD_REQUEST'],
  ['invalid UTF-8 in a close reason', frame(CLOSE, Buffer.concat([Buffer.from([0x03, 0xe8]), INVALID_UTF8])), 1007, 'BAD_REQUEST'],
  ['a frame header declaring 1 MiB (payload never sent)', frame(TEXT, Buffer.alloc(0), { length: 1024 * 1024 }), 1009, 'PAYLOAD_TOO_LARGE'],
  ['a frame header declaring 2^63 - 1 bytes', frame(TEXT, Buffer.alloc(0), { length: 2n ** 63n - 1n }), 1009, 'PAYLOAD_TOO_LARGE'],
  ['a message over maxPayload built from small fragments', Buffer.concat([
    frame(TEXT, Buffer.alloc(100, 0x61), { fin: false }),
    ...Array.from({ length: 19 }, () => frame(CONTINUATION, Buffer.alloc(100, 0x61), { fin: false })),
    frame(CONTINUATION, Buffer.alloc(100, 0x61))
  ]), 1009, 'PAYLOAD_TOO_LARGE']
]

t.test('each protocol violation: a close frame with the protocol\'s code, the TCP connection ended, reported once', async t => {
  const { app, reported, errorLines, logs } = await wsApp(t, app => {
    app.get('/echo', { websocket: true }, socket => {
      socket.on('message', data => socket.send(String(data)))
    })
  }, { websocket: { options: { maxPayload: 1024 } } })
  for (const [name, bytes, code, faultCode] of CASES) {
    reported.length = 0
    const faultLines = logs.faults().length
    const peer = await rawPeer(app, '/echo')
    peer.socket.write(bytes)
    // The peer never answers the close frame: the server must still end the connection.
    const { frames } = await peer.ended
    t.same(closeOf(frames), { code, reason: '' }, `${name}: close ${code}, no error frame before it`)
    t.same(reported.map(r => [r.code, r.transport, r.phase]), [[faultCode, 'websocket', 'mid-stream']], `${name}: reported once`)
    t.equal(logs.faults().length - faultLines, 1, `${name}: logged once`)
  }
  t.same(errorLines(), [], 'nothing at error level: the peer broke the protocol')
  await until(() => app.websocketServer.clients.size === 0, WAIT_MS, 'the server sockets to close')
  t.pass('no socket left open')
})

t.test('200 violating peers at once: every one closed with its code, each reported once, no socket or listener left', async t => {
  const { app, reported } = await wsApp(t, app => {
    app.get('/echo', { websocket: true }, socket => {
      socket.on('message', data => socket.send(String(data)))
    })
  }, { websocket: { options: { maxPayload: 1024 } } })
  const tcpBefore = process.getActiveResourcesInfo().filter(r => r === 'TCPSocketWrap').length
  const peers = await Promise.all(Array.from({ length: 200 }, () => rawPeer(app, '/echo')))
  const want = peers.map((peer, i) => {
    const [, bytes, code] = CASES[i % CASES.length]!
    peer.socket.write(bytes)
    return code
  })
  const got = await Promise.all(peers.map(async peer => {
    const close = closeOf((await peer.ended).frames)
    return typeof close === 'string' ? close : close.code
  }))
  t.same(got, want, 'every peer got its close code')
  t.equal(reported.length, 200, 'each reported once')
  const tcp = (): number => process.getActiveResourcesInfo().filter(r => r === 'TCPSocketWrap').length
  const started = Date.now()
  await until(() => app.websocketServer.clients.size === 0 && tcp() <= tcpBefore, WAIT_MS, 'every socket to close')
  t.pass(`no socket left open: TCP sockets back to ${tcpBefore} within ${Date.now() - started} ms of the last close frame`)
  t.equal(app.server.listenerCount('upgrade'), 1, 'no upgrade listener added per connection')
})
