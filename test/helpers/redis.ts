import type { Test } from 'tap'
import { answers, startRedisServer } from './redis-server.js'
import { external, MissingExternalError } from './external.js'
import { redisUrl } from './externals.js'

// A Redis for the BullMQ tests: REDIS_URL when set, else a `redis-server` of
// our own on a free loopback port, stopped in teardown. Outside CI with
// neither, the file skips with one line; under CI that is a failure
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
 * A Redis for this test file, or `undefined` when there is none: outside CI
 * the file is then skipped with one line, under CI it fails (see
 * helpers/external.ts).
 */
export async function testRedis (t: Test): Promise<TestRedis | undefined> {
  const fixture = await external(t, 'the BullMQ tests', async () => {
    const url = redisUrl()
    if (url !== undefined) {
      if (await answers(url, 3000)) return { connection: connectionOf(url), url }
      throw new MissingExternalError(`no Redis answers at REDIS_URL=${url}`)
    }
    const server = await startRedisServer()
    if (typeof server === 'string') throw new MissingExternalError(`${server}: install redis-server (apt-get install redis-server; .ci/run does) or set REDIS_URL`)
    t.teardown(server.stop)
    return { connection: connectionOf(server.url), url: server.url }
  })
  return fixture.value
}

/** A fresh key prefix, so tests sharing one Redis (REDIS_URL) never see each other's jobs. */
export function uniquePrefix (label: string): string {
  return `faultline-test:${label}:${process.pid}:${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`
}
