// Hostile configuration: every invalid option of every plugin fails at
// register time (app.ready() rejects, nothing listens) with
// FST_FAULTLINE_INVALID_OPTION and a message naming the plugin and option.
import t from 'tap'
import Fastify, { type FastifyPluginAsync } from 'fastify'
import fastifySse from '@fastify/sse'
import fastifyWebsocket from '@fastify/websocket'
import { faultlineHttp, faultlineStream, faultlineSse, faultlineWebsocket, faultlineBackground } from '../index.js'
import { guardProcess } from './helpers/guard.js'

guardProcess(t)

type Case = [option: string, value: unknown]

// (Fastify itself turns a null or undefined options argument into {}.)
const nonObjects: unknown[] = ['yes', 42, true]

const cases: Array<{ name: string, plugin: FastifyPluginAsync<any>, bad: Case[] }> = [
  {
    name: 'faultline-http',
    plugin: faultlineHttp,
    bad: [
      ['onFault', 'log'], ['onFault', [() => {}, 1]], ['typeBase', ''], ['typeBase', 42],
      ['debug', 'true'], ['notFound', 1], ['logLevels', 'error'], ['logLevels', { '5xx': 'loud' }], ['logLevels', { '4xx': null }]
    ]
  },
  {
    name: 'faultline-stream',
    plugin: faultlineStream,
    bad: [['idleTimeout', -1], ['idleTimeout', Number.NaN], ['idleTimeout', Infinity], ['idleTimeout', 1.5], ['idleTimeout', '1000'], ['idleTimeout', 2 ** 31]]
  },
  {
    name: 'faultline-sse',
    plugin: faultlineSse,
    bad: [
      ['sse', 'on'], ['sse', null], ['sse', []], ['errorEvent', ''], ['errorEvent', 'error\ndata: x'], ['errorEvent', 'has space'], ['errorEvent', 'x'.repeat(65)],
      ['terminalIdPrefix', 'a\r\nb'], ['terminalIdPrefix', 7], ['defaultRetry', -1], ['defaultRetry', 0.5], ['defaultRetry', '3000'],
      ['closeTimeout', 0], ['closeTimeout', Number.NaN]
    ]
  },
  {
    name: 'faultline-websocket',
    plugin: faultlineWebsocket,
    bad: [
      ['websocket', 'ws'], ['websocket', { errorHandler: () => {} }], ['websocket', { preClose: () => {} }], ['errorFrame', 'no'],
      ['closeCodes', []], ['closeCodes', { NOT_FOUND: 1006 }], ['closeCodes', { 404: 70000 }], ['closeCodes', { 200: 4000 }], ['closeCodes', { X: 'close' }],
      ['heartbeat', 0], ['heartbeat', -5], ['heartbeat', { interval: Number.NaN }], ['heartbeat', { interval: 1000, maxMissed: 0 }], ['heartbeat', 'often'],
      ['idleTimeout', 0], ['idleTimeout', Infinity], ['closeTimeout', -1], ['closeTimeout', 2 ** 31]
    ]
  },
  {
    name: 'faultline-background',
    plugin: faultlineBackground,
    bad: [
      ['concurrency', 0], ['concurrency', 1.5], ['concurrency', Infinity], ['maxQueued', -1], ['maxQueued', Number.MAX_VALUE],
      ['shutdownTimeout', -1], ['shutdownTimeout', 2 ** 31], ['timeout', 0], ['timeout', 'soon']
    ]
  }
]

function show (value: unknown): string {
  if (typeof value === 'number') return String(value)
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

for (const { name, plugin, bad } of cases) {
  t.test(`${name}: invalid options fail at register time with a clear message`, async t => {
    const attempts: Case[] = [...nonObjects.map((v): Case => ['options', v]), ...bad]
    for (const [option, value] of attempts) {
      const app = Fastify({ logger: false })
      if (plugin !== faultlineHttp) await app.register(faultlineHttp)
      app.register(plugin, (option === 'options' ? value : { [option]: value }) as never)
      const err = await app.ready().then(() => undefined, (e: unknown) => e as Error & { code?: string })
      t.equal(err?.code, 'FST_FAULTLINE_INVALID_OPTION', `${option} = ${show(value)} is refused`)
      const topOption = option === 'options' ? 'options' : option
      t.match(err?.message, new RegExp(`^${name}: invalid option ${topOption}`), `the message names ${name} and ${topOption}: ${err?.message}`)
      t.equal(app.server.listening, false)
      await app.close()
    }
  })
}

t.test('the transport plugins refuse to run without faultline-http, and say so', async t => {
  for (const plugin of [faultlineStream, faultlineSse, faultlineWebsocket, faultlineBackground]) {
    const app = Fastify({ logger: false })
    app.register(plugin)
    await t.rejects(async () => { await app.ready() }, { message: /faultline-http/ })
    await app.close()
  }
})

t.test('a peer plugin registered by hand is a register-time error that says what to do', async t => {
  for (const [plugin, peer, option] of [[faultlineSse, fastifySse, 'sse'], [faultlineWebsocket, fastifyWebsocket, 'websocket']] as const) {
    const app = Fastify({ logger: false })
    await app.register(faultlineHttp)
    await app.register(peer as unknown as FastifyPluginAsync)
    app.register(plugin as FastifyPluginAsync)
    const err = await app.ready().then(() => undefined, (e: unknown) => e as Error & { code?: string })
    t.equal(err?.code, 'FST_FAULTLINE_PEER_REGISTERED')
    t.match(err?.message, new RegExp(option), `the message points at the ${option} option: ${err?.message}`)
    await app.close()
  }
})
