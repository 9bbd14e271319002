// The one retry policy: every reader and the socket ask it whether and when
// to try again. Modelled on graphql-ws's `shouldRetry` / `retryWait`:
// only retryable faults, exponential backoff with full jitter, capped, and
// never sooner than the fault's `retryAfter`.
import { isFault, type Fault } from '../lib/fault.js'
import { FaultlineInvalidOptionError } from '../lib/errors.js'

export interface RetryPolicy {
  /** Retries after the first try. Default: 5. */
  attempts?: number
  /** Milliseconds: the backoff window of the first retry, doubled for each one after it. Default: 250. */
  baseDelay?: number
  /** Milliseconds: no wait is longer (a fault whose `retryAfter` asks for more is not retried). Default: 30000. */
  maxDelay?: number
}

/** `false` turns retries off; `true` or `undefined` is the default policy. */
export type RetryOption = RetryPolicy | boolean | undefined

const DEFAULTS: Readonly<Required<RetryPolicy>> = Object.freeze({ attempts: 5, baseDelay: 250, maxDelay: 30_000 })
const WHERE = 'fastify-faultline/client'

function isCount (value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0
}

function isMs (value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 && value <= 2 ** 31 - 1
}

/** The policy with its defaults, or `false`. Throws a clear error for a malformed one. */
export function resolveRetry (policy: RetryOption): Readonly<Required<RetryPolicy>> | false {
  if (policy === false) return false
  if (policy === undefined || policy === true) return DEFAULTS
  if (policy === null || typeof policy !== 'object') {
    throw new FaultlineInvalidOptionError(WHERE, 'retry', 'must be false, true or { attempts?, baseDelay?, maxDelay? }')
  }
  const { attempts = DEFAULTS.attempts, baseDelay = DEFAULTS.baseDelay, maxDelay = DEFAULTS.maxDelay } = policy
  if (!isCount(attempts)) throw new FaultlineInvalidOptionError(WHERE, 'retry.attempts', 'must be an integer >= 0')
  if (!isMs(baseDelay)) throw new FaultlineInvalidOptionError(WHERE, 'retry.baseDelay', 'must be a number of milliseconds >= 0')
  if (!isMs(maxDelay)) throw new FaultlineInvalidOptionError(WHERE, 'retry.maxDelay', 'must be a number of milliseconds >= 0')
  return { attempts, baseDelay, maxDelay }
}

/**
 * Whether to try again after `fault`, when `attempt` retries were made
 * already (0 before the first retry): only a retryable fault, only while
 * attempts are left, and only when its `retryAfter` fits within `maxDelay`.
 */
export function shouldRetry (fault: Fault, attempt: number, policy?: RetryOption): boolean {
  const p = resolveRetry(policy)
  if (p === false || !isFault(fault) || fault.retryable !== true) return false
  if (!(attempt < p.attempts)) return false
  return fault.retryAfter === undefined || fault.retryAfter * 1000 <= p.maxDelay
}

/**
 * Milliseconds to wait before retry number `attempt` (0-based): a random
 * delay up to `min(maxDelay, baseDelay * 2^attempt)` (full jitter), and never
 * less than the fault's `retryAfter`.
 */
export function retryDelay (fault: Fault, attempt: number, policy?: RetryOption): number {
  const p = resolveRetry(policy) || DEFAULTS
  const window = Math.min(p.maxDelay, p.baseDelay * 2 ** Math.max(0, attempt))
  const floor = isFault(fault) && fault.retryAfter !== undefined ? fault.retryAfter * 1000 : 0
  return Math.max(floor, Math.floor(Math.random() * window))
}

/** Waits `ms`; rejects with the signal's reason at once when it aborts. */
export function wait (ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(signal.reason)
      return
    }
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(signal!.reason)
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
