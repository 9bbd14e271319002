// A forked child that holds many raw TCP clients open against one server,
// then leaves with all of them at once (test/chaos-mixed.test.ts). In a
// child so that the clients' file descriptors do not count against the test
// process's limit, which the server's own sockets already use.
//
// Protocol (IPC): the parent sends { port, plan: string[] } (one path per
// client); the child answers { ready: n } once every client is connected
// and has its first body bytes (a plain HTTP route sends none: its request
// is out), with the time that took; on 'leave', every socket is destroyed at once, half with a RST,
// and the child answers { left: n, ms } and exits.
import net from 'node:net'
import { randomBytes } from 'node:crypto'

interface Start { port: number, plan: string[] }

const HEAD_END = Buffer.from('\r\n\r\n')

function requestFor (path: string): string {
  if (path === '/ws') {
    return 'GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`
  }
  const accept = path === '/sse' ? 'text/event-stream' : '*/*'
  return `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: ${accept}\r\nConnection: close\r\n\r\n`
}

/** Connects, writes the request, and resolves once the first body bytes arrived (or at once for /http). */
function open (port: number, path: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' })
    let received = Buffer.alloc(0)
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`${path}: no first bytes after 20 s`)) }, 20_000)
    socket.on('error', err => { clearTimeout(timer); reject(err) })
    socket.on('close', () => { clearTimeout(timer); reject(new Error(`${path}: closed by the server`)) })
    socket.on('connect', () => {
      socket.write(requestFor(path), () => {
        if (path === '/http') { clearTimeout(timer); resolve(socket) }
      })
    })
    socket.on('data', (chunk: Buffer) => {
      if (path === '/http') return
      received = Buffer.concat([received, chunk])
      const head = received.indexOf(HEAD_END)
      if (head !== -1 && received.length > head + HEAD_END.length) {
        clearTimeout(timer)
        socket.removeAllListeners('data')
        socket.resume()
        resolve(socket)
      }
    })
  })
}

/** Opens every client, `concurrency` connecting at a time. */
async function openAll (port: number, plan: string[], concurrency: number): Promise<net.Socket[]> {
  const sockets: net.Socket[] = new Array(plan.length)
  let next = 0
  async function worker (): Promise<void> {
    while (next < plan.length) {
      const i = next++
      sockets[i] = await open(port, plan[i]!)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  return sockets
}

process.once('message', (message: Start) => {
  const start = Date.now()
  openAll(message.port, message.plan, 256).then(sockets => {
    for (const socket of sockets) {
      socket.removeAllListeners('close')
      socket.removeAllListeners('error')
      socket.on('error', () => {})
    }
    process.once('message', () => {
      const start = Date.now()
      sockets.forEach((socket, i) => { if (i % 2 === 0) socket.resetAndDestroy(); else socket.destroy() })
      process.send!({ left: sockets.length, ms: Date.now() - start }, () => process.exit(0))
    })
    process.send!({ ready: sockets.length, ms: Date.now() - start })
  }, (err: unknown) => {
    process.send!({ error: String(err) }, () => process.exit(1))
  })
})
