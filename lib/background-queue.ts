import { setMaxListeners } from 'node:events'
import { GatewayTimeoutError, ServiceUnavailableError, type Fault } from './fault.js'

// The bounded task queue behind `reply.background()`. Pure: no Fastify
// state, only timers and AbortControllers. Tasks are grouped in lanes (one
// per request): a lane is gated until its response has been sent, runs its
// tasks one after another in scheduling order, and lanes share a global
// concurrency limit. Every task counts as pending from the moment it is
// accepted, so `idle()` also waits for tasks whose response is still going out.
// A task may carry a retry policy: a failed run is then run again after the
// delay the policy gives, in a lane of its own, still counted as pending.

/** A background task: receives a signal that aborts on its timeout or on shutdown. */
export type BackgroundTaskFn = (signal: AbortSignal) => unknown

/** What the queue runs: the task's signal, and which run this is (1 for the first). */
export type TaskRunFn = (signal: AbortSignal, attempt: number) => unknown

/** Given a run's failure and its number, the delay (ms) before the next run, or `undefined` to give up. */
export type RetryPolicy = (error: unknown, attempt: number) => number | undefined

/** Why a task did not complete normally. */
export type TaskOutcome =
  /** It threw or rejected. */
  | 'failed'
  /** It ran past its `timeout`; its signal was aborted. */
  | 'timed-out'
  /** It was running at shutdown when the grace period ran out; its signal was aborted. */
  | 'cut-short'
  /** It was accepted but had not started when the grace period ran out. */
  | 'not-started'
  /** It was refused at scheduling time: the queue was full or shutting down. */
  | 'refused'

export interface QueuedTask<C> {
  readonly fn: TaskRunFn
  readonly name: string
  /** Per run. */
  readonly timeout: number | undefined
  /** What the task belongs to (the request, for the plugin). */
  readonly context: C
  readonly retry: RetryPolicy | undefined
  /** Runs started so far. */
  attempts: number
}

export interface TaskQueueOptions<C> {
  /** Tasks running at once, over all lanes. */
  concurrency: number
  /** Accepted tasks not started yet (gated or waiting for a slot), over all lanes. */
  maxQueued: number
  /**
   * Called once per task that did not complete normally (for a task with a
   * retry policy: once its policy gave up); the error is a fault for every
   * outcome but `failed`.
   */
  onFailure: (error: unknown, task: QueuedTask<C>, outcome: TaskOutcome) => void
}

/** What `push` did with a task. */
export type PushResult = 'accepted' | 'refused' | 'skipped'

export interface QueueStats {
  /** Accepted and not settled: gated, queued or running. */
  pending: number
  /** Accepted and not started: gated (response not sent yet), waiting for a slot, or for a retry. */
  queued: number
  running: number
}

/** A FIFO with O(1) push and shift: `Array#shift` is O(n) on long queues. */
class Fifo<T> {
  private head: { value: T, next: unknown } | undefined = undefined
  private tail: { value: T, next: unknown } | undefined = undefined
  size = 0

  push (value: T): void {
    const node = { value, next: undefined }
    if (this.tail === undefined) this.head = node
    else this.tail.next = node
    this.tail = node
    this.size++
  }

  /** Empties the FIFO, returning what it held in order. */
  drain (): T[] {
    const out: T[] = []
    while (this.size > 0) out.push(this.shift())
    return out
  }

  /** Only called when `size > 0`. */
  shift (): T {
    const node = this.head!
    this.head = node.next as typeof node | undefined
    if (this.head === undefined) this.tail = undefined
    this.size--
    return node.value
  }
}

type LaneState = 'gated' | 'open' | 'dropped'

/** The tasks of one request. Create with `TaskQueue#lane`. */
export class TaskLane<C> {
  state: LaneState = 'gated'
  running = false
  /** Why the lane was dropped, for the caller's logs. */
  dropReason: string | undefined = undefined
  readonly tasks = new Fifo<QueuedTask<C>>()
  constructor (readonly context: C) {}
}

/**
 * A signal shared by a batch of tasks without a timeout: building an
 * `AbortSignal` is most of a task's cost (see `start`). Such a signal only
 * ever aborts at shutdown, when every running task is cut short at once, so
 * sharing it changes nothing a task can see. A generation serves at most
 * `GENERATION_SIZE` tasks and is dropped once the last of them settles, with
 * whatever listeners they left on it.
 */
interface SignalGeneration {
  readonly controller: AbortController
  readonly signal: AbortSignal
  served: number
  running: number
}

const GENERATION_SIZE = 64

interface Running<C> {
  readonly task: QueuedTask<C>
  readonly lane: TaskLane<C>
  /** The task's own signal, for a task with a timeout. */
  readonly controller: AbortController | undefined
  /** The shared signal, for a task without one. */
  readonly generation: SignalGeneration | undefined
  timer: ReturnType<typeof setTimeout> | undefined
  settled: boolean
}

interface Delayed<C> {
  readonly task: QueuedTask<C>
  timer: ReturnType<typeof setTimeout> | undefined
}

/** The fault a timed-out task is reported with; also its signal's abort reason. */
export function taskTimedOut (name: string, ms: number): Fault {
  return new GatewayTimeoutError(`Background task "${name}" timed out after ${ms} ms`)
}

export class TaskQueue<C> {
  private readonly concurrency: number
  private readonly maxQueued: number
  private readonly onFailure: TaskQueueOptions<C>['onFailure']
  private readonly ready = new Fifo<TaskLane<C>>()
  private readonly active = new Set<Running<C>>()
  /** Lanes holding tasks not started yet, so shutdown can find them. */
  private readonly waitingLanes = new Set<TaskLane<C>>()
  /** Failed tasks waiting for their next run. */
  private readonly delayed = new Set<Delayed<C>>()
  private generation: SignalGeneration | undefined = undefined
  /** Generations with running tasks, so shutdown can abort them. */
  private readonly generations = new Set<SignalGeneration>()
  private idleWaiters: Array<() => void> = []
  private pending = 0
  private queued = 0
  private accepting = true
  private stopped = false
  private pumpScheduled = false

  constructor (options: TaskQueueOptions<C>) {
    this.concurrency = options.concurrency
    this.maxQueued = options.maxQueued
    this.onFailure = options.onFailure
  }

  /** A new lane, gated until `open`. */
  lane (context: C): TaskLane<C> {
    return new TaskLane(context)
  }

  /**
   * Accepts a task into `lane`, unless the lane was dropped, the queue is
   * full or it is shutting down. With `retry`, a run that fails or times out
   * is run again after the delay the policy gives (in a lane of its own).
   */
  push (lane: TaskLane<C>, fn: TaskRunFn, name: string, timeout: number | undefined, retry?: RetryPolicy): PushResult {
    // A dropped lane's tasks would never run, shutting down or not.
    if (lane.state === 'dropped') return 'skipped'
    const task: QueuedTask<C> = { fn, name, timeout, context: lane.context, retry, attempts: 0 }
    if (!this.accepting) {
      this.reportFailure(new ServiceUnavailableError(`Background task "${name}" refused: the server is shutting down`), task, 'refused')
      return 'refused'
    }
    if (this.queued >= this.maxQueued) {
      this.reportFailure(new ServiceUnavailableError(`Background task "${name}" refused: the queue is full (maxQueued ${this.maxQueued})`), task, 'refused')
      return 'refused'
    }
    lane.tasks.push(task)
    this.waitingLanes.add(lane)
    this.pending++
    this.queued++
    if (lane.state === 'open' && !lane.running && lane.tasks.size === 1) this.makeReady(lane)
    return 'accepted'
  }

  /** The lane's response has been sent: its tasks may start. */
  open (lane: TaskLane<C>): void {
    if (lane.state !== 'gated') return
    lane.state = 'open'
    if (lane.tasks.size > 0) this.makeReady(lane)
  }

  /** Discards the lane's tasks without running them (the route failed). Returns how many. */
  drop (lane: TaskLane<C>, reason: string): number {
    const count = this.discard(lane, reason).length
    this.checkIdle()
    return count
  }

  private discard (lane: TaskLane<C>, reason: string): Array<QueuedTask<C>> {
    if (lane.state === 'dropped') return []
    lane.state = 'dropped'
    lane.dropReason = reason
    const tasks = lane.tasks.drain()
    this.waitingLanes.delete(lane)
    this.pending -= tasks.length
    this.queued -= tasks.length
    return tasks
  }

  /** Resolves once every accepted task has settled. */
  idle (): Promise<void> {
    if (this.pending === 0) return Promise.resolve()
    return new Promise(resolve => { this.idleWaiters.push(resolve) })
  }

  stats (): QueueStats {
    return { pending: this.pending, queued: this.queued, running: this.active.size }
  }

  /** From now on, new tasks are refused; accepted ones still run. */
  stopAccepting (): void {
    this.accepting = false
  }

  /**
   * Refuses new tasks, waits up to `graceMs` for the accepted ones, then
   * aborts those still running and discards those not started, reporting
   * each as cut short. Never rejects.
   */
  async shutdown (graceMs: number): Promise<void> {
    this.accepting = false
    if (this.pending > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined
      await Promise.race([
        this.idle(),
        new Promise<void>(resolve => { timer = setTimeout(resolve, graceMs) })
      ])
      clearTimeout(timer)
    }
    if (this.pending === 0) return
    this.stopped = true
    // Every task still running is cut short, so every live shared signal aborts.
    const cut = new ServiceUnavailableError('Background tasks were cut short by server shutdown')
    for (const generation of this.generations) generation.controller.abort(cut)
    for (const run of [...this.active]) {
      const fault = new ServiceUnavailableError(`Background task "${run.task.name}" was cut short by server shutdown`)
      run.controller?.abort(fault)
      this.settle(run, fault, 'cut-short')
    }
    const notStarted = (task: QueuedTask<C>): void => {
      this.reportFailure(new ServiceUnavailableError(`Background task "${task.name}" was not started before server shutdown`), task, 'not-started')
    }
    for (const lane of [...this.waitingLanes]) {
      for (const task of this.discard(lane, 'shutdown')) notStarted(task)
    }
    for (const entry of this.delayed) {
      clearTimeout(entry.timer)
      this.pending--
      this.queued--
      notStarted(entry.task)
    }
    this.delayed.clear()
    this.checkIdle()
  }

  private makeReady (lane: TaskLane<C>): void {
    this.ready.push(lane)
    // Start on a later turn: the code that sent the response (and its
    // completion log) runs first, and a burst of opens is started in one go.
    if (!this.pumpScheduled) {
      this.pumpScheduled = true
      setImmediate(() => {
        this.pumpScheduled = false
        this.pump()
      })
    }
  }

  private pump (): void {
    while (!this.stopped && this.active.size < this.concurrency && this.ready.size > 0) {
      const lane = this.ready.shift()
      // A lane dropped or emptied at shutdown while it waited in `ready`.
      if (lane.state !== 'open' || lane.tasks.size === 0) continue
      this.start(lane)
    }
  }

  private start (lane: TaskLane<C>): void {
    const task = lane.tasks.shift()
    if (lane.tasks.size === 0) this.waitingLanes.delete(lane)
    this.queued--
    lane.running = true
    const attempt = ++task.attempts
    // Reading `controller.signal` builds an EventTarget: about 5 µs, most of
    // a task's cost. Only a task with a timeout needs a signal of its own;
    // the others share one per generation, which aborts at shutdown.
    let run: Running<C>
    let signal: AbortSignal
    if (task.timeout === undefined) {
      const generation = this.sharedSignal()
      signal = generation.signal
      run = { task, lane, controller: undefined, generation, timer: undefined, settled: false }
    } else {
      const ms = task.timeout
      const controller = new AbortController()
      signal = controller.signal
      run = { task, lane, controller, generation: undefined, timer: undefined, settled: false }
      run.timer = setTimeout(() => {
        const fault = taskTimedOut(task.name, ms)
        controller.abort(fault)
        this.settle(run, fault, 'timed-out')
      }, ms)
    }
    this.active.add(run)
    // The executor turns a synchronous throw into a rejection, and resolving
    // with a thenable adopts it (a hostile `then` getter rejects, never throws).
    new Promise(resolve => { resolve(task.fn(signal, attempt)) }).then(
      () => { this.settle(run, undefined, undefined) },
      (err: unknown) => { this.settle(run, err, 'failed') }
    )
  }

  private sharedSignal (): SignalGeneration {
    let generation = this.generation
    if (generation === undefined || generation.served >= GENERATION_SIZE) {
      const controller = new AbortController()
      generation = { controller, signal: controller.signal, served: 0, running: 0 }
      // Up to GENERATION_SIZE tasks may each listen: not a leak.
      setMaxListeners(0, generation.signal)
      this.generation = generation
      this.generations.add(generation)
    }
    generation.served++
    generation.running++
    return generation
  }

  private release (generation: SignalGeneration): void {
    if (--generation.running > 0) return
    this.generations.delete(generation)
    if (this.generation === generation) this.generation = undefined
  }

  /** Ends a running task once: whatever comes first of its result, its timeout, shutdown. Later outcomes are ignored. */
  private settle (run: Running<C>, error: unknown, outcome: TaskOutcome | undefined): void {
    if (run.settled) return
    run.settled = true
    clearTimeout(run.timer)
    this.active.delete(run)
    if (run.generation !== undefined) this.release(run.generation)
    const lane = run.lane
    lane.running = false
    const delay = outcome === 'failed' || outcome === 'timed-out' ? this.retryDelay(run.task, error) : undefined
    if (delay !== undefined) {
      this.later(run.task, delay)
    } else {
      this.pending--
      if (outcome !== undefined) this.reportFailure(error, run.task, outcome)
    }
    if (lane.state === 'open' && lane.tasks.size > 0) this.ready.push(lane)
    this.pump()
    this.checkIdle()
  }

  private retryDelay (task: QueuedTask<C>, error: unknown): number | undefined {
    if (task.retry === undefined || this.stopped) return undefined
    try {
      return task.retry(error, task.attempts)
    } catch {
      // A policy that throws gives up, rather than stall the queue.
      return undefined
    }
  }

  /** Runs a failed task again after `delay` ms, in a lane of its own; it stays pending meanwhile. */
  private later (task: QueuedTask<C>, delay: number): void {
    this.queued++
    this.wait({ task, timer: undefined }, Date.now() + delay)
  }

  /**
   * A timer measures from the event loop's cached clock, which may already
   * be a little behind: re-arm until the wall clock reaches `due`, so a
   * retry never starts sooner than its delay (a fault's `retryAfter`).
   */
  private wait (entry: Delayed<C>, due: number): void {
    entry.timer = setTimeout(() => {
      if (Date.now() < due) {
        this.wait(entry, due)
        return
      }
      this.delayed.delete(entry)
      const lane = this.lane(entry.task.context)
      lane.state = 'open'
      lane.tasks.push(entry.task)
      this.waitingLanes.add(lane)
      this.makeReady(lane)
    }, Math.max(due - Date.now(), 1))
    this.delayed.add(entry)
  }

  /** Hands a task's failure to `onFailure` (report only: the queue moves on either way). */
  private reportFailure (error: unknown, task: QueuedTask<C>, outcome: TaskOutcome): void {
    try {
      this.onFailure(error, task, outcome)
    } catch {
      // The report path does not throw; if a custom onFailure does, the
      // queue must still move on rather than stall or reject.
    }
  }

  private checkIdle (): void {
    if (this.pending !== 0 || this.idleWaiters.length === 0) return
    const waiters = this.idleWaiters
    this.idleWaiters = []
    for (const resolve of waiters) resolve()
  }
}
