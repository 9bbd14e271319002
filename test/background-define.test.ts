import t from 'tap'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import Fastify from 'fastify'
import { faultlineHttp, faultlineBackground } from '../index.js'
import { checkIoredis, importBullmq } from '../lib/background-bullmq.js'
import { backoffDelay, LazySignal, retryDelay, serializePayload } from '../lib/background-tasks.js'
import { ServiceUnavailableError, ForbiddenError } from '../lib/fault.js'
import { guardProcess } from './helpers/guard.js'
import { plainNodeEnv } from './helpers/child-env.js'
import { buildApp, sleep } from './helpers/background-contract.js'

guardProcess(t)

// Named tasks without Redis: define-time and register-time misuse, the
// failure policy, the payload rule, and the BullMQ adapter's edges that need
// no server (a missing `bullmq`, an unreachable Redis).

t.test('define: misuse throws FST_FAULTLINE_INVALID_TASK_DEFINITION at the call', async t => {
  const { app } = await buildApp(t, {})
  const define = app.faultline.background!.define
  const cases: Array<[unknown[], RegExp]> = [
    [['', () => {}], /name must be 1 to 128 letters/],
    [['has space', () => {}], /name must be/],
    [[42, () => {}], /got 42/],
    [['x'.repeat(129), () => {}], /name must be/],
    [['ok', 'handler'], /handler must be a function/],
    [['ok', () => {}, null], /options must be an object, got null/],
    [['ok', () => {}, 'fast'], /options must be an object/],
    [['ok', () => {}, { attempts: 0 }], /attempts must be a positive integer, got 0/],
    [['ok', () => {}, { attempts: 1.5 }], /attempts/],
    [['ok', () => {}, { timeout: 0 }], /timeout must be a number of milliseconds from 1/],
    [['ok', () => {}, { backoff: -1 }], /backoff must be milliseconds or \{ type/],
    [['ok', () => {}, { backoff: { type: 'linear', delay: 5 } }], /backoff/],
    [['ok', () => {}, { backoff: { type: 'fixed', delay: Infinity } }], /backoff/],
    [['ok', () => {}, { backoff: null }], /backoff/]
  ]
  for (const [args, message] of cases) {
    t.throws(() => (define as (...a: unknown[]) => void)(...args), { code: 'FST_FAULTLINE_INVALID_TASK_DEFINITION', message }, String(args[0]).slice(0, 20))
  }
  define('mail.welcome:v2/x-y', () => {}, { attempts: 1, backoff: { type: 'fixed', delay: 0 }, timeout: 5 })
  t.throws(() => define('mail.welcome:v2/x-y', () => {}), { message: /a task is already defined as "mail.welcome:v2\/x-y"/ })
  await app.ready()
  t.throws(() => define('late', () => {}), { message: /define tasks before the app is ready/ })
})

t.test('queue options are validated at register time, before bullmq is loaded', async t => {
  const connection = { host: '127.0.0.1', port: 1 }
  const cases: Array<[unknown, RegExp]> = [
    ['redis://x', /invalid option queue: must be an object \{ connection, prefix\?, name\?, worker\? \}/],
    [null, /invalid option queue: must be an object/],
    [{}, /invalid option queue\.connection: must be what BullMQ's connection takes/],
    [{ connection: 'redis://x' }, /queue\.connection/],
    [{ connection, prefix: '' }, /invalid option queue\.prefix: must be a non-empty string/],
    [{ connection, prefix: 1 }, /queue\.prefix/],
    [{ connection, name: 'a b' }, /invalid option queue\.name/],
    [{ connection, name: 7 }, /queue\.name/],
    [{ connection, removeOnComplete: -1 }, /invalid option queue\.removeOnComplete/],
    [{ connection, removeOnFail: 'all' }, /invalid option queue\.removeOnFail/],
    [{ connection, worker: true }, /invalid option queue\.worker: must be false or an object/],
    [{ connection, worker: null }, /queue\.worker: must be false or an object/],
    [{ connection, worker: { concurrency: 0 } }, /invalid option queue\.worker\.concurrency: must be a positive integer/],
    [{ connection, worker: { lockDuration: 0 } }, /invalid option queue\.worker\.lockDuration/],
    [{ connection, worker: { stalledInterval: -5 } }, /invalid option queue\.worker\.stalledInterval/],
    [{ connection, worker: { maxStalledCount: 1.5 } }, /invalid option queue\.worker\.maxStalledCount: must be a non-negative integer/]
  ]
  for (const [queue, message] of cases) {
    const app = Fastify({ logger: false })
    await app.register(faultlineHttp)
    app.register(faultlineBackground, { queue } as never)
    await t.rejects(async () => { await app.ready() }, { code: 'FST_FAULTLINE_INVALID_OPTION', message }, JSON.stringify(queue))
    await app.close()
  }
})

t.test('bullmq is imported only when queue is given; a missing one is a clear register-time error', async t => {
  const missing = Object.assign(new Error("Cannot find package 'bullmq' imported from /app/dist/lib/background-bullmq.js"), { code: 'ERR_MODULE_NOT_FOUND' })
  await t.rejects(importBullmq(() => Promise.reject(missing)), {
    code: 'FST_FAULTLINE_MISSING_PEER',
    message: "faultline-background: option `queue` needs the package 'bullmq', which is not installed. Install it: npm install bullmq ioredis"
  })
  const cjs = Object.assign(new Error("Cannot find module 'bullmq'"), { code: 'MODULE_NOT_FOUND' })
  await t.rejects(importBullmq(() => Promise.reject(cjs)), { code: 'FST_FAULTLINE_MISSING_PEER' })
  const nested = Object.assign(new Error("Cannot find package 'msgpackr'"), { code: 'ERR_MODULE_NOT_FOUND' })
  await t.rejects(importBullmq(() => Promise.reject(nested)), nested, 'another missing package is not mistaken for bullmq')
  const other = Object.assign(new Error('permission denied'), { code: 'EACCES' })
  let rethrown: unknown
  await importBullmq(() => Promise.reject(other)).catch((err: unknown) => { rethrown = err })
  t.equal(rethrown, other, 'whatever else is rethrown as it is')
  const real = await importBullmq()
  t.type(real.Worker, 'function', 'the default loader imports the installed bullmq')
})

t.test('ioredis, which BullMQ loads itself for connection options, is checked at register time', async t => {
  const missing = () => { throw Object.assign(new Error("Cannot find module 'ioredis'\nRequire stack:\n- /app/node_modules/bullmq/dist/cjs/index.js"), { code: 'MODULE_NOT_FOUND' }) }
  const message = "faultline-background: option `queue` needs the package 'ioredis', which is not installed. Install it: npm install ioredis"
  t.throws(() => checkIoredis({ host: '127.0.0.1', port: 6379 }, missing), { code: 'FST_FAULTLINE_MISSING_PEER', message })
  t.throws(() => checkIoredis(Object.assign(Object.create(null), { host: 'redis' }), missing), { code: 'FST_FAULTLINE_MISSING_PEER' }, 'a null-prototype options object too')
  let asked = false
  checkIoredis(new (class Client { status = 'ready' })(), () => { asked = true })
  t.notOk(asked, 'a client instance (ioredis, node-redis) needs no ioredis package')
  const nested = Object.assign(new Error("Cannot find module 'standard-as-callback'"), { code: 'MODULE_NOT_FOUND' })
  t.throws(() => checkIoredis({}, () => { throw nested }), nested, 'another missing package is rethrown as it is')
  t.doesNotThrow(() => { checkIoredis({ host: '127.0.0.1' }) }, 'the default check finds the installed ioredis, from bullmq\'s directory')
})

t.test('registering queue without ioredis, or without bullmq: FST_FAULTLINE_MISSING_PEER naming the package', async t => {
  // A real `node` process in which nothing can resolve the package (test/fixtures/missing-peer/hide.cjs),
  // BullMQ's own require() included. Without the ioredis check, registration succeeded and
  // app.close() threw a TypeError inside BullMQ.
  const dir = new URL('./fixtures/missing-peer/', import.meta.url)
  for (const [hide, install] of [['ioredis', 'ioredis'], ['bullmq', 'bullmq ioredis']]) {
    const { stdout } = await promisify(execFile)(process.execPath, ['--require', './hide.cjs', '--import', 'tsx', 'register.ts'], {
      cwd: dir, env: plainNodeEnv({ FAULTLINE_HIDE: hide })
    })
    t.same(JSON.parse(stdout), {
      bullmqLoadsIoredis: false,
      registered: false,
      code: 'FST_FAULTLINE_MISSING_PEER',
      message: `faultline-background: option \`queue\` needs the package '${hide}', which is not installed. Install it: npm install ${install}`
    }, `${hide} hidden`)
  }
})

t.test('the failure policy: retryable faults only, backoff never shorter than retryAfter, within attempts', async t => {
  const exp = { type: 'exponential', delay: 100 } as const
  t.same([1, 2, 3, 4].map(n => backoffDelay(exp, n)), [100, 200, 400, 800])
  t.same([1, 2, 3].map(n => backoffDelay({ type: 'fixed', delay: 50 }, n)), [50, 50, 50])
  t.equal(backoffDelay(exp, 40), 2 ** 31 - 1, 'capped at what setTimeout can wait')
  const def = { attempts: 3, backoff: exp }
  t.equal(retryDelay(def, new ServiceUnavailableError('x'), 1), 100)
  t.equal(retryDelay(def, new ServiceUnavailableError('x', { retryAfter: 2 }), 1), 2000, 'retryAfter wins over a shorter backoff')
  t.equal(retryDelay(def, new ServiceUnavailableError('x', { retryAfter: 0 }), 2), 200)
  t.equal(retryDelay(def, new ServiceUnavailableError('x'), 3), undefined, 'no attempts left')
  t.equal(retryDelay(def, new ForbiddenError('x'), 1), undefined, 'not retryable')
})

t.test('payloads: plain JSON only, however it is nested; hostile values get the same clear error', async t => {
  const ok: unknown[] = [null, 0, -1.5, '', 'text', true, [], {}, Object.create(null), { a: [{ b: [null, 'x', { c: 1 }] }] }]
  for (const payload of ok) t.equal(serializePayload('t', payload), JSON.stringify(payload))
  let deep: unknown = 1
  for (let i = 0; i < 64; i++) deep = [deep]
  t.doesNotThrow(() => serializePayload('t', deep), '64 levels are fine')
  const bad: Array<[unknown, RegExp]> = [
    [[deep], /is nested more than 64 levels deep/],
    [{ list: [1, [2, new Set()]] }, /payload\.list\[1\]\[1\] is a Set, not a plain object/],
    [new (class {})(), /payload is a class instance/],
    [Object.create(Object.create(null)), /payload is a class instance/],
    [{ x: Infinity }, /payload\.x is Infinity/],
    [Symbol('s'), /payload is a symbol/],
    [undefined, /: payload is undefined, which JSON cannot carry$/],
    [{ a: undefined }, /payload\.a is undefined/],
    [new Proxy({}, { getPrototypeOf () { throw new Error('trap') } }), /payload could not be read/],
    [(() => { const p = Proxy.revocable({}, {}); p.revoke(); return p.proxy })(), /payload could not be read/]
  ]
  for (const [payload, message] of bad) {
    t.throws(() => serializePayload('t', payload), { code: 'FST_FAULTLINE_INVALID_TASK', message })
  }
})

t.test('LazySignal: built on first read; an abort before it is kept', async t => {
  const early = new LazySignal()
  early.abort('first')
  early.abort('second')
  t.equal(early.aborted, true)
  t.equal(early.signal.aborted, true)
  t.equal(early.signal.reason, 'first', 'the first abort wins')
  const late = new LazySignal()
  const signal = late.signal
  t.equal(signal.aborted, false)
  late.abort('now')
  t.equal(signal.reason, 'now')
})

t.test('an unreachable Redis: the enqueue is reported (SERVICE_UNAVAILABLE) with the request, BullMQ errors are logged, close() returns', async t => {
  // Nothing listens on port 1; no offline queue and no retries, so each command fails at once.
  const connection = { host: '127.0.0.1', port: 1, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null }
  const { app, reports, logs, nextReport } = await buildApp(t, { queue: { connection, name: 'unreachable', worker: false } })
  app.faultline.background!.define('mail', () => {})
  app.post('/', async (request, reply) => {
    reply.background('mail', { to: 'a@example.com' })
    return 'ok'
  })
  const reported = nextReport()
  t.equal((await app.inject({ method: 'POST', url: '/' })).statusCode, 200, 'the response does not wait for Redis')
  const { fault, ctx } = await reported
  t.equal(fault.code, 'SERVICE_UNAVAILABLE')
  t.match(fault.message, /Background task "mail" could not be enqueued: /)
  t.match(ctx, { transport: 'background', phase: 'after-response', task: 'mail' })
  t.ok(ctx.request, 'with its request')
  await sleep(50)
  t.equal(reports.length, 1)
  t.ok(logs.lines.some(l => l.level === 50 && l.msg === 'faultline: BullMQ error'), 'BullMQ connection errors are logged')
  await app.close()
})
