import net from 'node:net'
import fastifyWebsocket from '@fastify/websocket'
import WebSocket from 'ws'
import { bareApp, faultlineApp } from '../lib/app.js'
import type { Server } from '../lib/child.js'
import type { Harness } from '../lib/harness.js'
import { loadPlugins } from '../lib/plugins.js'
import type { Case, Row, ServerContext, Variant } from '../lib/types.js'
import { echo } from './websocket.js'
import { fastifySse, type SseReply } from './sse.js'

// Cases m, mh, ms: what one idle connection costs the server. Each round
// opens `connections` idle WebSocket / SSE clients against one variant,
// takes the server's heap after a full GC with them open, closes them, and
// does the same on the other variant; per connection = (open - before) / n.
// Baselines: @fastify/websocket and @fastify/sse alone (no heartbeat: bare
// apps that want one would add it themselves).

const CLIENT_TIMEOUT = 20_000
const OPEN_AT_ONCE = 50
const SERIAL_WARM_UP = 10

type Kind = 'websocket' | 'sse'

/** An idle WebSocket client: open, then nothing. */
function openSocket (port: number): Promise<() => Promise<void>> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/idle`)
    const timer = setTimeout(() => { ws.terminate(); reject(new Error('idle socket: no open')) }, CLIENT_TIMEOUT)
    ws.once('error', (err) => { clearTimeout(timer); reject(err) })
    ws.once('open', () => {
      clearTimeout(timer)
      resolve(() => new Promise(resolve => { ws.once('close', () => resolve()); ws.terminate() }))
    })
  })
}

/** An idle SSE client: the request, the headers and the first event, then nothing. */
function openStream (port: number): Promise<() => Promise<void>> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    let seen = ''
    const timer = setTimeout(() => { socket.destroy(); reject(new Error('idle SSE: no first event')) }, CLIENT_TIMEOUT)
    socket.setEncoding('latin1')
    socket.once('error', (err) => { clearTimeout(timer); reject(err) })
    socket.on('connect', () => socket.write('GET /idle HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: text/event-stream\r\n\r\n'))
    socket.on('data', function first (chunk: string) {
      seen += chunk
      if (!seen.includes('\n\n', seen.indexOf('\r\n\r\n') + 4)) return
      clearTimeout(timer)
      socket.off('data', first)
      if (!seen.startsWith('HTTP/1.1 200')) {
        socket.destroy()
        reject(new Error(`idle SSE: ${seen.slice(0, seen.indexOf('\r\n'))}`))
        return
      }
      resolve(() => new Promise(resolve => { socket.once('close', () => resolve()); socket.destroy() }))
    })
  })
}

async function openAll (kind: Kind, port: number, n: number): Promise<Array<() => Promise<void>>> {
  const closers: Array<() => Promise<void>> = []
  while (closers.length < n) {
    const batch = Math.min(OPEN_AT_ONCE, n - closers.length)
    closers.push(...await Promise.all(Array.from({ length: batch }, () => kind === 'websocket' ? openSocket(port) : openStream(port))))
  }
  return closers
}

/** Heap bytes per open connection, on one server. (Unref'd timers, as faultline's are, do not show in getActiveResourcesInfo.) */
async function perConnection (kind: Kind, server: Server, n: number): Promise<number> {
  const before = await server.heap()
  const closers = await openAll(kind, server.port, n)
  const open = await server.heap()
  await Promise.all(closers.map(close => close()))
  return (open.heapUsed - before.heapUsed) / n
}

/**
 * The untimed round. Its first connections come one at a time: V8 sizes the
 * objects of a constructor (a Socket, its WritableState) from the first few
 * it made, and a burst of connections accepted before any was served gives
 * every later socket some properties out of the object (about 50 B more
 * each), at random per process, which would count against whichever
 * variant drew it.
 */
async function warmUp (kind: Kind, server: Server, n: number): Promise<void> {
  const closers: Array<() => Promise<void>> = []
  for (let i = 0; i < SERIAL_WARM_UP; i++) closers.push(await (kind === 'websocket' ? openSocket(server.port) : openStream(server.port)))
  await Promise.all(closers.map(close => close()))
  await perConnection(kind, server, n)
}

async function build (ctx: ServerContext, kind: Kind, heartbeat: boolean): Promise<ReturnType<typeof bareApp>> {
  let app
  if (ctx.variant === 'baseline') {
    app = bareApp(ctx)
    await app.register(kind === 'websocket' ? fastifyWebsocket : fastifySse)
  } else if (kind === 'sse') {
    app = await faultlineApp(ctx, ['http', 'sse'])
  } else {
    const { http, websocket } = await loadPlugins()
    app = bareApp(ctx)
    await app.register(http!)
    await app.register(websocket!, heartbeat ? { heartbeat: 30_000 } : {})
  }
  if (kind === 'websocket') app.get('/idle', { websocket: true }, echo)
  else {
    app.get('/idle', { sse: true } as object, async (request, reply) => {
      const sse = (reply as SseReply).sse
      sse.keepAlive()
      await sse.send({ data: 'hello' })
    })
  }
  return app
}

function memoryCase (id: string, kind: Kind, heartbeat: boolean, label: string): Case {
  return {
    id,
    title: `connections: heap per idle ${label} vs bare`,
    requires: kind === 'websocket' ? ['http', 'websocket'] : ['http', 'sse'],
    build: ctx => build(ctx, kind, heartbeat),
    async bench (h: Harness): Promise<Row[]> {
      const n = h.settings.quick ? 300 : 2000
      const servers = await h.pair()
      // One untimed round (JIT, pools, lazy requires), then alternating rounds.
      for (const variant of ['baseline', 'faultline'] as const) await warmUp(kind, servers[variant], Math.min(n, 200))
      const runs: Record<Variant, number[]> = { baseline: [], faultline: [] }
      const rounds = Math.max(3, Math.ceil(h.settings.rounds / 2))
      for (let round = 0; round < rounds; round++) {
        for (const variant of ['baseline', 'faultline'] as const) runs[variant].push(await perConnection(kind, servers[variant], n))
      }
      await h.closeAll()
      return [
        { name: `${id} heap per idle ${label} (${n.toLocaleString('en-US')} open)`, unit: 'B', better: 'lower', target: 1.05, baseline: runs.baseline, faultline: runs.faultline }
      ]
    }
  }
}

export const idleWebsocket = memoryCase('m', 'websocket', false, 'WebSocket')
export const idleWebsocketHeartbeat = memoryCase('mh', 'websocket', true, 'WebSocket, heartbeat on')
export const idleSse = memoryCase('ms', 'sse', false, 'SSE stream')
