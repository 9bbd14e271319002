import { createHash } from 'node:crypto'
import type { StreamResume } from '../../index.js'

/** `size` deterministic pseudo-random bytes (xorshift32 from `seed`). */
export function makeBody (size: number, seed = 1): Buffer {
  const body = Buffer.allocUnsafe(size)
  let x = seed >>> 0 || 1
  for (let i = 0; i < size; i++) {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    body[i] = x & 0xff
  }
  return body
}

export function sha256 (data: Uint8Array | Uint8Array[]): string {
  const hash = createHash('sha256')
  for (const part of Array.isArray(data) ? data : [data]) hash.update(part)
  return hash.digest('hex')
}

export interface SliceOptions {
  /** Bytes per chunk. Default 16 KiB. */
  chunk?: number
  /** Throw once this absolute byte offset is reached (the bytes before it are sent). */
  failAt?: number | undefined
  /** Called with each opening (offset, lastEventId). */
  opened?: (resume: StreamResume) => void
  /** Called when the generator finishes for any reason. */
  closed?: () => void
}

/** A source function serving `body` from the requested offset, in chunks, optionally failing at an absolute offset. */
export function sliceSource (body: Uint8Array, options: SliceOptions = {}) {
  const size = options.chunk ?? 16 * 1024
  return async function * (signal: AbortSignal, resume: StreamResume): AsyncGenerator<Uint8Array> {
    options.opened?.(resume)
    try {
      let at = resume.offset
      while (at < body.length && !signal.aborted) {
        let end = Math.min(at + size, body.length)
        const failAt = options.failAt
        if (failAt !== undefined && failAt >= at && failAt < end) end = failAt
        if (end > at) yield body.subarray(at, end)
        at = end
        if (failAt !== undefined && at === failAt) throw new Error(`source broke at byte ${failAt}`)
        await new Promise(resolve => setImmediate(resolve))
      }
    } finally {
      options.closed?.()
    }
  }
}
