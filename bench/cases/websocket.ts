import fastifyWebsocket from '@fastify/websocket'
import type { WebSocket } from 'ws'
import { bareApp, faultlineApp } from '../lib/app.js'
import type { Harness } from '../lib/harness.js'
import { wsEcho } from '../lib/load.js'
import type { Case, Row } from '../lib/types.js'

// Case 6: echo messages/s through a `{ websocket: true }` route with
// faultlineWebsocket (which registers @fastify/websocket itself and wraps
// the handler) vs @fastify/websocket alone.

export function echo (socket: WebSocket): void {
  socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }))
}

export const websocket: Case = {
  id: '6',
  title: 'WebSocket: echo messages/s with faultlineWebsocket vs bare @fastify/websocket',
  requires: ['http', 'websocket'],
  async build (ctx) {
    const app = ctx.variant === 'baseline' ? bareApp(ctx) : await faultlineApp(ctx, ['http', 'websocket'])
    if (ctx.variant === 'baseline') await app.register(fastifyWebsocket)
    app.get('/echo', { websocket: true }, echo)
    return app
  },
  async bench (h: Harness): Promise<Row[]> {
    const count = h.settings.messages
    const servers = await h.pair()
    const runs = await h.alternate(servers, server => wsEcho(server.url.replace('http', 'ws') + '/echo', count))
    await h.closeAll()
    const rate = (r: typeof runs.baseline[number]): number => r.value.messages / r.value.seconds
    return [
      { name: `6 WebSocket echo ${count.toLocaleString('en-US')} msgs`, unit: 'msg/s', better: 'higher', target: 0.97, baseline: runs.baseline.map(rate), faultline: runs.faultline.map(rate) },
      { name: '6 WebSocket server CPU per echo', unit: 'µs', better: 'lower', detail: true, baseline: runs.baseline.map(r => r.cpu / r.value.messages), faultline: runs.faultline.map(r => r.cpu / r.value.messages) }
    ]
  }
}
