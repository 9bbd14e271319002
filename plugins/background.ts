import fp from 'fastify-plugin'
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { TaskQueue, type BackgroundTaskFn, type QueueStats, type RetryPolicy, type TaskLane } from '../lib/background-queue.js'
import { FaultlineInvalidOptionError, FaultlineInvalidTaskDefinitionError, FaultlineInvalidTaskError } from '../lib/errors.js'
import { PluginOptions, whyInvalidMs } from '../lib/options.js'
import { h2Completed, h2Stream } from '../lib/h2-response.js'
import { holdsReplySymbol, REPLY_NEXT_ERROR_HANDLER } from '../lib/fastify-private.js'
import { describe, ServiceUnavailableError, type Fault } from '../lib/fault.js'
import { toFault } from '../lib/normalize.js'
import {
  defineTask, isCount, isDelay, MAX_DELAY, retryDelay, serializePayload, taskContext,
  type BackgroundDefineOptions, type BackgroundTaskHandler, type DurableWorkerOptions, type KeepJobs, type TaskDefinition
} from '../lib/background-tasks.js'
import { checkIoredis, importBullmq, openBullmqQueue, type DurableQueue, type DurableQueueOptions } from '../lib/background-bullmq.js'

export type { BackgroundDefineOptions, BackgroundTaskHandler, BackgroundTaskContext, BackgroundBackoff } from '../lib/background-tasks.js'

/** Named tasks as BullMQ jobs on Redis (`bullmq` must be installed). */
export interface FaultlineBackgroundQueueOptions {
  /** What BullMQ's `connection` takes: ioredis options (`{ host, port }`) or an ioredis client. */
  connection: object
  /** BullMQ's key prefix. Default: BullMQ's (`bull`). */
  prefix?: string
  /** The BullMQ queue. Default: `faultline`. */
  name?: string
  /**
   * This process's worker: `false` for an instance that only enqueues.
   * Default: a worker running `concurrency` jobs at once (the plugin's).
   */
  worker?: false | Partial<DurableWorkerOptions>
  /** BullMQ's `removeOnComplete` for the jobs this instance enqueues: `true` (default) removes a job once done, a number keeps that many, `false` all. */
  removeOnComplete?: KeepJobs
  /** BullMQ's `removeOnFail` for the jobs this instance enqueues: keeps the last 1000 failed jobs by default; `false` keeps all. */
  removeOnFail?: KeepJobs
}

export interface FaultlineBackgroundOptions {
  /** Tasks running at once, over the whole app. Default: 4. */
  concurrency?: number
  /** Tasks accepted but not started yet (waiting for their response or a slot). Past it, tasks are refused. Default: 1000. */
  maxQueued?: number
  /** How long `fastify.close()` waits for tasks (ms) before aborting them. Default: 10000. */
  shutdownTimeout?: number
  /** Default `timeout` (ms) for every task. Default: none. */
  timeout?: number
  /** Run named tasks as BullMQ jobs instead of in process. */
  queue?: FaultlineBackgroundQueueOptions
}

/** A background task. `signal` aborts on the task's timeout and when shutdown cuts it short. */
export type BackgroundTask = BackgroundTaskFn

export interface BackgroundTaskOptions {
  /** For logs and reporters (`task` field). Default: the function's name, else `anonymous`. */
  name?: string
  /** Milliseconds; then the signal aborts and a `GatewayTimeoutError` is reported. */
  timeout?: number
}

/** Counts of background tasks, for tests and health checks. */
export type BackgroundStats = QueueStats

export interface BackgroundScheduleOptions extends BackgroundTaskOptions {
  /**
   * The request the task belongs to: reported with it, and run after the
   * request's earlier tasks. The response is not awaited (there is no reply
   * here): inside a route, prefer `reply.background()`.
   */
  request?: FastifyRequest
}

/** `fastify.faultline.background`. */
export interface FaultlineBackground {
  /**
   * Defines a named task, for `reply.background(name, payload)`: in process,
   * or with `queue` on any worker. Define every task before the app is ready,
   * on every instance that enqueues or runs it.
   */
  define: <P = any>(name: string, handler: BackgroundTaskHandler<P>, options?: BackgroundDefineOptions) => void
  /**
   * Schedules a task where there is no reply: a WebSocket handler or message
   * listener (pass `request`), a timer, a queue consumer. Same guarantees as
   * `reply.background()`; returns false when the task was refused or skipped.
   */
  schedule: (task: BackgroundTask, options?: BackgroundScheduleOptions) => boolean
  /** Resolves once every task scheduled so far has settled (ran, failed, timed out, skipped). */
  idle: () => Promise<void>
  stats: () => BackgroundStats
}

declare module 'fastify' {
  interface FastifyReply {
    /**
     * Runs `task(signal)` after this response has been completely sent, after
     * the tasks this request scheduled before it. Returns false when the task
     * was refused (queue full, shutting down; reported as
     * `ServiceUnavailableError`) or skipped (the route failed; logged at
     * debug). Tasks are also skipped when the response never completes.
     */
    background: {
      (task: BackgroundTask, options?: BackgroundTaskOptions): boolean
      /**
       * Runs the task `define`d as `name` with `payload` (plain JSON, checked
       * here: anything else throws) after this response has been sent: in
       * process, or as a BullMQ job with `queue`. Same return value.
       */
      (name: string, payload?: unknown): boolean
    }
  }
}

declare module './http.js' {
  interface Faultline {
    /** Set by `faultlineBackground`. */
    background: FaultlineBackground
  }
}

const PLUGIN = 'faultline-background'
const kLane = Symbol('faultline.background.lane')

type Lane = TaskLane<FastifyRequest | undefined>

function storedLane (request: FastifyRequest): Lane | null {
  return (request as unknown as Record<typeof kLane, Lane | null>)[kLane]
}

function setLane (request: FastifyRequest, lane: Lane): void {
  (request as unknown as Record<typeof kLane, Lane | null>)[kLane] = lane
}
const DEFAULTS = { concurrency: 4, maxQueued: 1000, shutdownTimeout: 10_000 }
const QUEUE_DEFAULTS = { name: 'faultline', removeOnComplete: true, removeOnFail: 1000 }
const QUEUE_NAME = /^[\w.-]{1,128}$/

/** The validated `queue` option: what `openBullmqQueue` takes, less what the plugin supplies. */
type QueueSettings = Pick<DurableQueueOptions, 'connection' | 'name' | 'prefix' | 'worker' | 'removeOnComplete' | 'removeOnFail'>

interface Settings {
  concurrency: number
  maxQueued: number
  shutdownTimeout: number
  timeout: number | undefined
  queue: QueueSettings | undefined
}

function invalid (option: string, message: string): never {
  throw new FaultlineInvalidOptionError(PLUGIN, option, message)
}

function isKeepJobs (value: unknown): value is KeepJobs {
  return typeof value === 'boolean' || (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0)
}

function validateWorker (worker: unknown, concurrency: number): DurableWorkerOptions | false {
  if (worker === false) return false
  if (worker === undefined) return { concurrency }
  if (worker === null || typeof worker !== 'object') invalid('queue.worker', `must be false or an object, got ${describe(worker)}`)
  const { concurrency: jobs = concurrency, lockDuration, stalledInterval, maxStalledCount } = worker as Partial<DurableWorkerOptions>
  if (!isCount(jobs)) invalid('queue.worker.concurrency', `must be a positive integer, got ${describe(jobs)}`)
  if (lockDuration !== undefined && !isDelay(lockDuration, 1)) invalid('queue.worker.lockDuration', `must be a number of milliseconds from 1 to ${MAX_DELAY}, got ${describe(lockDuration)}`)
  if (stalledInterval !== undefined && !isDelay(stalledInterval, 1)) invalid('queue.worker.stalledInterval', `must be a number of milliseconds from 1 to ${MAX_DELAY}, got ${describe(stalledInterval)}`)
  if (maxStalledCount !== undefined && !isKeepJobs(maxStalledCount)) invalid('queue.worker.maxStalledCount', `must be a non-negative integer, got ${describe(maxStalledCount)}`)
  return { concurrency: jobs, lockDuration, stalledInterval, maxStalledCount: maxStalledCount as number | undefined }
}

function validateQueue (queue: unknown, concurrency: number): QueueSettings | undefined {
  if (queue === undefined) return undefined
  if (queue === null || typeof queue !== 'object') invalid('queue', `must be an object { connection, prefix?, name?, worker? }, got ${describe(queue)}`)
  const { connection, prefix, name = QUEUE_DEFAULTS.name, worker, removeOnComplete = QUEUE_DEFAULTS.removeOnComplete, removeOnFail = QUEUE_DEFAULTS.removeOnFail } = queue as FaultlineBackgroundQueueOptions
  if (connection === null || typeof connection !== 'object') invalid('queue.connection', `must be what BullMQ's connection takes (ioredis options or an ioredis client), got ${describe(connection)}`)
  if (prefix !== undefined && (typeof prefix !== 'string' || prefix === '')) invalid('queue.prefix', `must be a non-empty string, got ${describe(prefix)}`)
  if (typeof name !== 'string' || !QUEUE_NAME.test(name)) invalid('queue.name', `must be 1 to 128 letters, digits or _ . -, got ${describe(name)}`)
  if (!isKeepJobs(removeOnComplete)) invalid('queue.removeOnComplete', `must be a boolean or a number of jobs to keep, got ${describe(removeOnComplete)}`)
  if (!isKeepJobs(removeOnFail)) invalid('queue.removeOnFail', `must be a boolean or a number of jobs to keep, got ${describe(removeOnFail)}`)
  return { connection, name, prefix, worker: validateWorker(worker, concurrency), removeOnComplete, removeOnFail }
}

function validate (opts: FaultlineBackgroundOptions): Settings {
  const options = new PluginOptions(PLUGIN, opts, ['concurrency', 'maxQueued', 'shutdownTimeout', 'timeout', 'queue'])
  const concurrency = options.count('concurrency', DEFAULTS.concurrency)
  return {
    concurrency,
    maxQueued: options.count('maxQueued', DEFAULTS.maxQueued, 'the queue is always bounded'),
    shutdownTimeout: options.ms('shutdownTimeout', 0, DEFAULTS.shutdownTimeout),
    timeout: options.ms('timeout', 1),
    queue: validateQueue(options.get('queue'), concurrency)
  }
}

function taskSettings (task: unknown, options: unknown, defaultTimeout: number | undefined): { name: string, timeout: number | undefined } {
  if (typeof task !== 'function') throw new FaultlineInvalidTaskError(`task must be a function (signal) => unknown or the name of a defined task, got ${describe(task)}`)
  if (options === undefined) return { name: task.name || 'anonymous', timeout: defaultTimeout }
  if (options === null || typeof options !== 'object') throw new FaultlineInvalidTaskError(`options must be an object, got ${describe(options)}`)
  const { name, timeout } = options as BackgroundTaskOptions
  if (name !== undefined && (typeof name !== 'string' || name === '')) throw new FaultlineInvalidTaskError(`options.name must be a non-empty string, got ${describe(name)}`)
  const badTimeout = timeout === undefined ? undefined : whyInvalidMs(timeout, 1)
  if (badTimeout !== undefined) throw new FaultlineInvalidTaskError(`options.timeout ${badTimeout}`)
  return { name: name ?? (task.name || 'anonymous'), timeout: timeout ?? defaultTimeout }
}

/**
 * Whether the response has been completely sent. light-my-request (`inject`)
 * emits `finish` itself and never sets `writableFinished`: there (its public
 * `isLightMyRequest` flag), a response is complete once it has ended. Over
 * HTTP/2, a stream the client reset counts as finished: its close code tells.
 */
function finished (raw: FastifyReply['raw'] & { isLightMyRequest?: boolean }): boolean {
  const stream = h2Stream(raw)
  if (stream !== undefined) return h2Completed(raw, stream)
  return raw.writableFinished || (raw.writableEnded && raw.isLightMyRequest === true)
}

/**
 * Whether the route failed: Fastify's error handling ran for this reply (the
 * error handler produces the response, and the work meant to follow a
 * success must not run). Fastify sets its next-error-handler slot on a reply
 * before it calls the first error handler, as it runs onError hooks: read
 * here when a task is scheduled or the response closes, so a route that
 * schedules nothing pays nothing on its error path (an onError hook would run
 * for every error of every route).
 */
function routeFailed (reply: FastifyReply): boolean {
  return holdsReplySymbol(reply, REPLY_NEXT_ERROR_HANDLER)
}

const ROUTE_FAILED = 'the route failed'

/**
 * A WebSocket route's request: its reply is hijacked for the upgrade and its
 * raw response never written. The 101 went out before the handler ran.
 * (Node's parser sets `upgrade` on the request; @types/node omits it:
 * test/dependency-internals.test.ts checks it.)
 */
function upgraded (request: FastifyRequest): boolean {
  return (request.raw as { upgrade?: boolean }).upgrade === true
}

async function faultlineBackground_ (fastify: FastifyInstance, opts: FaultlineBackgroundOptions): Promise<void> {
  const settings = validate(opts)
  const faultline = fastify.faultline
  // The request's lane lives on the request (a decorator, so every request
  // has the same shape): a WeakMap entry per request costs the GC far more.
  fastify.decorateRequest(kLane, null)

  const tasks = new Map<string, TaskDefinition>()
  let started = false

  const queue = new TaskQueue<FastifyRequest | undefined>({
    concurrency: settings.concurrency,
    maxQueued: settings.maxQueued,
    onFailure (error, task) {
      const request = task.context
      // Each task is its own occurrence: two tasks failing with one shared error are two reports.
      const context = { transport: 'background', phase: 'after-response', request, task: task.name, dedupe: false } as const
      // A named task run in process (the only kind with a retry policy) says how many runs it made.
      faultline.report(error, task.retry === undefined ? context : { ...context, requestId: request?.id, attempts: task.attempts })
    }
  })

  /** A failed run that will be retried: debug, the final failure alone is reported. */
  function retrying (log: FastifyBaseLogger, fault: Fault, fields: Record<string, unknown>, delay: number): void {
    log.debug({ transport: 'background', fault: { code: fault.code, status: fault.status }, ...fields, delay }, `faultline: background task "${String(fields.task)}" failed (run ${String(fields.attempt)}), retrying in ${delay} ms: ${fault.message}`)
  }

  let durable: DurableQueue | undefined
  if (settings.queue !== undefined) {
    const bullmq = await importBullmq()
    checkIoredis(settings.queue.connection)
    const log = fastify.log
    durable = openBullmqQueue({
      bullmq,
      ...settings.queue,
      definition: name => tasks.get(name),
      onFailed (fault, job) {
        faultline.report(fault, { transport: 'background', phase: 'after-response', task: job.name, requestId: job.requestId, jobId: job.jobId, attempts: job.attempts })
      },
      onRetry (fault, job, delay) {
        retrying(log, fault, { task: job.name, requestId: job.requestId, jobId: job.jobId, attempt: job.attempts }, delay)
      },
      onLeft (count) {
        log.warn({ transport: 'background', left: count }, `faultline: ${count} background job(s) cut short by shutdown stay in the queue; BullMQ runs them again once their lock expires`)
      },
      onError (err) {
        log.error({ transport: 'background', err }, 'faultline: BullMQ error')
      }
    })
  }

  // Requests whose route failed before they scheduled anything share one
  // dropped lane: the error path allocates nothing for them.
  const failedRoute = queue.lane(undefined)
  queue.drop(failedRoute, ROUTE_FAILED)

  function skip (request: FastifyRequest, lane: Lane, reason: string): void {
    const count = queue.drop(lane, reason)
    if (count > 0) request.log.debug({ transport: 'background', skipped: count }, `faultline: ${count} background task(s) skipped: ${reason}`)
  }

  /**
   * The lane of a request's tasks. With the reply, it stays gated until the
   * response has been completely sent; a request whose reply we cannot see
   * (a WebSocket handler gets only the request) opens at once.
   */
  function laneFor (request: FastifyRequest, reply: FastifyReply | undefined): Lane {
    const existing = storedLane(request)
    if (reply !== undefined && routeFailed(reply)) {
      // Scheduled after the failure, or the first word of it for tasks scheduled before.
      if (existing === null) {
        setLane(request, failedRoute)
        return failedRoute
      }
      skip(request, existing, ROUTE_FAILED)
      return existing
    }
    if (existing !== null) return existing
    const lane = queue.lane(request)
    setLane(request, lane)
    if (reply === undefined || upgraded(request) || finished(reply.raw)) {
      queue.open(lane)
    } else {
      // `close` follows `finish` when the response completed, and comes
      // alone when it was cut short.
      const raw = reply.raw
      raw.once('close', () => {
        if (routeFailed(reply)) skip(request, lane, ROUTE_FAILED)
        else if (finished(raw)) queue.open(lane)
        else skip(request, lane, 'the response was not completed')
      })
    }
    return lane
  }

  function push (request: FastifyRequest | undefined, reply: FastifyReply | undefined, fn: Parameters<typeof queue.push>[1], name: string, timeout: number | undefined, retry?: RetryPolicy): boolean {
    let lane: Lane
    if (request === undefined) {
      // Work tied to no request: a lane of its own, open at once.
      lane = queue.lane(undefined)
      queue.open(lane)
    } else {
      lane = laneFor(request, reply)
    }
    const result = queue.push(lane, fn, name, timeout, retry)
    if (result === 'skipped') {
      request!.log.debug({ transport: 'background', task: name }, `faultline: background task skipped: ${lane.dropReason}`)
    }
    return result === 'accepted'
  }

  function schedule (request: FastifyRequest | undefined, reply: FastifyReply | undefined, task: BackgroundTask, options: unknown): boolean {
    const { name, timeout } = taskSettings(task, options, settings.timeout)
    return push(request, reply, task, name, timeout)
  }

  /** `reply.background(name, payload)`: checked now, run (or enqueued) once the response has been sent. */
  function scheduleNamed (request: FastifyRequest, reply: FastifyReply, name: string, payload: unknown): boolean {
    const definition = tasks.get(name)
    if (definition === undefined) throw new FaultlineInvalidTaskError(`no task is defined as ${describe(name)}: define it first with fastify.faultline.background.define(name, handler)`)
    const json = serializePayload(name, payload)
    const requestId = request.id
    if (durable !== undefined) {
      const queued = durable
      return push(request, reply, async () => {
        try {
          await queued.enqueue(definition, json, requestId)
        } catch (err) {
          throw new ServiceUnavailableError(`Background task "${name}" could not be enqueued: ${toFault(err).message}`, { cause: err })
        }
      }, name, settings.timeout)
    }
    // In process: the same policy as on BullMQ, and each run gets its own copy of the payload, as a worker would.
    return push(request, reply, (signal, attempt) => definition.handler(JSON.parse(json), taskContext({ signal }, name, attempt, requestId, undefined)),
      name, definition.timeout, (error, attempt) => {
        const fault = toFault(error)
        const delay = retryDelay(definition, fault, attempt)
        if (delay !== undefined) retrying(request.log, fault, { task: name, requestId, attempt }, delay)
        return delay
      })
  }

  function define (name: string, handler: BackgroundTaskHandler, options?: BackgroundDefineOptions): void {
    const definition = defineTask(name, handler, options, settings.timeout)
    if (tasks.has(definition.name)) throw new FaultlineInvalidTaskDefinitionError(`a task is already defined as "${definition.name}"`)
    // A worker takes jobs once the app is ready: a task defined later would find its jobs already failed as unknown.
    if (started) throw new FaultlineInvalidTaskDefinitionError(`task "${definition.name}": define tasks before the app is ready (before listen(), ready() or the first inject())`)
    tasks.set(definition.name, definition)
  }

  fastify.decorateReply('background', function background (this: FastifyReply, task: BackgroundTask | string, options?: unknown): boolean {
    if (typeof task === 'string') return scheduleNamed(this.request, this, task, options)
    return schedule(this.request, this, task, options)
  } as FastifyReply['background'])

  fastify.addHook('onReady', function faultlineBackgroundOnReady (done) {
    started = true
    durable?.start()
    done()
  })

  fastify.addHook('preClose', function faultlineBackgroundPreClose (done) {
    queue.stopAccepting()
    done()
  })

  fastify.addHook('onClose', async function faultlineBackgroundOnClose () {
    // Enqueues still pending and jobs still running share the grace period.
    await Promise.all([queue.shutdown(settings.shutdownTimeout), durable?.stop(settings.shutdownTimeout)])
    await durable?.close()
  })

  faultline.background = {
    define,
    schedule: (task, options) => schedule(options?.request, undefined, task, options),
    idle: () => queue.idle(),
    stats: () => queue.stats()
  }
}

/**
 * Work after the response (FastAPI's background tasks) whose failures are
 * reported once, as handled, with the request id, and never crash the process.
 */
export const faultlineBackground = fp(faultlineBackground_, {
  name: PLUGIN,
  fastify: '5.x',
  dependencies: ['faultline-http']
})
