import net from 'node:net'
import autocannon from 'autocannon'
import { request } from 'undici'
import WebSocket from 'ws'
import type { Settings } from './types.js'

export interface CannonResult {
  /** Completed requests per second. */
  rps: number
  /** 99th percentile latency, ms. */
  p99: number
  /** Requests completed (for CPU per request). */
  requests: number
}

/**
 * One autocannon run against `url`. 20 connections with 10 pipelined
 * requests each: the load generator's cost per request stays low enough for
 * one thread to keep the server's core busy (on 2 cores, the most load the
 * other core can make).
 */
export async function cannon (url: string, settings: Settings, expectStatus: number): Promise<CannonResult> {
  const result = await autocannon({ url, connections: 20, pipelining: 10, duration: settings.duration })
  const expected = expectStatus < 300 ? result['2xx'] : expectStatus < 500 ? result['4xx'] : result['5xx']
  if (result.errors > 0 || result.timeouts > 0 || expected !== result.requests.total) {
    throw new Error(`${url}: ${result.errors} errors, ${result.timeouts} timeouts, ${expected} of ${result.requests.total} answered ${expectStatus}`)
  }
  return { rps: result.requests.total / result.duration, p99: result.latency.p99, requests: result.requests.total }
}

export interface BodyResult {
  bytes: number
  /** Newline bytes seen (ndjson records, SSE lines). */
  newlines: number
  /** Blank lines (`\n\n`): SSE events. */
  events: number
  seconds: number
}

/**
 * Reads one response body to its end and counts what it carried. Counting
 * runs over each chunk with indexOf, cheap next to the transfer, the same
 * for both variants.
 */
export async function readBody (url: string, headers: Record<string, string> = {}): Promise<BodyResult> {
  const t0 = process.hrtime.bigint()
  const res = await request(url, { headers })
  if (res.statusCode !== 200) throw new Error(`${url}: status ${res.statusCode}`)
  let bytes = 0
  let newlines = 0
  let events = 0
  let lastWasNewline = false
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    bytes += chunk.length
    let i = chunk.indexOf(10)
    while (i !== -1) {
      newlines++
      if (i === 0 ? lastWasNewline : chunk[i - 1] === 10) events++
      i = chunk.indexOf(10, i + 1)
    }
    lastWasNewline = chunk[chunk.length - 1] === 10
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  return { bytes, newlines, events, seconds }
}

export interface EchoResult {
  messages: number
  seconds: number
}

/**
 * WebSocket echo load: `connections` clients, each keeping `window` messages
 * in flight, until `total` echoes came back. Returns echoes per second.
 */
export async function wsEcho (url: string, total: number, connections = 8, window = 16): Promise<EchoResult> {
  const payload = Buffer.from(JSON.stringify({ type: 'ping', payload: 'x'.repeat(96) }))
  const sockets = await Promise.all(Array.from({ length: connections }, () => new Promise<WebSocket>((resolve, reject) => {
    const ws = new WebSocket(url)
    ws.once('open', () => resolve(ws))
    ws.once('error', reject)
  })))
  const perSocket = Math.ceil(total / connections)
  const t0 = process.hrtime.bigint()
  await Promise.all(sockets.map(ws => new Promise<void>((resolve, reject) => {
    let sent = 0
    let received = 0
    ws.on('error', reject)
    ws.on('close', (code) => { if (received < perSocket) reject(new Error(`socket closed early (${code}) after ${received} echoes`)) })
    ws.on('message', () => {
      received++
      if (received === perSocket) resolve()
      else if (sent < perSocket) { sent++; ws.send(payload) }
    })
    for (; sent < Math.min(window, perSocket); sent++) ws.send(payload)
  })))
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  await Promise.all(sockets.map(ws => new Promise<void>(resolve => {
    ws.removeAllListeners('close')
    ws.once('close', () => resolve())
    ws.close(1000)
  })))
  return { messages: perSocket * connections, seconds }
}

export interface RawResult {
  /** Bytes on the wire after the response head (body plus chunked framing). */
  bytes: number
  /** Whether the body ended with the terminating chunk: a clean end. */
  complete: boolean
  seconds: number
}

/**
 * Reads a chunked response over a plain socket (`connection: close`),
 * counting bytes without parsing the framing: the cheapest possible client,
 * so the server, not the load generator, sets the pace.
 */
export function readRaw (port: number, path: string): Promise<RawResult> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint()
    const socket = net.connect(port, '127.0.0.1')
    let bytes = 0
    let head = ''
    let tail: Buffer = Buffer.alloc(0)
    socket.on('connect', () => socket.write(`GET ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n`))
    socket.on('data', (chunk: Buffer) => {
      if (!head.endsWith('\r\n\r\n')) {
        // Still in the response head (small): find where it ends.
        const text = chunk.toString('latin1')
        const at = (head + text).indexOf('\r\n\r\n')
        if (at === -1) { head += text; return }
        const consumed = at + 4 - head.length
        head = (head + text).slice(0, at + 4)
        if (!head.startsWith('HTTP/1.1 200')) { socket.destroy(); reject(new Error(`${path}: ${head.slice(0, head.indexOf('\r\n'))}`)); return }
        chunk = chunk.subarray(consumed)
      }
      bytes += chunk.length
      tail = chunk.length >= 5 ? chunk.subarray(chunk.length - 5) : Buffer.concat([tail, chunk]).subarray(-5)
    })
    socket.on('error', reject)
    socket.on('end', () => {
      resolve({ bytes, complete: tail.toString('latin1') === '0\r\n\r\n', seconds: Number(process.hrtime.bigint() - t0) / 1e9 })
    })
  })
}
