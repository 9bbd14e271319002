// Clients that leave at a chosen byte: raw TCP, so the cut is exact (in the
// request, in the headers, mid-body), with a FIN or a RST; and the counted
// streamed routes they leave.
import net from 'node:net'
import type { Test } from 'tap'
import type { FastifyInstance } from 'fastify'

/**
 * Chaos size per transport: 2,000 (also under CI=true: each run takes a few
 * seconds on 2 cores), or FAULTLINE_CHAOS, never below 200.
 */
export const CHAOS_SIZE = Math.max(200, Number(process.env.FAULTLINE_CHAOS ?? 2000) || 2000)

/** A small seeded PRNG (mulberry32): the same seed gives the same plan, so a failure can be replayed. */
export function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

export interface Cut {
  /** Bytes of the request to write before leaving (the whole request when undefined). */
  requestBytes?: number | undefined
  /** Bytes of the response to read before leaving (ignored when `requestBytes` cuts the request). */
  responseBytes: number
  /** Leave with a RST instead of a FIN. */
  reset: boolean
}

/** A random cut: 10% inside the request, the rest at a response byte below `maxResponse`; half of them with a RST. */
export function randomCut (random: () => number, requestLength: number, maxResponse: number): Cut {
  const reset = random() < 0.5
  if (random() < 0.1) return { requestBytes: Math.floor(random() * requestLength), responseBytes: 0, reset }
  return { responseBytes: Math.floor(random() * maxResponse), reset }
}

/**
 * Sends `request` (or the first bytes of it) to `port` and leaves once
 * `responseBytes` bytes came back, or the response is over (`isEnd`), or at
 * once when the request is cut.
 * Resolves with the bytes received; rejects after `ms` (a bound, not a
 * timing assertion).
 */
export function leaveAt (port: number, request: string, cut: Cut, isEnd: (chunk: Buffer) => boolean = isChunkedEnd, ms = 15_000): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' })
    let received = 0
    let done = false
    const timer = setTimeout(() => { finish(); reject(new Error(`client stuck after ${received} bytes`)) }, ms)
    function finish (): void {
      if (done) return
      done = true
      clearTimeout(timer)
      if (cut.reset) socket.resetAndDestroy()
      else socket.destroy()
    }
    socket.on('error', () => {})
    socket.on('close', () => { finish(); resolve(received) })
    socket.on('connect', () => {
      if (cut.requestBytes !== undefined) {
        socket.write(request.slice(0, cut.requestBytes), () => finish())
        return
      }
      socket.write(request)
      if (cut.responseBytes === 0) finish()
    })
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length
      if (received >= cut.responseBytes || isEnd(chunk)) finish()
    })
  })
}

/**
 * The end of a chunked response: the server may keep the connection open
 * after it (@fastify/sse sets "Connection: keep-alive" even when asked to close).
 */
export function isChunkedEnd (chunk: Buffer): boolean {
  return chunk.length >= 5 && chunk.toString('latin1', chunk.length - 5) === '0\r\n\r\n'
}

/**
 * A WebSocket close frame from the server (opcode 0x88). The handshake is
 * ASCII and the test's frames carry ASCII text, so the byte appears nowhere
 * else; the server then waits for a close frame a raw client never sends.
 */
export function hasCloseFrame (chunk: Buffer): boolean {
  return chunk.includes(0x88)
}

/** Runs `count` jobs, `concurrency` at a time; rejects with the first failure after all settled. */
export async function runAll (count: number, concurrency: number, job: (i: number) => Promise<void>): Promise<void> {
  let next = 0
  const errors: unknown[] = []
  async function worker (): Promise<void> {
    while (next < count) {
      const i = next++
      await job(i).catch(err => { errors.push(err) })
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  if (errors.length > 0) throw new Error(`${errors.length} of ${count} jobs failed; first: ${String(errors[0])}`)
}

/** Counts of the process's active resources by type (sockets, timers...). */
export function resources (): Map<string, number> {
  const counts = new Map<string, number>()
  for (const type of process.getActiveResourcesInfo()) counts.set(type, (counts.get(type) ?? 0) + 1)
  return counts
}

/** The resource types now above `baseline`, as text; '' when none. */
export function aboveBaseline (baseline: Map<string, number>): string {
  const out: string[] = []
  for (const [type, n] of resources()) {
    const base = baseline.get(type) ?? 0
    if (n > base) out.push(`${type}: ${n} > ${base}`)
  }
  return out.join(', ')
}

/** Resolves when `check()` is true, polling; rejects after `ms` with what is still wrong. */
export async function settle (check: () => string, ms = 20_000): Promise<void> {
  const start = Date.now()
  for (;;) {
    const wrong = check()
    if (wrong === '') return
    if (Date.now() - start > ms) throw new Error(`not settled after ${ms} ms: ${wrong}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

const CHUNK = 'x'.repeat(16 * 1024)
const CHUNKS = 64 // 1 MB: most clients leave before the end, a few read it all

/** 1 MB producers on /raw and /ndjson, counted; a fresh seeded plan per test. */
export function chaosStreams (t: Test): { random: () => number, counts: { started: number, stopped: number }, routes: (app: FastifyInstance) => void } {
  const seed = Number(process.env.FAULTLINE_CHAOS_SEED ?? Date.now() % 1_000_000)
  t.comment(`seed ${seed} (FAULTLINE_CHAOS_SEED to replay)`)
  const counts = { started: 0, stopped: 0 }
  async function * producer (signal: AbortSignal): AsyncGenerator<string> {
    counts.started++
    try {
      for (let i = 0; i < CHUNKS && !signal.aborted; i++) {
        if (i % 8 === 0) await new Promise(resolve => setImmediate(resolve)) // as real I/O would
        yield CHUNK
      }
    } finally {
      counts.stopped++
    }
  }
  return {
    random: prng(seed),
    counts,
    routes: app => {
      app.get('/raw', async (_req, reply) => reply.streamSafe(signal => producer(signal)))
      app.get('/ndjson', async (_req, reply) => reply.streamSafe(signal => producer(signal), { framing: 'ndjson' }))
    }
  }
}

/**
 * A client that stops reading and never leaves: sends `request` (and
 * `extra`, e.g. WebSocket frames, once the response begins), reads until
 * `responseBytes` bytes came back, then pauses for good. Resolves with its
 * socket once it has stalled; the test destroys it. Only the server can end
 * such a connection: a bound on what it queues, or a cut after a grace.
 */
export function stallAt (port: number, request: string, responseBytes: number, extra?: Buffer, ms = 15_000): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' })
    let received = 0
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no response to stall in after ${received} bytes`)) }, ms)
    socket.on('error', () => {})
    socket.on('connect', () => { socket.write(request) })
    // A response shorter than `responseBytes` (a problem before the first byte) ends it first.
    socket.on('close', () => {
      clearTimeout(timer)
      resolve(socket)
    })
    socket.on('data', (chunk: Buffer) => {
      if (received === 0 && extra !== undefined) socket.write(extra)
      received += chunk.length
      if (received < responseBytes) return
      socket.pause()
      socket.removeAllListeners('data')
      clearTimeout(timer)
      resolve(socket)
    })
  })
}

/** A masked client text frame of one byte (mask 0: the payload goes as is), `count` times. */
export function tinyFrames (count: number): Buffer {
  return Buffer.concat(Array.from({ length: count }, () => Buffer.from([0x81, 0x81, 0, 0, 0, 0, 0x78])))
}

/** The number of connections the server has open. */
async function openConnections (server: net.Server): Promise<number> {
  return await new Promise((resolve, reject) => server.getConnections((err, n) => { if (err !== null) reject(err); else resolve(n) }))
}

/** Waits (polling, at most `ms`) for the server to have no connection open; resolves with how many are left. */
export async function connectionsLeft (server: net.Server, ms = 30_000): Promise<number> {
  const start = Date.now()
  let open = await openConnections(server)
  while (open > 0 && Date.now() - start < ms) {
    await new Promise(resolve => setTimeout(resolve, 50))
    open = await openConnections(server)
  }
  return open
}
