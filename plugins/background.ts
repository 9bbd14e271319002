import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { TaskQueue, type BackgroundTaskFn, type QueueStats, type TaskLane } from '../lib/background-queue.js'
import { FaultlineInvalidTaskError } from '../lib/errors.js'
import { PluginOptions, whyInvalidMs } from '../lib/options.js'
import { h2Completed, h2Stream } from '../lib/h2-response.js'
import { describe } from '../lib/fault.js'

export interface FaultlineBackgroundOptions {
  /** Tasks running at once, over the whole app. Default: 4. */
  concurrency?: number
  /** Tasks accepted but not started yet (waiting for their response or a slot). Past it, tasks are refused. Default: 1000. */
  maxQueued?: number
  /** How long `fastify.close()` waits for tasks (ms) before aborting them. Default: 10000. */
  shutdownTimeout?: number
  /** Default `timeout` (ms) for every task. Default: none. */
  timeout?: number
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
    background: (task: BackgroundTask, options?: BackgroundTaskOptions) => boolean
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

interface Settings {
  concurrency: number
  maxQueued: number
  shutdownTimeout: number
  timeout: number | undefined
}

function validate (opts: FaultlineBackgroundOptions): Settings {
  const options = new PluginOptions(PLUGIN, opts, ['concurrency', 'maxQueued', 'shutdownTimeout', 'timeout'])
  return {
    concurrency: options.count('concurrency', DEFAULTS.concurrency),
    maxQueued: options.count('maxQueued', DEFAULTS.maxQueued, 'the queue is always bounded'),
    shutdownTimeout: options.ms('shutdownTimeout', 0, DEFAULTS.shutdownTimeout),
    timeout: options.ms('timeout', 1)
  }
}

function taskSettings (task: unknown, options: unknown, defaultTimeout: number | undefined): { name: string, timeout: number | undefined } {
  if (typeof task !== 'function') throw new FaultlineInvalidTaskError(`task must be a function (signal) => unknown, got ${describe(task)}`)
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
 * A WebSocket route's request: its reply is hijacked for the upgrade and its
 * raw response never written. The 101 went out before the handler ran.
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

  const queue = new TaskQueue<FastifyRequest | undefined>({
    concurrency: settings.concurrency,
    maxQueued: settings.maxQueued,
    onFailure (error, task) {
      // Each task is its own occurrence: two tasks failing with one shared error are two reports.
      faultline.report(error, { transport: 'background', phase: 'after-response', request: task.context, task: task.name, dedupe: false })
    }
  })

  // Requests whose route failed before they scheduled anything share one
  // dropped lane: the error path allocates nothing for them.
  const failedRoute = queue.lane(undefined)
  queue.drop(failedRoute, 'the route failed')

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
        if (finished(raw)) queue.open(lane)
        else skip(request, lane, 'the response was not completed')
      })
    }
    return lane
  }

  function schedule (request: FastifyRequest | undefined, reply: FastifyReply | undefined, task: BackgroundTask, options: unknown): boolean {
    const { name, timeout } = taskSettings(task, options, settings.timeout)
    let lane: Lane
    if (request === undefined) {
      // Work tied to no request: a lane of its own, open at once.
      lane = queue.lane(undefined)
      queue.open(lane)
    } else {
      lane = laneFor(request, reply)
    }
    const result = queue.push(lane, task, name, timeout)
    if (result === 'skipped') {
      request!.log.debug({ transport: 'background', task: name }, `faultline: background task skipped: ${lane.dropReason}`)
    }
    return result === 'accepted'
  }

  fastify.decorateReply('background', function background (this: FastifyReply, task: BackgroundTask, options?: BackgroundTaskOptions): boolean {
    return schedule(this.request, this, task, options)
  })

  // The route failed: the error handler produces the response, and the work
  // meant to follow a success must not run.
  fastify.addHook('onError', function faultlineBackgroundOnError (request, _reply, _error, done) {
    const lane = storedLane(request)
    if (lane !== null) skip(request, lane, 'the route failed')
    else setLane(request, failedRoute)
    done()
  })

  fastify.addHook('preClose', function faultlineBackgroundPreClose (done) {
    queue.stopAccepting()
    done()
  })

  fastify.addHook('onClose', async function faultlineBackgroundOnClose () {
    await queue.shutdown(settings.shutdownTimeout)
  })

  faultline.background = {
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
