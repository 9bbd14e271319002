import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import type { Test } from 'tap'

// A Redis for the BullMQ tests: REDIS_URL when set, else a `redis-server` of
// our own on a free loopback port in a temp dir (no persistence), stopped in
// teardown. Outside CI with neither, the file skips with one line; under
// CI=true that is a failure (.ci/run installs redis-server).

export interface TestRedis {
  /** `{ host, port, … }` for BullMQ's `connection`. */
  connection: { host: string, port: number, password?: string, db?: number }
  url: string
}

const BINARY = process.env.REDIS_SERVER ?? 'redis-server'

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

async function answers (url: string, timeoutMs: number): Promise<boolean> {
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

function connectionOf (url: string): TestRedis['connection'] {
  const u = new URL(url)
  const db = Number(u.pathname.slice(1))
  return {
    host: u.hostname,
    port: Number(u.port || 6379),
    ...(u.password === '' ? {} : { password: decodeURIComponent(u.password) }),
    ...(Number.isInteger(db) && db > 0 ? { db } : {})
  }
}

async function ownServer (t: Test): Promise<TestRedis | string> {
  if (spawnSync(BINARY, ['--version']).status !== 0) return `no ${BINARY} on PATH and no REDIS_URL`
  const dir = mkdtempSync(join(tmpdir(), 'faultline-redis-'))
  let child: ChildProcess | undefined
  t.teardown(async () => {
    if (child !== undefined && child.exitCode === null) {
      const exited = new Promise(resolve => child!.once('exit', resolve))
      child.kill('SIGTERM')
      await exited
    }
    rmSync(dir, { recursive: true, force: true })
  })
  // A free port can be taken between the probe and the bind: try a few.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort()
    child = spawn(BINARY, ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--loglevel', 'warning'], { stdio: 'ignore' })
    const url = `redis://127.0.0.1:${port}`
    const exited = new Promise<false>(resolve => child!.once('exit', () => resolve(false)))
    if (await Promise.race([answers(url, 10_000), exited])) return { connection: connectionOf(url), url }
    child.kill('SIGKILL')
  }
  return `${BINARY} did not start`
}

/**
 * A Redis for this test file, or `undefined` after a one-line skip (outside
 * CI). Under CI=true a missing Redis fails the file.
 */
export async function testRedis (t: Test): Promise<TestRedis | undefined> {
  const url = process.env.REDIS_URL
  let found: TestRedis | string
  if (url !== undefined && url !== '') {
    found = await answers(url, 3000) ? { connection: connectionOf(url), url } : `no Redis answers at REDIS_URL=${url}`
  } else {
    found = await ownServer(t)
  }
  if (typeof found !== 'string') return found
  if (process.env.CI === 'true') throw new Error(`Redis is required under CI=true: ${found}. Install redis-server (.ci/run does) or set REDIS_URL.`)
  t.plan(0, `skipped: ${found} (these BullMQ tests need Redis; they are required under CI=true)`)
  return undefined
}

/** A fresh key prefix, so tests sharing one Redis (REDIS_URL) never see each other's jobs. */
export function uniquePrefix (label: string): string {
  return `faultline-test:${label}:${process.pid}:${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`
}
