import t from 'tap'
import { TaskQueue, taskTimedOut, type QueuedTask, type TaskOutcome } from '../lib/background-queue.js'
import { FaultlineInvalidTaskError } from '../lib/errors.js'
import { isFault } from '../index.js'
import { guardProcess } from './helpers/guard.js'

guardProcess(t)

type Failure = [string, TaskOutcome, unknown]

function queue (concurrency = 2, maxQueued = 100): { q: TaskQueue<string>, failures: Failure[] } {
  const failures: Failure[] = []
  const q = new TaskQueue<string>({
    concurrency,
    maxQueued,
    onFailure (error, task: QueuedTask<string>, outcome) { failures.push([task.name, outcome, error]) }
  })
  return { q, failures }
}

function deferred (): { promise: Promise<void>, resolve: () => void } {
  let resolve!: () => void
  const promise = new Promise<void>(_resolve => { resolve = _resolve })
  return { promise, resolve }
}

t.test('a gated lane holds its tasks until opened; idle() counts them from acceptance', async t => {
  const { q } = queue()
  const lane = q.lane('req-1')
  let ran = 0
  t.equal(q.push(lane, () => { ran++ }, 'a', undefined), 'accepted')
  t.same(q.stats(), { pending: 1, queued: 1, running: 0 })
  let idle = false
  const waiting = q.idle().then(() => { idle = true })
  await new Promise(resolve => setImmediate(resolve))
  t.equal(ran, 0, 'not started while gated')
  t.equal(idle, false)
  q.open(lane)
  q.open(lane) // opening twice is harmless
  await waiting
  t.equal(ran, 1)
  t.same(q.stats(), { pending: 0, queued: 0, running: 0 })
})

t.test('lanes run their tasks in order, one at a time; lanes share the concurrency limit', async t => {
  const { q } = queue(2)
  const log: string[] = []
  const hold = deferred()
  let peak = 0
  const track = (label: string, wait?: Promise<void>) => async () => {
    log.push(`${label}:start`)
    peak = Math.max(peak, q.stats().running)
    await wait
    log.push(`${label}:end`)
  }
  const a = q.lane('a')
  const b = q.lane('b')
  const c = q.lane('c')
  q.open(a); q.open(b); q.open(c)
  q.push(a, track('a1', hold.promise), 'a1', undefined)
  q.push(a, track('a2'), 'a2', undefined)
  q.push(b, track('b1', hold.promise), 'b1', undefined)
  q.push(c, track('c1'), 'c1', undefined)
  await new Promise(resolve => setImmediate(resolve))
  t.same(log, ['a1:start', 'b1:start'], 'two slots, the first task of each of two lanes')
  hold.resolve()
  await q.idle()
  t.equal(peak, 2)
  t.ok(log.indexOf('a1:end') < log.indexOf('a2:start'), 'a2 waits for a1')
  t.same(log.filter(x => x.startsWith('a')), ['a1:start', 'a1:end', 'a2:start', 'a2:end'])
})

t.test('pushing into an open, idle lane starts it; a busy lane queues behind its running task', async t => {
  const { q } = queue(1)
  const lane = q.lane('x')
  q.open(lane)
  const order: string[] = []
  q.push(lane, async () => { order.push('1') }, '1', undefined)
  q.push(lane, () => { order.push('2') }, '2', undefined)
  await q.idle()
  q.push(lane, () => { order.push('3') }, '3', undefined)
  await q.idle()
  t.same(order, ['1', '2', '3'])
})

t.test('failures: thrown, rejected, timed out; a failing onFailure does not stall the queue', async t => {
  const failures: Failure[] = []
  const q = new TaskQueue<string>({
    concurrency: 1,
    maxQueued: 10,
    onFailure (error, task, outcome) {
      failures.push([task.name, outcome, error])
      throw new Error('reporter exploded')
    }
  })
  const lane = q.lane('r')
  q.open(lane)
  const boom = new Error('boom')
  q.push(lane, () => { throw boom }, 'sync', undefined)
  q.push(lane, async () => { throw boom }, 'async', undefined)
  let lateRejection = false
  q.push(lane, signal => new Promise((resolve, reject) => {
    signal.addEventListener('abort', () => { setImmediate(() => { lateRejection = true; reject(new Error('late')) }) })
  }), 'slow', 10)
  let after = false
  q.push(lane, () => { after = true }, 'after', undefined)
  await q.idle()
  t.equal(after, true, 'the queue moved on')
  t.same(failures.map(f => [f[0], f[1]]), [['sync', 'failed'], ['async', 'failed'], ['slow', 'timed-out']])
  t.equal(failures[0]![2], boom)
  t.ok(isFault(failures[2]![2]))
  t.equal((failures[2]![2] as { code: string }).code, 'GATEWAY_TIMEOUT')
  await new Promise(resolve => setImmediate(resolve))
  await new Promise(resolve => setImmediate(resolve))
  t.equal(lateRejection, true)
  t.equal(failures.length, 3, 'the late rejection after the timeout is ignored')
})

t.test('maxQueued bounds tasks not started yet, gated ones included', async t => {
  const { q, failures } = queue(1, 3)
  const gated = q.lane('gated')
  t.same([1, 2, 3, 4].map(n => q.push(gated, () => {}, `t${n}`, undefined)), ['accepted', 'accepted', 'accepted', 'refused'])
  t.same(failures.map(f => [f[0], f[1], (f[2] as { code: string }).code]), [['t4', 'refused', 'SERVICE_UNAVAILABLE']])
  t.same(q.stats(), { pending: 3, queued: 3, running: 0 })
  q.open(gated)
  await q.idle()
})

t.test('drop discards a lane; later pushes are skipped; an emptied lane left in the ready list is passed over', async t => {
  const { q, failures } = queue(1)
  const busy = q.lane('busy')
  const other = q.lane('other')
  q.open(busy)
  q.open(other)
  const hold = deferred()
  let otherRan = false
  q.push(busy, () => hold.promise, 'hold', undefined)
  await new Promise(resolve => setImmediate(resolve))
  q.push(other, () => { otherRan = true }, 'o1', undefined) // waits in the ready list
  t.equal(q.drop(other, 'gone'), 1)
  t.equal(q.drop(other, 'again'), 0, 'dropping twice drops nothing')
  t.equal(other.dropReason, 'gone')
  t.equal(q.push(other, () => {}, 'o2', undefined), 'skipped')
  q.open(other) // a dropped lane stays dropped
  hold.resolve()
  await q.idle()
  t.equal(otherRan, false)
  t.same(failures, [])
})

t.test('shutdown: waits for tasks to settle within the grace period', async t => {
  const { q, failures } = queue()
  await q.shutdown(10) // nothing pending: returns at once
  const { q: q2, failures: f2 } = queue()
  const lane = q2.lane('l')
  q2.open(lane)
  let done = false
  q2.push(lane, async () => { await new Promise(resolve => setImmediate(resolve)); done = true }, 'quick', undefined)
  await q2.shutdown(60_000)
  t.equal(done, true)
  t.same([...failures, ...f2], [])
  t.equal(q2.push(lane, () => {}, 'late', undefined), 'refused')
  t.same(f2.map(f => [f[0], f[1]]), [['late', 'refused']])
})

t.test('shutdown: after the grace period, aborts running tasks and discards the rest, reporting each', async t => {
  const { q, failures } = queue(1)
  const open = q.lane('open')
  const gated = q.lane('gated')
  q.open(open)
  let reason: unknown
  const started = deferred()
  q.push(open, signal => {
    started.resolve()
    signal.addEventListener('abort', () => { reason = signal.reason })
    return new Promise(() => {})
  }, 'stuck', undefined)
  q.push(open, () => {}, 'next-in-lane', undefined)
  q.push(gated, () => {}, 'gated', undefined)
  await started.promise
  q.stopAccepting()
  t.equal(q.push(open, () => {}, 'refused', undefined), 'refused')
  const idle = q.idle()
  await q.shutdown(5)
  await idle
  t.same(failures.map(f => [f[0], f[1]]), [
    ['refused', 'refused'],
    ['stuck', 'cut-short'],
    ['next-in-lane', 'not-started'],
    ['gated', 'not-started']
  ])
  t.equal((reason as { code: string }).code, 'SERVICE_UNAVAILABLE', 'the signal aborts with a shutdown fault')
  t.same(q.stats(), { pending: 0, queued: 0, running: 0 })
  q.open(gated) // a response that finishes after shutdown starts nothing
  await new Promise(resolve => setImmediate(resolve))
  t.same(q.stats(), { pending: 0, queued: 0, running: 0 })
})

t.test('every task gets a real signal that aborts at shutdown, however it is declared', async t => {
  const { q, failures } = queue(4)
  const lane = (name: string): ReturnType<typeof q.lane> => { const l = q.lane(name); q.open(l); return l }
  const signals: AbortSignal[] = []
  const hang = (): Promise<void> => new Promise(() => {})
  const fallback = new AbortController().signal
  // Declarations whose `length` is 0: a rest parameter, a default value, `arguments`.
  q.push(lane('rest'), (...args: unknown[]) => { signals.push(args[0] as AbortSignal); return hang() }, 'rest', undefined)
  q.push(lane('default'), (signal = fallback) => { signals.push(signal); return hang() }, 'default', undefined)
  q.push(lane('arguments'), function () { signals.push(arguments[0]); return hang() }, 'arguments', undefined)
  q.push(lane('timed'), (...args: unknown[]) => { signals.push(args[0] as AbortSignal); return hang() }, 'timed', 60_000)
  while (signals.length < 4) await new Promise(resolve => setImmediate(resolve))
  t.ok(signals.every(s => s instanceof AbortSignal && !s.aborted && s !== fallback))
  await q.shutdown(1)
  t.ok(signals.every(s => s.aborted), 'each one aborted')
  t.same(failures.map(f => [f[0], f[1]]), [['rest', 'cut-short'], ['default', 'cut-short'], ['arguments', 'cut-short'], ['timed', 'cut-short']])
  t.equal(signals[3]!.reason, failures[3]![2], 'a task with a timeout has its own signal: the reason is its reported fault')
  t.equal((signals[0]!.reason as { code: string }).code, 'SERVICE_UNAVAILABLE', 'a shared signal aborts with a shutdown fault')
})

t.test('tasks without a timeout share a signal per generation of at most 64 tasks; a settled generation is dropped', async t => {
  const { q } = queue(100, 1000)
  const lane = (): ReturnType<typeof q.lane> => { const l = q.lane('x'); q.open(l); return l }
  const signals: AbortSignal[] = []
  const hold = deferred()
  for (let i = 0; i < 65; i++) q.push(lane(), (signal: AbortSignal) => { signals.push(signal); return hold.promise }, `t${i}`, undefined)
  q.push(lane(), (signal: AbortSignal) => { signals.push(signal) }, 'timed', 1000)
  while (signals.length < 66) await new Promise(resolve => setImmediate(resolve))
  t.equal(new Set(signals.slice(0, 64)).size, 1, 'the first 64 share one')
  t.not(signals[64], signals[0], 'the 65th starts a new generation')
  t.not(signals[65], signals[64], 'a task with a timeout has its own')
  hold.resolve()
  await q.idle()
  q.push(lane(), (signal: AbortSignal) => { signals.push(signal) }, 'after', undefined)
  await q.idle()
  t.not(signals[66], signals[64], 'a generation whose tasks all settled is not reused')
  t.equal(signals[0]!.aborted, false)
})

t.test('a retry policy runs a failed task again after its delay, counting it pending; giving up reports once', async t => {
  const { q, failures } = queue(2)
  const lane = q.lane('r')
  q.open(lane)
  const runs: Array<[number, number]> = []
  const asked: Array<[string, number]> = []
  const started = Date.now()
  q.push(lane, (_signal, attempt) => {
    runs.push([attempt, Date.now() - started])
    if (attempt < 3) throw new Error(`boom ${attempt}`)
  }, 'flaky', undefined, (error, attempt) => { asked.push([(error as Error).message, attempt]); return 20 })
  q.push(lane, (_signal, attempt) => { runs.push([attempt * 10, 0]); return new Promise(() => {}) }, 'slow', 5, (error, attempt) => {
    asked.push([(error as { code: string }).code, attempt])
    return attempt < 2 ? 0 : undefined
  })
  await new Promise(resolve => setImmediate(resolve))
  t.equal(q.stats().pending, 2)
  await q.idle()
  t.same(runs.map(r => r[0]).sort((a, b) => a - b), [1, 2, 3, 10, 20])
  t.ok(runs.filter(r => r[0] <= 3).every(([attempt, at]) => at >= (attempt - 1) * 20 - 2), 'each retry waits its delay')
  t.same([...asked].sort(), [['GATEWAY_TIMEOUT', 1], ['GATEWAY_TIMEOUT', 2], ['boom 1', 1], ['boom 2', 2]], 'the policy sees each failure and its attempt')
  t.same(failures.map(f => [f[0], f[1]]), [['slow', 'timed-out']], 'only the task the policy gave up on is reported')
  t.same(q.stats(), { pending: 0, queued: 0, running: 0 })
})

t.test('a retry whose timer fires before the wall clock reaches its due time waits the rest', async t => {
  const { q } = queue(1)
  const lane = q.lane('clock')
  q.open(lane)
  const realNow = Date.now
  t.teardown(() => { Date.now = realNow })
  const runs: number[] = []
  let calls = -1
  // Calls after the policy: the due time, the timer's delay, then the check when it fires: that one lags.
  Date.now = () => (++calls === 3 ? realNow() - 1000 : realNow())
  q.push(lane, (_signal, attempt) => {
    runs.push(realNow())
    if (attempt === 1) throw new Error('again')
  }, 'clock', undefined, () => { calls = 0; return 30 })
  await q.idle()
  Date.now = realNow
  t.equal(runs.length, 2)
  t.ok(calls >= 5, 'the timer was re-armed once the lagging clock said it was early (then: its delay, its check)')
  t.ok(runs[1]! - runs[0]! >= 30, 'never sooner than the delay')
})

t.test('a retry policy that throws gives up; a retry waiting at shutdown is reported as not started', async t => {
  const { q, failures } = queue(2)
  const lane = q.lane('p')
  q.open(lane)
  q.push(lane, () => { throw new Error('x') }, 'bad-policy', undefined, () => { throw new Error('policy') })
  await q.idle()
  t.same(failures.map(f => [f[0], f[1]]), [['bad-policy', 'failed']])
  q.push(lane, () => { throw new Error('y') }, 'waiting', undefined, () => 60_000)
  while (q.stats().running > 0 || q.stats().queued === 0) await new Promise(resolve => setImmediate(resolve))
  t.same(q.stats(), { pending: 1, queued: 1, running: 0 }, 'a task waiting for its retry is queued')
  await q.shutdown(5)
  t.same(failures.map(f => [f[0], f[1]]), [['bad-policy', 'failed'], ['waiting', 'not-started']])
  t.same(q.stats(), { pending: 0, queued: 0, running: 0 })
})

t.test('taskTimedOut and the misuse error', async t => {
  const fault = taskTimedOut('job', 25)
  t.equal(fault.status, 504)
  t.equal(fault.message, 'Background task "job" timed out after 25 ms')
  const err = new FaultlineInvalidTaskError('task must be a function')
  t.equal(err.code, 'FST_FAULTLINE_INVALID_TASK')
  t.ok(err instanceof TypeError)
})

t.test('a dropped lane skips its tasks even while shutting down: they would never run either way', async t => {
  const { q, failures } = queue()
  const dropped = q.lane('failed route')
  q.drop(dropped, 'the route failed')
  q.stopAccepting()
  t.equal(q.push(dropped, () => {}, 'after-failure', undefined), 'skipped')
  t.same(failures, [], 'nothing refused, nothing reported')
  const open = q.lane('ok')
  t.equal(q.push(open, () => {}, 'late', undefined), 'refused', 'a live lane is refused')
})
