// What decides whether the Redis-only files are held to the coverage bar
// (test/coverage-map.js): the same answers the BullMQ tests get.
import t from 'tap'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { redisAtHand, redisServerBinary, redisServerRuns, redisUrl } from './helpers/externals.js'

const dir = mkdtempSync(join(tmpdir(), 'faultline-externals-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

function script (name: string, body: string): string {
  const path = join(dir, name)
  writeFileSync(path, `#!/bin/sh\n${body}\n`)
  chmodSync(path, 0o755)
  return path
}

t.test('REDIS_SERVER names the binary, else redis-server on PATH', async t => {
  t.equal(redisServerBinary({}), 'redis-server')
  t.equal(redisServerBinary({ REDIS_SERVER: '/opt/redis/bin/redis-server' }), '/opt/redis/bin/redis-server')
})

t.test('a binary counts when its --version exits 0', async t => {
  t.equal(redisServerRuns(script('ok', 'exit 0')), true)
  t.equal(redisServerRuns(script('broken', 'exit 1')), false)
  t.equal(redisServerRuns(join(dir, 'missing')), false)
})

t.test('REDIS_URL counts unless it is empty', async t => {
  t.equal(redisUrl({}), undefined)
  t.equal(redisUrl({ REDIS_URL: '' }), undefined)
  t.equal(redisUrl({ REDIS_URL: 'redis://127.0.0.1:6390/2' }), 'redis://127.0.0.1:6390/2')
})

t.test('a Redis is at hand with REDIS_URL, or with a redis-server that runs', async t => {
  const missing = join(dir, 'missing')
  t.equal(redisAtHand({ REDIS_URL: 'redis://127.0.0.1:1', REDIS_SERVER: missing }), true)
  t.equal(redisAtHand({ REDIS_URL: '', REDIS_SERVER: missing }), false)
  t.equal(redisAtHand({ REDIS_SERVER: missing }), false)
  t.equal(redisAtHand({ REDIS_SERVER: script('runs', 'exit 0') }), true)
})
