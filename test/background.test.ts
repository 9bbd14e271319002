import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import { Readable } from 'node:stream'
import { faultlineHttp, faultlineBackground, NotFoundError, BadRequestError, type FaultlineBackgroundOptions, type Fault } from '../index.js'
import type { FaultContext } from '../lib/report.js'
import { guardProcess } from './helpers/guard.js'
import { within } from './helpers/within.js'
import { captureLogs } from './helpers/logs.js'

guardProcess(t)

interface Reported { fault: Fault, ctx: FaultContext<FastifyRequest> }

function deferred<T = void> (): { promise: Promise<T>, resolve: (value: T) => void } {
  let resolve!: (value: T) => void
  const promise = new Promise<T>(_resolve => { resolve = _resolve })
  return { promise, resolve }
}

async function build (t: Test, opts: FaultlineBackgroundOptions = {}): Promise<{ app: FastifyInstance, logs: ReturnType<typeof captureLogs>, reports: Reported[] }> {
  const logs = captureLogs()
  const reports: Reported[] = []
  const app = Fastify({ logger: { level: 'debug', stream: logs.stream }, forceCloseConnections: true })
  await app.register(faultlineHttp, { onFault: (fault, ctx) => { reports.push({ fault, ctx }) } })
  await app.register(faultlineBackground, opts)
  t.teardown(() => app.close())
  return { app, logs, reports }
}

async function listen (app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  return `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`
}

t.test('a failing task is reported once, as handled, with the request id and task name; the process never sees it', async t => {
  const { app, logs, reports } = await build(t)
  let unhandled = 0
  const onUnhandled = (): void => { unhandled++ }
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => { process.off('unhandledRejection', onUnhandled) })

  app.post('/signup', async (request, reply) => {
    reply.background(async function sendWelcomeEmail () { throw new Error('smtp down') })
    return { ok: true, id: request.id }
  })
  const base = await listen(app)
  const res = await fetch(`${base}/signup`, { method: 'POST' })
  t.equal(res.status, 200, 'the response is not affected')
  const body = await res.json() as { id: string }
  await within(t, app.faultline.background.idle(), 'idle')

  t.equal(reports.length, 1, 'one report')
  const [{ fault, ctx }] = reports
  t.equal(fault.code, 'INTERNAL')
  t.equal(fault.status, 500)
  t.equal((fault.cause as Error).message, 'smtp down', 'the thrown error is kept as the cause')
  t.equal(ctx.transport, 'background')
  t.equal(ctx.phase, 'after-response')
  t.equal(ctx.task, 'sendWelcomeEmail')
  t.equal(ctx.request?.id, body.id, 'the reporter gets the request')

  const lines = logs.faults()
  t.equal(lines.length, 1, 'logged once')
  t.match(lines[0], {
    level: 50,
    reqId: body.id,
    transport: 'background',
    phase: 'after-response',
    handled: true,
    task: 'sendWelcomeEmail',
    fault: { code: 'INTERNAL', status: 500 },
    msg: 'smtp down'
  })
  t.equal(logs.lines.filter(l => /already sent|Promise errored/i.test(String(l.msg))).length, 0, 'no "reply already sent" noise')
  t.equal(unhandled, 0, 'no unhandledRejection')
})

t.test('synchronous throws, thrown non-errors and faults are all adopted; tasks that succeed report nothing', async t => {
  const { app, reports, logs } = await build(t)
  app.get('/', async (request, reply) => {
    reply.background(() => { throw new BadRequestError('bad input in the job') }, { name: 'sync' })
    reply.background(() => Promise.reject(null), { name: 'null' }) // eslint-disable-line prefer-promise-reject-errors
    reply.background(() => 'fine', { name: 'ok-sync' })
    reply.background(async () => 'fine', { name: 'ok-async' })
    reply.background(() => {
      // A thenable whose `then` throws: adopted as a rejection, never a crash.
      return { get then () { throw new Error('hostile then') } }
    }, { name: 'hostile' })
    reply.background(() => {}) // anonymous arrow: no name of its own
    return 'ok'
  })
  const res = await app.inject('/')
  t.equal(res.statusCode, 200)
  await app.faultline.background.idle()
  t.same(reports.map(r => [r.ctx.task, r.fault.code]), [
    ['sync', 'BAD_REQUEST'],
    ['null', 'INTERNAL'],
    ['hostile', 'INTERNAL']
  ])
  t.equal(logs.faults().find(l => l.task === 'sync')?.level, 30, 'a 4xx fault is logged at info')
})

t.test('two tasks failing with one shared error object are two reports', async t => {
  const { app, reports } = await build(t)
  const shared = new Error('shared failure')
  app.get('/', async (_request, reply) => {
    reply.background(() => { throw shared }, { name: 'first' })
    reply.background(() => { throw shared }, { name: 'second' })
    return 'ok'
  })
  await app.inject('/')
  await app.faultline.background.idle()
  t.same(reports.map(r => r.ctx.task), ['first', 'second'])
})

t.test('tasks run after the response is completely sent, one after another in scheduling order', async t => {
  const { app } = await build(t, { concurrency: 4 })
  const order: string[] = []
  const release = deferred()
  const seen: boolean[] = []
  app.get('/', async (request, reply) => {
    reply.background(async function first () {
      seen.push(reply.raw.writableFinished)
      order.push('first:start')
      // Held until the client has read the whole body: a response that
      // waited for its tasks would never complete.
      await release.promise
      order.push('first:end')
    })
    reply.background(function second () { order.push('second') })
    order.push('handler')
    return 'body'
  })
  const base = await listen(app)
  const res = await within(t, fetch(base), 'the response')
  t.equal(await within(t, res.text(), 'the body'), 'body')
  release.resolve()
  await within(t, app.faultline.background.idle(), 'idle')
  t.same(order, ['handler', 'first:start', 'first:end', 'second'])
  t.same(seen, [true], 'the response had finished when the task started')
})

t.test('idle() waits for tasks scheduled by a request whose response is still going out', async t => {
  const { app } = await build(t)
  let ran = 0
  app.get('/', async (request, reply) => {
    reply.background(() => { ran++ })
    return 'ok'
  })
  t.same(app.faultline.background.stats(), { pending: 0, queued: 0, running: 0 })
  await app.inject('/')
  await app.faultline.background.idle()
  t.equal(ran, 1)
  t.same(app.faultline.background.stats(), { pending: 0, queued: 0, running: 0 })
})

t.test('tasks scheduled in an onResponse hook (the response already sent) run', async t => {
  const { app } = await build(t)
  let ran = 0
  app.get('/', {
    onResponse (request, reply, done) {
      t.equal(reply.background(() => { ran++ }), true)
      done()
    }
  }, async () => 'ok')
  await app.inject('/')
  const base = await listen(app)
  await (await fetch(base)).text()
  await within(t, app.faultline.background.idle(), 'idle')
  t.equal(ran, 2, 'over inject and over a real socket')
})

t.test('when the route fails, its tasks are skipped and that is logged at debug', async t => {
  const { app, reports, logs } = await build(t)
  let ran = 0
  const results: boolean[] = []
  app.get('/fails', {
    onResponse (request, reply, done) {
      // After the failure: skipped at once.
      results.push(reply.background(() => { ran++ }, { name: 'late' }))
      done()
    }
  }, async (request, reply) => {
    results.push(reply.background(() => { ran++ }, { name: 'early' }))
    throw new NotFoundError('no such order')
  })
  app.get('/fails-first', {
    onResponse (request, reply, done) {
      results.push(reply.background(() => { ran++ }, { name: 'after-failure' }))
      done()
    }
  }, async () => { throw new NotFoundError('nothing here') })
  const res = await app.inject('/fails')
  t.equal(res.statusCode, 404, 'the error handler produced the response')
  t.equal((await app.inject('/fails-first')).statusCode, 404)
  await app.faultline.background.idle()
  t.equal(ran, 0, 'no task ran')
  t.same(results, [true, false, false], 'accepted before the failure, skipped after it')
  t.same(reports.map(r => r.ctx.transport), ['http', 'http'], 'only the route failures are reported')
  const debug = logs.lines.filter(l => l.level === 20 && l.transport === 'background')
  t.match(debug, [
    { skipped: 1, msg: 'faultline: 1 background task(s) skipped: the route failed' },
    { task: 'late', msg: 'faultline: background task skipped: the route failed' },
    { task: 'after-failure', msg: 'faultline: background task skipped: the route failed' }
  ])
  t.equal(debug.length, 3, 'one line per skip, nothing more')
})

t.test('a route that schedules nothing pays nothing on its error path: no hook of faultlineBackground on any route', async t => {
  const { app } = await build(t)
  app.get('/plain', async () => { throw new NotFoundError('nothing') })
  await app.ready()
  t.notMatch(app.printRoutes({ includeHooks: true }), /faultline/i, 'no faultline hook on a plain route')
  t.equal((await app.inject('/plain')).statusCode, 404)
})

t.test('a failure a scope\'s own error handler recovers from (200) still skips the tasks, before and after it, over a real socket', async t => {
  const { app } = await build(t)
  const ran: string[] = []
  const results: boolean[] = []
  await app.register(async (scope) => {
    scope.setErrorHandler(async (_error, _request, reply) => {
      results.push(reply.background(() => { ran.push('in-handler') }, { name: 'in-handler' }))
      return { recovered: true }
    })
    scope.get('/recovers', async (request, reply) => {
      results.push(reply.background(() => { ran.push('before') }, { name: 'before' }))
      throw new Error('recovered from')
    })
    scope.get('/fine', async (request, reply) => {
      results.push(reply.background(() => { ran.push('fine') }, { name: 'fine' }))
      return { ok: true }
    })
  })
  const url = await listen(app)
  const res = await fetch(url + '/recovers')
  t.equal(res.status, 200)
  t.same(await res.json(), { recovered: true })
  t.equal((await fetch(url + '/fine')).status, 200)
  await app.faultline.background.idle()
  t.same(ran, ['fine'], 'only the route that did not fail ran its task')
  t.same(results, [true, false, true], 'accepted before the failure, skipped after it')
})

t.test('a streamed route: tasks run after the stream ended, and are skipped when it broke mid-way', async t => {
  const { app, logs } = await build(t)
  const ran: string[] = []
  app.get('/ok', async (request, reply) => {
    reply.background(() => { ran.push('ok') })
    return reply.send(Readable.from(['a', 'b', 'c']))
  })
  app.get('/broken', async (request, reply) => {
    reply.background(() => { ran.push('broken') })
    const source = new Readable({ read () {} })
    source.push('first chunk')
    setImmediate(() => source.destroy(new Error('upstream broke')))
    return reply.send(source)
  })
  const base = await listen(app)
  t.equal(await (await fetch(`${base}/ok`)).text(), 'abc')
  const broken = await fetch(`${base}/broken`)
  await t.rejects(broken.text(), 'the client sees truncation')
  await within(t, app.faultline.background.idle(), 'idle')
  t.same(ran, ['ok'])
  t.ok(logs.lines.some(l => l.level === 20 && l.skipped === 1 && /the response was not completed/.test(String(l.msg))), 'the skip is logged at debug')
})

t.test('timeout: the signal aborts and a GatewayTimeoutError is reported once', async t => {
  const { app, reports, logs } = await build(t, { timeout: 40 })
  const reasons: unknown[] = []
  app.get('/', async (request, reply) => {
    reply.background(async signal => {
      await new Promise<void>((resolve, reject) => {
        signal.addEventListener('abort', () => { reasons.push(signal.reason); reject(signal.reason) })
      })
    }, { name: 'slow-default' })
    reply.background(signal => new Promise(resolve => signal.addEventListener('abort', resolve)), { name: 'slow-own', timeout: 30 })
    reply.background(() => 'quick', { name: 'quick' })
    return 'ok'
  })
  await app.inject('/')
  await within(t, app.faultline.background.idle(), 'idle')
  t.same(reports.map(r => [r.ctx.task, r.fault.code, r.fault.status]), [
    ['slow-default', 'GATEWAY_TIMEOUT', 504],
    ['slow-own', 'GATEWAY_TIMEOUT', 504]
  ])
  t.equal(reasons[0], reports[0]!.fault, 'the abort reason is the reported fault')
  t.match(reports[1]!.fault.message, /"slow-own" timed out after 30 ms/)
  t.equal(logs.faults().length, 2, 'each logged once')
})

t.test('the queue bound: past maxQueued a task is refused and reported as ServiceUnavailableError', async t => {
  const { app, reports } = await build(t, { concurrency: 1, maxQueued: 2 })
  let ran = 0
  let results: boolean[] = []
  app.get('/', async (request, reply) => {
    results = [1, 2, 3, 4].map(n => reply.background(() => { ran++ }, { name: `job-${n}` }))
    return 'ok'
  })
  const res = await app.inject('/')
  t.equal(res.statusCode, 200, 'refusal does not fail the route')
  t.same(results, [true, true, false, false])
  await app.faultline.background.idle()
  t.equal(ran, 2)
  t.same(reports.map(r => [r.ctx.task, r.fault.code, r.ctx.transport, r.ctx.phase]), [
    ['job-3', 'SERVICE_UNAVAILABLE', 'background', 'after-response'],
    ['job-4', 'SERVICE_UNAVAILABLE', 'background', 'after-response']
  ])
  t.match(reports[0]!.fault.message, /queue is full \(maxQueued 2\)/)
})

t.test('close() waits for running tasks', async t => {
  const { app, reports } = await build(t)
  const events: string[] = []
  const started = deferred()
  const release = deferred()
  app.get('/', async (request, reply) => {
    reply.background(async () => {
      started.resolve()
      await release.promise
      events.push('task done')
    })
    return 'ok'
  })
  await app.inject('/')
  await within(t, started.promise, 'the task to start')
  const closing = app.close().then(() => { events.push('closed') })
  setImmediate(() => { release.resolve() })
  await within(t, closing, 'close')
  t.same(events, ['task done', 'closed'])
  t.equal(reports.length, 0, 'nothing was cut short')
})

t.test('close() aborts what outlives shutdownTimeout and reports it; tasks scheduled during shutdown are refused', async t => {
  const { app, reports } = await build(t, { concurrency: 1, shutdownTimeout: 30 })
  const started = deferred()
  const inHandler = deferred()
  const resume = deferred()
  let abortReason: unknown
  let scheduledDuringShutdown: boolean | undefined
  app.get('/', async (request, reply) => {
    reply.background(signal => {
      signal.addEventListener('abort', () => { abortReason = signal.reason })
      started.resolve()
      return new Promise(() => {}) // ignores its signal: never settles
    }, { name: 'stubborn' })
    reply.background(() => {}, { name: 'never-started' })
    return 'ok'
  })
  app.get('/late', async (request, reply) => {
    inHandler.resolve()
    await resume.promise
    scheduledDuringShutdown = reply.background(() => {}, { name: 'too-late' })
    return 'ok'
  })
  await app.inject('/')
  await within(t, started.promise, 'the task to start')
  const late = app.inject('/late')
  await inHandler.promise
  await within(t, app.close(), 'close')
  resume.resolve()
  t.equal((await late).statusCode, 200)

  t.equal(scheduledDuringShutdown, false)
  t.same(reports.map(r => [r.ctx.task, r.fault.code]), [
    ['stubborn', 'SERVICE_UNAVAILABLE'],
    ['never-started', 'SERVICE_UNAVAILABLE'],
    ['too-late', 'SERVICE_UNAVAILABLE']
  ])
  t.equal((abortReason as { code?: string } | undefined)?.code, 'SERVICE_UNAVAILABLE', 'the signal aborted with a shutdown fault')
  t.match(reports[0]!.fault.message, /cut short by server shutdown/)
  t.match(reports[1]!.fault.message, /not started before server shutdown/)
  t.match(reports[2]!.fault.message, /refused: the server is shutting down/)
  t.same(app.faultline.background.stats(), { pending: 0, queued: 0, running: 0 })
  await app.faultline.background.idle()
})

t.test('schedule(): work without a reply, with or without a request', async t => {
  const { app, reports, logs } = await build(t)
  const ran: string[] = []
  app.get('/', async (request) => {
    app.faultline.background.schedule(() => { ran.push('with request') }, { request })
    app.faultline.background.schedule(() => { throw new Error('job failed') }, { request, name: 'req-job' })
    return 'ok'
  })
  app.faultline.background.schedule(() => { ran.push('no request') })
  app.faultline.background.schedule(async function nightly () { throw new Error('nightly failed') })
  await app.inject('/')
  await app.faultline.background.idle()
  t.same(ran.sort(), ['no request', 'with request'])
  t.same(reports.map(r => [r.ctx.task, r.ctx.request === undefined]).sort(), [['nightly', true], ['req-job', false]])
  t.ok(logs.faults().some(l => l.task === 'nightly' && l.reqId === undefined), 'logged on the app logger')
})

t.test('misuse throws FST_FAULTLINE_INVALID_TASK at the call', async t => {
  const { app } = await build(t)
  const codes: string[] = []
  app.get('/', async (request, reply) => {
    const bad: Array<[unknown, unknown]> = [
      [42, undefined],
      [() => {}, null],
      [() => {}, 'fast'],
      [() => {}, { name: '' }],
      [() => {}, { name: 42 }],
      [() => {}, { timeout: 0 }],
      [() => {}, { timeout: Infinity }],
      [() => {}, { timeout: 2 ** 31 }]
    ]
    for (const [task, options] of bad) {
      try {
        reply.background(task as () => void, options as {})
        codes.push('accepted')
      } catch (err) {
        codes.push(`${(err as { code: string }).code}: ${(err as Error).message}`)
      }
    }
    return 'ok'
  })
  await app.inject('/')
  t.equal(codes.length, 8)
  for (const c of codes) t.match(c, /^FST_FAULTLINE_INVALID_TASK: reply\.background: /)
  t.match(codes[0], /task must be a function \(signal\) => unknown or the name of a defined task, got 42/)
  t.match(codes[1], /options must be an object, got null/)
  t.match(codes[4], /options\.name must be a non-empty string, got 42/)
  t.match(codes[5], /options\.timeout must be an integer number of milliseconds from 1/)
})

t.test('options are validated at register time', async t => {
  const cases: Array<[unknown, RegExp]> = [
    ['fast', /invalid option options: must be an object/],
    [{ concurrency: 0 }, /invalid option concurrency: must be a positive integer, got 0/],
    [{ concurrency: 1.5 }, /concurrency/],
    [{ maxQueued: Infinity }, /invalid option maxQueued: must be a positive integer \(the queue is always bounded\)/],
    [{ shutdownTimeout: -1 }, /invalid option shutdownTimeout/],
    [{ shutdownTimeout: '5s' }, /shutdownTimeout: must be an integer number of milliseconds from 0 to 2147483647, got "5s"/],
    [{ timeout: 0 }, /invalid option timeout/]
  ]
  for (const [opts, message] of cases) {
    const app = Fastify()
    await app.register(faultlineHttp)
    app.register(faultlineBackground, opts as FaultlineBackgroundOptions)
    await t.rejects(async () => { await app.ready() }, { code: 'FST_FAULTLINE_INVALID_OPTION', message }, String(message))
    await app.close()
  }
  const app = Fastify()
  app.register(faultlineBackground)
  await t.rejects(async () => { await app.ready() }, /faultline-http/, 'needs faultline-http first')
  await app.close()
})
