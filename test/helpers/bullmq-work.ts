import type { Redis } from 'ioredis'
import { ForbiddenError, type BackgroundDefineOptions, type BackgroundTaskHandler } from '../../index.js'

// The task of the crash test. Each run is recorded (`runs`); one in 25 is
// slow (counted in `slow:<worker>` while it runs; `slowMs` long, so the
// worker that is to be killed holds its slow runs until the kill, whatever
// the machine's load); every 50th id
// is forbidden (fails at once, reported); the others apply their effect
// through an idempotency record: the effect (a push to `effects`) and the
// record (`done`) in one atomic script, so a run that BullMQ repeats, because
// its first worker died after the effect, finds it done and applies nothing.

export const WORK_OPTIONS: BackgroundDefineOptions = { attempts: 3, backoff: 100 }

export const isForbidden = (id: number): boolean => id % 50 === 0
export const isSlow = (id: number): boolean => id % 25 === 1

const APPLY_ONCE = `
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  return 1
end
return 0`

export function workTask (redis: Redis, prefix: string, worker: string, slowMs = 1500): BackgroundTaskHandler<{ id: number }> {
  return async ({ id }) => {
    await redis.rpush(`${prefix}:runs`, `${worker} ${id}`)
    // Some tasks are slow: a kill while one runs surely cuts it short.
    const slow = isSlow(id)
    if (slow) await redis.incr(`${prefix}:slow:${worker}`)
    try {
      await new Promise(resolve => setTimeout(resolve, slow ? slowMs : 10 + (id % 7) * 5))
      if (isForbidden(id)) throw new ForbiddenError(`task ${id} is forbidden`)
      await redis.eval(APPLY_ONCE, 2, `${prefix}:done`, `${prefix}:effects`, String(id))
    } finally {
      if (slow) await redis.decr(`${prefix}:slow:${worker}`)
    }
  }
}
