import type * as Bullmq from 'bullmq'
import { createRequire } from 'node:module'
import { InternalError, NotImplementedError, ServiceUnavailableError, type Fault } from './fault.js'
import { toFault } from './normalize.js'
import { taskTimedOut } from './background-queue.js'
import { FaultlineMissingPeerError } from './errors.js'
import { LazySignal, retryWait, taskContext, type BackgroundBackoff, type DurableWorkerOptions, type KeepJobs, type TaskDefinition } from './background-tasks.js'

// Named tasks as BullMQ jobs: the producer (enqueue) and the worker (run),
// with the taxonomy's failure policy. Everything BullMQ-specific lives here;
// the plugin sees only `DurableQueue`. `bullmq` is an optional peer: it is
// imported only when the plugin is given `queue`.

export type BullmqModule = typeof Bullmq

/** What a report of a job says about it. */
export interface JobInfo {
  name: string
  jobId: string | undefined
  requestId: string | undefined
  /** Runs made so far. */
  attempts: number
}

export interface DurableQueueOptions {
  bullmq: BullmqModule
  connection: object
  /** The BullMQ queue name. */
  name: string
  prefix: string | undefined
  /** `false`: this process only enqueues. */
  worker: DurableWorkerOptions | false
  removeOnComplete: KeepJobs
  removeOnFail: KeepJobs
  definition: (name: string) => TaskDefinition | undefined
  /** A job failed for good: report it, once. */
  onFailed: (fault: Fault, job: JobInfo) => void
  /** A run failed and BullMQ will run the job again after `delay` ms. */
  onRetry: (fault: Fault, job: JobInfo, delay: number) => void
  /** Shutdown left `count` running jobs in Redis. */
  onLeft: (count: number) => void
  /** BullMQ's own errors (connection, lock renewal). */
  onError: (err: unknown) => void
}

export interface DurableQueue {
  /** Adds a job; resolves with its id. `json` is the payload, already checked. */
  enqueue: (definition: TaskDefinition, json: string, requestId: string | undefined) => Promise<string | undefined>
  /** Starts the worker, if there is one: once every task is defined. */
  start: () => void
  /**
   * Stops taking jobs, waits up to `graceMs` for the running ones, then
   * aborts their signals and leaves them in Redis, where BullMQ's
   * stalled-job check gives them to another worker once their lock expires.
   */
  stop: (graceMs: number) => Promise<void>
  /** Closes the producer's connection. */
  close: () => Promise<void>
}

interface JobData {
  payload: unknown
  requestId?: string | undefined
}

const PLUGIN = 'faultline-background'
const BACKOFF_TYPE = 'faultline:'

/** Whether `err` says that the package `pkg` itself (not one of its dependencies) is not installed. */
function isMissing (err: unknown, pkg: string): boolean {
  const e = err as { code?: unknown, message?: unknown } | null | undefined
  return (e?.code === 'ERR_MODULE_NOT_FOUND' || e?.code === 'MODULE_NOT_FOUND') && String(e.message).includes(`'${pkg}'`)
}

/** `import('bullmq')`, or a register-time error that says to install it. */
export async function importBullmq (load: () => Promise<unknown> = async () => await import('bullmq')): Promise<BullmqModule> {
  try {
    return await load() as BullmqModule
  } catch (err) {
    if (isMissing(err, 'bullmq')) throw new FaultlineMissingPeerError(PLUGIN, 'queue', 'bullmq', 'bullmq ioredis')
    throw err
  }
}

/** Where BullMQ's own `require('ioredis')` finds it: resolved from bullmq's directory, not ours (pnpm, nested installs). */
function resolveIoredis (): string {
  return createRequire(import.meta.resolve('bullmq')).resolve('ioredis')
}

/**
 * BullMQ loads `ioredis` (an optional peer of bullmq) itself, lazily, when
 * `connection` is options rather than a client; without it every connection
 * fails later, in the background. Checked at register time instead: a clear
 * error that says to install it. A client instance (ioredis, node-redis) is
 * used as it is and needs nothing more.
 */
export function checkIoredis (connection: object, resolve: () => unknown = resolveIoredis): void {
  const proto: unknown = Object.getPrototypeOf(connection)
  if (proto !== Object.prototype && proto !== null) return
  try {
    resolve()
  } catch (err) {
    if (isMissing(err, 'ioredis')) throw new FaultlineMissingPeerError(PLUGIN, 'queue', 'ioredis', 'ioredis')
    throw err
  }
}

/** The backoff `enqueue` gave the job: `{ type: 'faultline:<type>', delay }`. */
function backoffOf (type: string | undefined, delay: number): BackgroundBackoff {
  return { type: type === `${BACKOFF_TYPE}fixed` ? 'fixed' : 'exponential', delay }
}

function jobInfo (job: Bullmq.Job): JobInfo {
  const data = job.data as Partial<JobData> | undefined
  const requestId = typeof data?.requestId === 'string' ? data.requestId : undefined
  return { name: job.name, jobId: job.id, requestId, attempts: job.attemptsMade }
}

/** Runs one attempt of a task: its handler, bounded by the task's timeout. */
async function runAttempt (definition: TaskDefinition, payload: unknown, run: ActiveRun, job: Bullmq.Job): Promise<void> {
  const context = taskContext(run.signal, definition.name, job.attemptsMade + 1, jobInfo(job).requestId, job.id)
  const result = new Promise(resolve => { resolve(definition.handler(payload, context)) })
  const ms = definition.timeout
  if (ms === undefined) {
    await result
    return
  }
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    await Promise.race([result, new Promise((_resolve, reject) => {
      timer = setTimeout(() => {
        const fault = taskTimedOut(definition.name, ms)
        run.signal.abort(fault)
        reject(fault)
      }, ms)
    })])
  } finally {
    clearTimeout(timer)
  }
}

interface ActiveRun {
  readonly signal: LazySignal
  readonly name: string
  /** Shutdown cut it short: whatever it does next, the job stays in Redis. */
  cut: boolean
}

export function openBullmqQueue (options: DurableQueueOptions): DurableQueue {
  const { bullmq, connection, name } = options
  // BullMQ's own default, spelled out so the queue and the worker always agree.
  const prefix = options.prefix ?? 'bull'
  const producer = new bullmq.Queue(name, { connection: connection as Bullmq.ConnectionOptions, prefix })
  producer.on('error', options.onError)
  // The fault behind each error this process's processor threw, for the backoff and the report.
  const faults = new WeakMap<Error, Fault>()
  const active = new Set<ActiveRun>()
  let drained: (() => void) | undefined

  function failure (fault: Fault): Error {
    const err = fault.retryable ? new Error(fault.message) : new bullmq.UnrecoverableError(fault.message)
    faults.set(err, fault)
    return err
  }

  async function processor (job: Bullmq.Job): Promise<void> {
    const definition = options.definition(job.name)
    if (definition === undefined) {
      throw failure(new NotImplementedError(`No background task named "${job.name}" is defined on this worker: define it on every worker before it starts`))
    }
    const run: ActiveRun = { signal: new LazySignal(), name: job.name, cut: false }
    active.add(run)
    try {
      await runAttempt(definition, (job.data as JobData).payload, run, job)
    } catch (err) {
      // Cut short by shutdown: never settle, so BullMQ neither fails nor
      // retries the job; it stays active until its lock expires.
      if (run.cut) await new Promise(() => {})
      throw failure(toFault(err))
    } finally {
      active.delete(run)
      if (active.size === 0) drained?.()
    }
  }

  let worker: Bullmq.Worker | undefined
  if (options.worker !== false) {
    const { concurrency, lockDuration, stalledInterval, maxStalledCount } = options.worker
    worker = new bullmq.Worker(name, processor, {
      connection: connection as Bullmq.ConnectionOptions,
      prefix,
      autorun: false,
      concurrency,
      ...(lockDuration === undefined ? {} : { lockDuration }),
      ...(stalledInterval === undefined ? {} : { stalledInterval }),
      ...(maxStalledCount === undefined ? {} : { maxStalledCount }),
      settings: {
        // The taxonomy's backoff: never sooner than the fault's retryAfter.
        backoffStrategy (attemptsMade, type, err, job) {
          const { delay } = (job!.opts as { backoff: { delay: number } }).backoff
          return retryWait(backoffOf(type, delay), attemptsMade, faults.get(err!))
        }
      }
    })
    worker.on('error', options.onError)
    // BullMQ emits `failed` with the job that failed (typed optional).
    worker.on('failed', (job, err) => { jobFailed(job!, err) })
  }

  /** A run failed: reported when BullMQ has failed the job for good (`finishedOn`), else logged as a retry. */
  function jobFailed (job: Bullmq.Job, err: Error): void {
    // BullMQ's own failures (a job stalled or started too many times) carry no fault of ours.
    const fault = faults.get(err) ?? new InternalError(`Background task "${job.name}" failed in the queue: ${err.message}`, { cause: err })
    if (typeof job.finishedOn === 'number') options.onFailed(fault, jobInfo(job))
    else options.onRetry(fault, jobInfo(job), job.delay)
  }

  return {
    async enqueue (definition, json, requestId) {
      const data: JobData = { payload: JSON.parse(json), requestId }
      const job = await producer.add(definition.name, data, {
        attempts: definition.attempts,
        backoff: { type: `${BACKOFF_TYPE}${definition.backoff.type}`, delay: definition.backoff.delay },
        removeOnComplete: options.removeOnComplete,
        removeOnFail: options.removeOnFail
      })
      return job.id
    },

    start () {
      worker?.run().catch(options.onError)
    },

    async stop (graceMs) {
      if (worker === undefined) return
      await worker.pause(true)
      if (active.size > 0) {
        let timer: ReturnType<typeof setTimeout> | undefined
        await new Promise<void>(resolve => {
          drained = resolve
          timer = setTimeout(resolve, graceMs)
        })
        clearTimeout(timer)
      }
      if (active.size === 0) {
        await worker.close()
        return
      }
      for (const run of active) {
        run.cut = true
        run.signal.abort(new ServiceUnavailableError(`Background task "${run.name}" was cut short by server shutdown; it stays in the queue`))
      }
      options.onLeft(active.size)
      await worker.close(true)
    },

    async close () {
      await producer.close()
    }
  }
}
