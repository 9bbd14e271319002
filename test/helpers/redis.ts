import type { Test } from 'tap'
import { answers, startRedisServer } from './redis-server.js'

// A Redis for the BullMQ tests: REDIS_URL when set, else a `redis-server` of
// our own on a free loopback port, stopped in teardown. Outside CI with
// neither, the file skips with one line; under CI=true that is a failure
// (.ci/run installs redis-server).

export interface TestRedis {
  /** `{ host, port, … }` for BullMQ's `connection`. */
  connection: { host: string, port: number, password?: string, db?: number }
  url: string
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

/**
 * A Redis for this test file, or `undefined` after a one-line skip (outside
 * CI). Under CI=true a missing Redis fails the file.
 */
export async function testRedis (t: Test): Promise<TestRedis | undefined> {
  const url = process.env.REDIS_URL
  let found: string
  if (url !== undefined && url !== '') {
    if (await answers(url, 3000)) return { connection: connectionOf(url), url }
    found = `no Redis answers at REDIS_URL=${url}`
  } else {
    const server = await startRedisServer()
    if (typeof server !== 'string') {
      t.teardown(server.stop)
      return { connection: connectionOf(server.url), url: server.url }
    }
    found = server
  }
  if (process.env.CI === 'true') throw new Error(`Redis is required under CI=true: ${found}. Install redis-server (.ci/run does) or set REDIS_URL.`)
  t.plan(0, `skipped: ${found} (these BullMQ tests need Redis; they are required under CI=true)`)
  return undefined
}

/** A fresh key prefix, so tests sharing one Redis (REDIS_URL) never see each other's jobs. */
export function uniquePrefix (label: string): string {
  return `faultline-test:${label}:${process.pid}:${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`
}
