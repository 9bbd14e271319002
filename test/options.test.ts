// The one option validator (lib/options.ts): one bound for timers, unknown
// option names refused with the closest known one, Fastify's own register
// options let through.
import t from 'tap'
import Fastify, { type FastifyPluginAsync } from 'fastify'
import { faultlineHttp, faultlineStream, faultlineSse, faultlineWebsocket, faultlineBackground } from '../index.js'
import { closestName, MAX_TIMER_MS, PluginOptions, whyInvalidCount, whyInvalidMs } from '../lib/options.js'
import { guardProcess } from './helpers/guard.js'

guardProcess(t)

t.test('milliseconds: integers from min to 2^31-1 (larger timers fire at once in Node)', async t => {
  t.equal(MAX_TIMER_MS, 2 ** 31 - 1)
  for (const ok of [0, 1, 5000, MAX_TIMER_MS]) t.equal(whyInvalidMs(ok, 0), undefined, String(ok))
  for (const bad of [-1, 1.5, 2 ** 31, Infinity, NaN, '10', null]) t.match(whyInvalidMs(bad, 0), /must be an integer number of milliseconds from 0 to 2147483647/, String(bad))
  t.match(whyInvalidMs(0, 1, ' (off)'), /from 1 \(off\) to/)
  t.equal(whyInvalidCount(3), undefined)
  t.match(whyInvalidCount(0, 'why'), /must be a positive integer \(why\), got 0/)
  t.match(whyInvalidCount(Number.MAX_VALUE), /must be a positive integer, got/)
})

t.test('closestName: a typo finds its option; nonsense finds nothing', async t => {
  const known = ['onFault', 'typeBase', 'debug', 'logLevels', 'notFound']
  t.equal(closestName('onfault', known), 'onFault')
  t.equal(closestName('onFaults', known), 'onFault')
  t.equal(closestName('typebase', known), 'typeBase')
  t.equal(closestName('loglevels', known), 'logLevels')
  t.equal(closestName('zzzzzzzzzz', known), undefined)
  t.equal(closestName('x'.repeat(100), known), undefined, 'long names are not compared')
})

t.test('PluginOptions reads every kind of option', async t => {
  const options = new PluginOptions('p', { a: 5, b: true, c: 'name', d: { x: 1 }, e: [() => 1], prefix: '/x', logLevel: 'info', logSerializers: {} }, ['a', 'b', 'c', 'd', 'e', 'f'])
  t.equal(options.ms('a', 1), 5)
  t.equal(options.ms('f', 1), undefined)
  t.equal(options.ms('f', 0, 0), 0)
  t.equal(options.count('a', 1), 5)
  t.equal(options.boolean('b', false), true)
  t.equal(options.string('c', /^[a-z]+$/, 'lower case'), 'name')
  t.same(options.object('d', 'an object'), { x: 1 })
  t.equal(options.functions('e').length, 1)
  t.same(options.functions('f'), [])
  t.throws(() => options.boolean('a', false), { code: 'FST_FAULTLINE_INVALID_OPTION', message: 'p: invalid option a: must be a boolean, got 5' })
  t.throws(() => options.string('a', /x/, 'a name'), { message: /invalid option a: must be a name, got 5/ })
  t.throws(() => options.object('c', 'an object of things'), { message: /invalid option c: must be an object of things/ })
  t.throws(() => options.functions('a'), { message: /must be a function or an array of functions/ })
  t.throws(() => new PluginOptions('p', 'x', []), { message: 'p: invalid option options: must be an object' })
})

const plugins: Array<[string, FastifyPluginAsync<any>, string, string]> = [
  ['faultline-http', faultlineHttp, 'onfault', 'onFault'],
  ['faultline-stream', faultlineStream, 'idletimeout', 'idleTimeout'],
  ['faultline-sse', faultlineSse, 'closeTimout', 'closeTimeout'],
  ['faultline-websocket', faultlineWebsocket, 'heartbeats', 'heartbeat'],
  ['faultline-background', faultlineBackground, 'concurency', 'concurrency']
]

t.test('every plugin refuses an unknown option name and names the closest known one', async t => {
  for (const [name, plugin, typo, meant] of plugins) {
    const app = Fastify({ logger: false })
    if (plugin !== faultlineHttp) await app.register(faultlineHttp)
    app.register(plugin, { [typo]: 1 })
    const err = await app.ready().then(() => undefined, (e: unknown) => e as Error & { code?: string })
    t.equal(err?.code, 'FST_FAULTLINE_INVALID_OPTION', name)
    t.match(err?.message, new RegExp(`^${name}: invalid option ${typo}: unknown option: did you mean ${meant}\\? Known options: `), name)
    await app.close()
  }
  const app = Fastify({ logger: false })
  app.register(faultlineHttp, { colour: 'red' } as never)
  await t.rejects(async () => { await app.ready() }, { message: /invalid option colour: unknown option Known options: onFault/ }, 'no guess when nothing is close')
  await app.close()
})

t.test("Fastify's own register options are not ours to refuse", async t => {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  const own = { prefix: '/api', logLevel: 'warn', logSerializers: { req: () => 'r' } }
  await app.register(faultlineHttp, own as never)
  await app.register(faultlineStream, own as never)
  await app.register(faultlineSse, own as never)
  await app.register(faultlineWebsocket, own as never)
  await app.register(faultlineBackground, own as never)
  await app.ready()
  t.pass('registered')
})

t.test('faultlineSse({ closeTimeout: 2 ** 31 }) is refused: Node would fire it at once', async t => {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await app.register(faultlineHttp)
  app.register(faultlineSse, { closeTimeout: 2 ** 31 })
  await t.rejects(async () => { await app.ready() }, { code: 'FST_FAULTLINE_INVALID_OPTION', message: /faultline-sse: invalid option closeTimeout: must be an integer number of milliseconds from 1 to 2147483647, got 2147483648/ })
})
