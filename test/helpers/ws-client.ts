import type { IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import WebSocket from 'ws'

/** Generous bound for any wait: fails the test instead of hanging it, never a timing assert. */
export const WAIT_MS = 10_000

/** Resolves with the event's arguments, or rejects after `ms`. */
export function waitFor<T extends unknown[] = unknown[]> (emitter: NodeJS.EventEmitter, event: string, ms = WAIT_MS): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, onEvent)
      reject(new Error(`timed out after ${ms} ms waiting for '${event}'`))
    }, ms)
    function onEvent (...args: unknown[]): void {
      clearTimeout(timer)
      resolve(args as T)
    }
    emitter.once(event, onEvent)
  })
}

/** A `ws` client that records every message and its close, with bounded waits. */
export interface Client {
  ws: WebSocket
  /** Text of every message received so far. */
  messages: string[]
  /** The next message not yet taken by `next()`. */
  next: () => Promise<string>
  /** The close the client saw: code and reason. */
  closed: Promise<{ code: number, reason: string }>
}

export function track (ws: WebSocket): Client {
  const messages: string[] = []
  let taken = 0
  const waiters: Array<(m: string) => void> = []
  ws.on('message', (data: WebSocket.RawData) => {
    const text = String(data)
    messages.push(text)
    const waiter = waiters.shift()
    if (waiter !== undefined) { taken++; waiter(text) }
  })
  const closed = waitFor<[number, Buffer]>(ws, 'close').then(([code, reason]) => ({ code, reason: reason.toString('utf8') }))
  closed.catch(() => {})
  return {
    ws,
    messages,
    closed,
    next () {
      if (taken < messages.length) return Promise.resolve(messages[taken++]!)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('timed out waiting for a message')), WAIT_MS)
        waiters.push(m => { clearTimeout(timer); resolve(m) })
      })
    }
  }
}

/** Base ws:// URL of a listening app. */
export async function listen (app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  return `ws://127.0.0.1:${port}`
}

/** Opens a client and waits for the handshake. */
export async function connect (url: string, options?: WebSocket.ClientOptions): Promise<Client> {
  const ws = new WebSocket(url, options)
  const client = track(ws)
  await Promise.race([
    waitFor(ws, 'open'),
    waitFor<[Error]>(ws, 'error').then(([err]) => { throw err })
  ])
  return client
}

/** Opens a client expecting the server to refuse the upgrade with an HTTP response. */
export async function refused (url: string, options?: WebSocket.ClientOptions): Promise<{ status: number, headers: IncomingMessage['headers'], body: string }> {
  const ws = new WebSocket(url, options)
  ws.on('error', () => {})
  const [, res] = await waitFor<[unknown, IncomingMessage]>(ws, 'unexpected-response')
  const chunks: Buffer[] = []
  for await (const chunk of res) chunks.push(chunk as Buffer)
  ws.terminate()
  return { status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }
}
