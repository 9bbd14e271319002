import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { redisServerBinary, redisServerRuns } from './externals.js'

// Starts a throwaway `redis-server` on a free loopback port in a temp dir
// (no persistence), for the BullMQ tests and the enqueue benchmark.

export interface RedisServer {
  url: string
  stop: () => Promise<void>
}

const BINARY = redisServerBinary()

function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

/** Whether a Redis answers PING at `url` within `timeoutMs`. */
export async function answers (url: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 500 })
    client.on('error', () => {})
    try {
      await client.connect()
      if (await client.ping() === 'PONG') return true
    } catch {
      // not up yet
    } finally {
      client.disconnect()
    }
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  return false
}

/** A running server, or why there is none. */
export async function startRedisServer (): Promise<RedisServer | string> {
  if (!redisServerRuns(BINARY)) return `no ${BINARY} on PATH and no REDIS_URL`
  const dir = mkdtempSync(join(tmpdir(), 'faultline-redis-'))
  // A free port can be taken between the probe and the bind: try a few.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort()
    const child: ChildProcess = spawn(BINARY, ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--loglevel', 'warning'], { stdio: 'ignore' })
    const url = `redis://127.0.0.1:${port}`
    const exited = new Promise<false>(resolve => child.once('exit', () => resolve(false)))
    if (await Promise.race([answers(url, 10_000), exited])) {
      return {
        url,
        async stop () {
          if (child.exitCode === null && child.signalCode === null) {
            child.kill('SIGTERM')
            await exited
          }
          rmSync(dir, { recursive: true, force: true })
        }
      }
    }
    child.kill('SIGKILL')
  }
  rmSync(dir, { recursive: true, force: true })
  return `${BINARY} did not start`
}
