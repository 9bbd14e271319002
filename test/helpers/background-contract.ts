import type { Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import {
  faultlineHttp, faultlineBackground, ForbiddenError, ServiceUnavailableError, isFault,
  type Fault, type FaultContext, type FaultlineBackgroundOptions
} from '../../index.js'
import { captureLogs } from './logs.js'
import { within } from './within.js'

// The named-task contract, run once in process and once on BullMQ (same
// tests, same assertions): only how the app is built differs.

export interface Reported { fault: Fault, ctx: FaultContext }

export interface Built {
  app: FastifyInstance
  reports: Reported[]
  logs: ReturnType<typeof captureLogs>
  /** Resolves with the next report. */
  nextReport: () => Promise<Reported>
}

export interface Mode {
  name: 'in-process' | 'bullmq'
  /** Plugin options for an app that both enqueues and runs its tasks. */
  options: (label: string) => FaultlineBackgroundOptions
}

export function deferred<T = void> (): { promise: Promise<T>, resolve: (value: T) => void } {
  let resolve!: (value: T) => void
  const promise = new Promise<T>(_resolve => { resolve = _resolve })
  return { promise, resolve }
}

export const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

export async function buildApp (t: Test, options: FaultlineBackgroundOptions): Promise<Built> {
  const logs = captureLogs()
  const reports: Reported[] = []
  let waiters: Array<(r: Reported) => void> = []
  const app = Fastify({ logger: { level: 'debug', stream: logs.stream }, forceCloseConnections: true })
  await app.register(faultlineHttp, {
    onFault: (fault, ctx) => {
      const report = { fault, ctx }
      reports.push(report)
      const pending = waiters
      waiters = []
      for (const resolve of pending) resolve(report)
    }
  })
  await app.register(faultlineBackground, options)
  t.teardown(() => app.close())
  return { app, reports, logs, nextReport: () => new Promise(resolve => { waiters.push(resolve) }) }
}

export function namedTaskContract (t: Test, mode: Mode): void {
  const build = (t: Test): Promise<Built> => buildApp(t, mode.options(t.name.replace(/\W+/g, '-').slice(0, 40)))

  t.test(`${mode.name}: ServiceUnavailableError({ retryAfter: 1 }) twice, then success: three runs, gaps >= 1 s, no report`, async t => {
    const { app, reports } = await build(t)
    const runs: Array<{ at: number, attempt: number, payload: unknown, requestId: string | undefined, name: string }> = []
    const done = deferred()
    app.faultline.background!.define('flaky', (payload, { attempt, requestId, name }) => {
      runs.push({ at: Date.now(), attempt, payload, requestId, name })
      if (attempt < 3) throw new ServiceUnavailableError('try later', { retryAfter: 1 })
      done.resolve()
    }, { attempts: 5, backoff: 10 })
    let requestId = ''
    app.post('/flaky', async (request, reply) => {
      requestId = request.id
      t.equal(reply.background('flaky', { order: 7, items: ['a', 'b'] }), true, 'accepted')
      return { ok: true }
    })
    t.equal((await app.inject({ method: 'POST', url: '/flaky' })).statusCode, 200)
    await within(t, done.promise, 'the third run', 20_000)
    await app.faultline.background!.idle()
    t.same(runs.map(r => r.attempt), [1, 2, 3], 'three runs')
    for (let i = 1; i < runs.length; i++) t.ok(runs[i]!.at - runs[i - 1]!.at >= 1000, `gap ${i}: ${runs[i]!.at - runs[i - 1]!.at} ms >= 1000 (retryAfter)`)
    t.ok(runs.every(r => r.requestId === requestId && r.name === 'flaky'), 'each run knows its request id and name')
    t.same(runs[2]!.payload, { order: 7, items: ['a', 'b'] }, 'the payload, as given')
    await sleep(100)
    t.same(reports, [], 'no report: the task succeeded in the end')
  })

  t.test(`${mode.name}: ForbiddenError runs once and is reported once, with task, request id and attempts`, async t => {
    const { app, reports, nextReport } = await build(t)
    let runs = 0
    app.faultline.background!.define('forbidden', () => {
      runs++
      throw new ForbiddenError('not yours')
    }, { attempts: 5, backoff: 10 })
    let requestId = ''
    app.post('/forbidden', async (request, reply) => {
      requestId = request.id
      reply.background('forbidden', { id: 1 })
      return 'ok'
    })
    const reported = nextReport()
    await app.inject({ method: 'POST', url: '/forbidden' })
    const { fault, ctx } = await within(t, reported, 'the report')
    await sleep(300) // time enough for a retry, were there one
    t.equal(runs, 1, 'no retry can help a 403')
    t.equal(reports.length, 1, 'reported once')
    t.ok(fault instanceof ForbiddenError)
    t.match(ctx, { transport: 'background', phase: 'after-response', task: 'forbidden', requestId, attempts: 1 })
    if (mode.name === 'bullmq') t.type(ctx.jobId, 'string', 'the BullMQ job id')
  })

  t.test(`${mode.name}: a retryable fault that never clears: every attempt runs, the last is reported once`, async t => {
    const { app, reports, nextReport, logs } = await build(t)
    let runs = 0
    app.faultline.background!.define('down', () => {
      runs++
      throw new Error('upstream is down') // InternalError: 500, not retryable
    }, { attempts: 4, backoff: 5 })
    app.faultline.background!.define('busy', () => {
      runs++
      throw new ServiceUnavailableError('busy')
    }, { attempts: 3, backoff: { type: 'fixed', delay: 5 } })
    app.post('/', async (request, reply) => {
      reply.background('busy', null)
      return 'ok'
    })
    const reported = nextReport()
    await app.inject({ method: 'POST', url: '/' })
    const { fault, ctx } = await within(t, reported, 'the report')
    await sleep(100)
    t.equal(runs, 3)
    t.equal(reports.length, 1)
    t.equal(fault.code, 'SERVICE_UNAVAILABLE')
    t.match(ctx, { task: 'busy', attempts: 3 })
    const retries = logs.lines.filter(l => l.level === 20 && /retrying/.test(String(l.msg)))
    t.equal(retries.length, 2, 'the earlier attempts are logged at debug')
    t.match(retries[0], { transport: 'background', task: 'busy', attempt: 1, fault: { code: 'SERVICE_UNAVAILABLE' } })
  })

  t.test(`${mode.name}: a run past its timeout is aborted and retried (504 is retryable); the next one succeeds`, async t => {
    const { app, reports } = await build(t)
    const reasons: unknown[] = []
    const done = deferred<number>()
    app.faultline.background!.define('slow', async (_payload, { signal, attempt }) => {
      if (attempt === 1) {
        await new Promise(resolve => { signal.addEventListener('abort', resolve) })
        reasons.push(signal.reason)
        return
      }
      done.resolve(attempt)
    }, { timeout: 100, attempts: 2, backoff: 10 })
    app.post('/', async (request, reply) => {
      reply.background('slow', {})
      return 'ok'
    })
    await app.inject({ method: 'POST', url: '/' })
    t.equal(await within(t, done.promise, 'the second run'), 2)
    t.equal(reasons.length, 1)
    t.ok(isFault(reasons[0]) && (reasons[0] as Fault).code === 'GATEWAY_TIMEOUT', 'the first run was aborted with its timeout')
    await sleep(50)
    t.same(reports, [])
  })

  t.test(`${mode.name}: misuse at the call: an undefined name, a payload that is not plain JSON; the handler gets a copy`, async t => {
    const { app } = await build(t)
    const seen = deferred<unknown>()
    app.faultline.background!.define('copy', payload => { seen.resolve(payload) })
    const errors: string[] = []
    app.post('/', async (request, reply) => {
      const cyclic: Record<string, unknown> = {}
      cyclic.self = cyclic
      const bad: Array<[string, unknown]> = [
        ['nope', {}],
        ['copy', new Date(0)],
        ['copy', { when: new Date(0) }],
        ['copy', { n: 10n }],
        ['copy', { f: () => 1 }],
        ['copy', { u: undefined }],
        ['copy', [1, , 3]], // eslint-disable-line no-sparse-arrays
        ['copy', { n: NaN }],
        ['copy', cyclic],
        ['copy', new Map()],
        ['copy', { [Symbol('s')]: 1 }],
        ['copy', Object.defineProperty({}, 'boom', { enumerable: true, get () { throw new Error('getter') } })],
        ['copy', undefined]
      ]
      for (const [name, payload] of bad) {
        try {
          reply.background(name, payload)
          errors.push('accepted')
        } catch (err) {
          errors.push(`${(err as { code: string }).code}: ${(err as Error).message}`)
        }
      }
      const payload = { list: [1, 2], nested: { s: 'x' } }
      reply.background('copy', payload)
      payload.list.push(3) // after the call: the task still gets what was given
      return { errors }
    })
    const res = await app.inject({ method: 'POST', url: '/' })
    t.equal(res.statusCode, 200)
    t.equal(errors.length, 13)
    t.ok(errors.every(e => e.startsWith('FST_FAULTLINE_INVALID_TASK: reply.background: ')), 'every one a clear misuse error')
    t.match(errors[0], /no task is defined as "nope"/)
    t.match(errors[1], /payload is a Date, not a plain object \(pass date.toISOString\(\)\)/)
    t.match(errors[2], /payload\.when is a Date/)
    t.match(errors[3], /payload\.n is a bigint/)
    t.match(errors[4], /payload\.f is a function/)
    t.match(errors[5], /payload\.u is undefined, which JSON cannot carry/)
    t.match(errors[6], /payload\[1\] is a hole/)
    t.match(errors[7], /payload\.n is NaN/)
    t.match(errors[8], /payload\.self refers back to one of its parents/)
    t.match(errors[9], /payload is a Map/)
    t.match(errors[10], /symbol keys/)
    t.match(errors[11], /could not be read/)
    t.match(errors[12], /payload is undefined, which JSON cannot carry/)
    t.same(await within(t, seen.promise, 'the task'), { list: [1, 2], nested: { s: 'x' } })
  })

  t.test(`${mode.name}: the route fails: its named task never runs`, async t => {
    const { app } = await build(t)
    let runs = 0
    app.faultline.background!.define('after-failure', () => { runs++ })
    app.post('/', async (request, reply) => {
      reply.background('after-failure', { x: 1 })
      throw new ForbiddenError('no')
    })
    t.equal((await app.inject({ method: 'POST', url: '/' })).statusCode, 403)
    await app.faultline.background!.idle()
    await sleep(200)
    t.equal(runs, 0)
  })
}
