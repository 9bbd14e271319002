import net from 'node:net'
import WebSocket from 'ws'

const CONCURRENCY = 50
const CLIENT_TIMEOUT = 10_000

/**
 * An HTTP client that sends `GET path`, waits for the headers and the first
 * body bytes, then goes away: even clients close (FIN), odd ones reset (RST).
 */
function httpAbort (port: number, path: string, headers: string, reset: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    let seen = ''
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`churn ${path}: no body within ${CLIENT_TIMEOUT} ms`)) }, CLIENT_TIMEOUT)
    socket.setEncoding('latin1')
    socket.on('error', (err) => { clearTimeout(timer); reject(err) })
    socket.on('connect', () => socket.write(`GET ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\n${headers}\r\n`))
    socket.on('data', (chunk: string) => {
      seen += chunk
      const end = seen.indexOf('\r\n\r\n')
      if (end === -1 || seen.length === end + 4) return
      if (!seen.startsWith('HTTP/1.1 200')) {
        clearTimeout(timer)
        socket.destroy()
        reject(new Error(`churn ${path}: ${seen.slice(0, seen.indexOf('\r\n'))}`))
        return
      }
      clearTimeout(timer)
      socket.removeAllListeners('data')
      socket.on('close', () => resolve())
      if (reset) socket.resetAndDestroy()
      else socket.destroy()
    })
  })
}

/** A WebSocket client that waits for the server's first message, then drops the TCP connection (no close frame). */
function wsAbort (port: number, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`)
    const timer = setTimeout(() => { ws.terminate(); reject(new Error(`churn ${path}: no message within ${CLIENT_TIMEOUT} ms`)) }, CLIENT_TIMEOUT)
    ws.on('error', (err) => { clearTimeout(timer); reject(err) })
    ws.once('message', () => {
      clearTimeout(timer)
      ws.once('close', () => resolve())
      ws.terminate()
    })
  })
}

export type ChurnKind = 'stream' | 'sse' | 'websocket'

/** `total` clients of one kind, `CONCURRENCY` at a time, each aborting mid-response. */
export async function churn (kind: ChurnKind, port: number, total: number): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < total) {
      const i = next++
      if (kind === 'stream') await httpAbort(port, '/stream', '', i % 2 === 1)
      else if (kind === 'sse') await httpAbort(port, '/sse', 'accept: text/event-stream\r\n', i % 2 === 1)
      else await wsAbort(port, '/socket')
    }
  }
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, total) }, worker))
}
