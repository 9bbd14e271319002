import { describe, type Fault } from './fault.js'
import { FaultlineInvalidTaskDefinitionError, FaultlineInvalidTaskError } from './errors.js'

// Named background tasks, whatever runs them (the in-process queue or
// BullMQ): their definitions, the failure policy the taxonomy gives them, and
// the rule that a payload is plain JSON. Pure: no Fastify, no BullMQ.

/** What a named task's handler gets besides its payload. */
export interface BackgroundTaskContext {
  /** Aborts on the run's `timeout` and when shutdown cuts the run short. */
  readonly signal: AbortSignal
  /** Which run this is: 1 for the first, 2 for the first retry, … */
  readonly attempt: number
  /** The id of the request that scheduled the task. */
  readonly requestId: string | undefined
  /** The task's name. */
  readonly name: string
  /** The BullMQ job id (with `queue`); `undefined` in process. */
  readonly jobId: string | undefined
}

export type BackgroundTaskHandler<P = any> = (payload: P, context: BackgroundTaskContext) => unknown

export interface BackgroundBackoff {
  /** `exponential`: `delay`, then twice that, and so on; `fixed`: always `delay`. */
  type: 'exponential' | 'fixed'
  /** Milliseconds. */
  delay: number
}

export interface BackgroundDefineOptions {
  /** Runs in all, the first included. Only retryable faults are run again. Default: 3. */
  attempts?: number
  /** Wait before a retry (ms, exponential), or `{ type, delay }`; never shorter than the fault's `retryAfter`. Default: 1000 ms, exponential. */
  backoff?: number | BackgroundBackoff
  /** Milliseconds per run; then the signal aborts and the run fails with a (retryable) `GatewayTimeoutError`. Default: the plugin's `timeout`. */
  timeout?: number
}

/** BullMQ's `removeOnComplete` / `removeOnFail`: keep all (`false`), none (`true`), or the last N. */
export type KeepJobs = boolean | number

/** A BullMQ worker's settings (the types live here so no public type depends on `bullmq`'s). */
export interface DurableWorkerOptions {
  /** Jobs this process runs at once. */
  concurrency: number
  /** BullMQ's job lock (ms): a job whose worker stops renewing it for that long is run again elsewhere. */
  lockDuration?: number | undefined
  /** How often (ms) this worker looks for jobs whose lock expired. */
  stalledInterval?: number | undefined
  /** How many times a job may be recovered that way before it fails. */
  maxStalledCount?: number | undefined
}

export interface TaskDefinition {
  readonly name: string
  readonly handler: BackgroundTaskHandler
  readonly attempts: number
  readonly backoff: BackgroundBackoff
  readonly timeout: number | undefined
}

// setTimeout's limit: larger delays fire at once.
export const MAX_DELAY = 2 ** 31 - 1
export const TASK_DEFAULTS = { attempts: 3, backoff: { type: 'exponential', delay: 1000 } } as const
/** Task names go into Redis keys and log lines: short, printable, no surprises. */
const NAME = /^[\w.:/-]{1,128}$/

export function isCount (value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1
}

export function isDelay (value: unknown, min: number): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= min && value <= MAX_DELAY
}

function invalid (message: string): never {
  throw new FaultlineInvalidTaskDefinitionError(message)
}

function backoffOf (name: string, backoff: unknown): BackgroundBackoff {
  if (backoff === undefined) return { ...TASK_DEFAULTS.backoff }
  if (isDelay(backoff, 0)) return { type: 'exponential', delay: backoff }
  if (backoff !== null && typeof backoff === 'object') {
    const { type, delay } = backoff as Partial<BackgroundBackoff>
    if ((type === 'exponential' || type === 'fixed') && isDelay(delay, 0)) return { type, delay }
  }
  return invalid(`task "${name}": backoff must be milliseconds or { type: 'exponential' | 'fixed', delay }, got ${describe(backoff)}`)
}

/** Validates a `define` call; `defaultTimeout` is the plugin's. */
export function defineTask (name: unknown, handler: unknown, options: unknown, defaultTimeout: number | undefined): TaskDefinition {
  if (typeof name !== 'string' || !NAME.test(name)) invalid(`name must be 1 to 128 letters, digits or _ . : / -, got ${describe(name)}`)
  if (typeof handler !== 'function') invalid(`task "${name}": handler must be a function (payload, { signal, attempt, requestId, name }) => unknown, got ${describe(handler)}`)
  if (options !== undefined && (options === null || typeof options !== 'object')) invalid(`task "${name}": options must be an object, got ${describe(options)}`)
  const { attempts = TASK_DEFAULTS.attempts, backoff, timeout } = (options ?? {}) as BackgroundDefineOptions
  if (!isCount(attempts)) invalid(`task "${name}": attempts must be a positive integer, got ${describe(attempts)}`)
  if (timeout !== undefined && !isDelay(timeout, 1)) invalid(`task "${name}": timeout must be a number of milliseconds from 1 to ${MAX_DELAY}, got ${describe(timeout)}`)
  return { name, handler: handler as BackgroundTaskHandler, attempts, backoff: backoffOf(name, backoff), timeout: timeout ?? defaultTimeout }
}

/** The backoff before the run after run `attempt` (1-based). */
export function backoffDelay (backoff: BackgroundBackoff, attempt: number): number {
  const delay = backoff.type === 'fixed' ? backoff.delay : backoff.delay * 2 ** (attempt - 1)
  return Math.min(delay, MAX_DELAY)
}

/** The wait before the run after run `attempt` failed with `fault`: the backoff, never shorter than the fault's `retryAfter`. */
export function retryWait (backoff: BackgroundBackoff, attempt: number, fault: Fault | undefined): number {
  return Math.min(Math.max(backoffDelay(backoff, attempt), (fault?.retryAfter ?? 0) * 1000), MAX_DELAY)
}

/**
 * The failure policy: run `attempt` failed with `fault`. Only a retryable
 * fault is run again, while attempts remain, after `retryWait`.
 * `undefined`: give up.
 */
export function retryDelay (definition: Pick<TaskDefinition, 'attempts' | 'backoff'>, fault: Fault, attempt: number): number | undefined {
  if (!fault.retryable || attempt >= definition.attempts) return undefined
  return retryWait(definition.backoff, attempt, fault)
}

const MAX_DEPTH = 64

/** Why `value` is not plain JSON (a path and a reason), or `undefined` when it is. */
function jsonProblem (value: unknown, path: string, ancestors: object[]): string | undefined {
  switch (typeof value) {
    case 'string': case 'boolean': return undefined
    case 'number': return Number.isFinite(value) ? undefined : `${path} is ${String(value)}, which JSON turns into null`
    case 'object': break
    default: return `${path} is ${typeof value === 'function' ? 'a function' : typeof value === 'undefined' ? 'undefined' : `a ${typeof value}`}, which JSON cannot carry`
  }
  if (value === null) return undefined
  if (ancestors.includes(value)) return `${path} refers back to one of its parents (a cycle)`
  if (ancestors.length >= MAX_DEPTH) return `${path} is nested more than ${MAX_DEPTH} levels deep`
  ancestors.push(value)
  try {
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        if (!(i in value)) return `${path}[${i}] is a hole, which JSON turns into null`
        const problem = jsonProblem(value[i], `${path}[${i}]`, ancestors)
        if (problem !== undefined) return problem
      }
      return undefined
    }
    const proto = Object.getPrototypeOf(value)
    if (proto !== Object.prototype && proto !== null) {
      const kind = typeof proto?.constructor?.name === 'string' && proto.constructor.name !== '' ? proto.constructor.name : 'class instance'
      return `${path} is a ${kind}, not a plain object${kind === 'Date' ? ' (pass date.toISOString())' : ''}`
    }
    if (Object.getOwnPropertySymbols(value).length > 0) return `${path} has symbol keys, which JSON drops`
    for (const key of Object.keys(value)) {
      const problem = jsonProblem((value as Record<string, unknown>)[key], `${path}.${key}`, ancestors)
      if (problem !== undefined) return problem
    }
    return undefined
  } finally {
    ancestors.pop()
  }
}

/**
 * A task's payload as JSON text, or `FST_FAULTLINE_INVALID_TASK` when it is
 * not plain JSON (what BullMQ stores, and what a worker gets back): every
 * value must come back from `JSON.parse` as it went in. Never lets a hostile
 * value (a throwing getter, a revoked Proxy) escape as anything else.
 */
export function serializePayload (name: string, payload: unknown): string {
  let problem: string | undefined
  try {
    problem = jsonProblem(payload, 'payload', [])
    if (problem === undefined) return JSON.stringify(payload)
  } catch {
    problem = 'payload could not be read (a getter or Proxy threw)'
  }
  throw new FaultlineInvalidTaskError(`the payload of task "${name}" must be plain JSON (null, booleans, finite numbers, strings, arrays, plain objects): ${problem}`)
}

/**
 * A signal built on first read: most handlers never look at theirs, and an
 * `AbortSignal` costs more than the rest of a run's bookkeeping.
 */
export class LazySignal {
  private controller: AbortController | undefined = undefined
  private reason: unknown = undefined
  aborted = false

  get signal (): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController()
      if (this.aborted) this.controller.abort(this.reason)
    }
    return this.controller.signal
  }

  abort (reason: unknown): void {
    if (this.aborted) return
    this.aborted = true
    this.reason = reason
    this.controller?.abort(reason)
  }
}

/** The handler's context; `signal` is read from `source` only when the handler reads it. */
export function taskContext (source: { readonly signal: AbortSignal }, name: string, attempt: number, requestId: string | undefined, jobId: string | undefined): BackgroundTaskContext {
  return {
    get signal () { return source.signal },
    attempt,
    requestId,
    name,
    jobId
  }
}
