// How the suite finds what npm cannot install, in plain JavaScript: tap
// loads test/coverage-map.js without a TypeScript loader, and it must
// decide as the tests do (helpers/external.ts, helpers/redis-server.ts).
import { spawnSync } from 'node:child_process'

/** True when `CI` is set to anything but empty, `0` or `false` (what CI services and `.ci/run` set). */
export function inCI (env = process.env) {
  const ci = env.CI
  return ci !== undefined && ci !== '' && ci !== '0' && ci.toLowerCase() !== 'false'
}

/** The redis-server the BullMQ tests start: `REDIS_SERVER`, else `redis-server` on PATH. */
export function redisServerBinary (env = process.env) {
  return env.REDIS_SERVER ?? 'redis-server'
}

/** Whether `binary` runs (`--version` exits 0). */
export function redisServerRuns (binary = redisServerBinary()) {
  return spawnSync(binary, ['--version']).status === 0
}

/** `REDIS_URL`, unless unset or empty: the Redis the BullMQ tests use instead of starting their own. */
export function redisUrl (env = process.env) {
  const url = env.REDIS_URL
  return url === '' ? undefined : url
}

/** Whether the BullMQ tests have a Redis: `REDIS_URL`, else a redis-server that runs. */
export function redisAtHand (env = process.env) {
  return redisUrl(env) !== undefined || redisServerRuns(redisServerBinary(env))
}
