// Type-level tests for reply.streamSafe(), checked by `npx tsc --noEmit`;
// the routes also run, so the checked code is known to work.
import t from 'tap'
import Fastify, { type FastifyReply } from 'fastify'
import { Readable } from 'node:stream'
import { guardProcess } from './helpers/guard.js'
import {
  faultlineHttp, faultlineStream,
  type FaultlineStreamOptions, type StreamSource, type StreamSourceValue, type StreamSafeOptions,
  type StreamSafeRawOptions, type StreamSafeNdjsonOptions, type StreamFraming, type StreamChunk,
  type StreamSafeResumableOptions, type StreamSafeNdjsonIdOptions, type StreamSourceFunction, type StreamResume, type RecordId
} from '../index.js'

guardProcess(t)

async function * text (): AsyncGenerator<string> { yield 'a' }
async function * records (): AsyncGenerator<{ id: number }> { yield { id: 1 } }

t.test('streamSafe types', async t => {
  const app = Fastify()
  await app.register(faultlineHttp)
  const pluginOptions: FaultlineStreamOptions = { idleTimeout: 1000 }
  await app.register(faultlineStream, pluginOptions)
  // @ts-expect-error idleTimeout is a number of milliseconds
  const badPluginOptions: FaultlineStreamOptions = { idleTimeout: '1s' }
  t.ok(badPluginOptions)

  app.get('/raw', async (request, reply) => {
    const returned: FastifyReply = reply.streamSafe(text())
    return returned
  })
  app.get('/readable', (request, reply) => { reply.streamSafe(Readable.from(['x']), { type: 'text/plain' }) })
  app.get('/ndjson', async (request, reply) => reply.streamSafe(records(), { framing: 'ndjson', idleTimeout: 500 }))
  app.get('/function', async (request, reply) => reply.streamSafe(signal => {
    const aborted: boolean = signal.aborted
    t.equal(aborted, false)
    return text()
  }))
  app.get('/fetch', async (request, reply) => reply.streamSafe(async signal => {
    const response = await app.inject({ url: '/raw' })
    t.ok(signal)
    return Readable.from([response.rawPayload])
  }))

  app.get('/resumable', async (request, reply) => reply.streamSafe((signal, resume) => {
    const offset: number = resume.offset
    const last: string | undefined = resume.lastEventId
    t.ok(last === undefined || typeof last === 'string')
    return Readable.from([Buffer.from('abc').subarray(offset)])
  }, { etag: '"v1"', length: 3 }))
  app.get('/ids', async (request, reply) => reply.streamSafe(async function * (signal, { lastEventId }) {
    if (lastEventId === undefined) yield { key: 'a', n: 1 }
  }, { framing: 'ndjson', id: item => item.key }))

  app.get('/wrong-resume', async (request, reply) => {
    // @ts-expect-error etag and length need a source function (it starts at an offset)
    reply.streamSafe(text(), { etag: '"v1"', length: 1 })
    // @ts-expect-error length is a number of bytes
    reply.streamSafe(() => text(), { etag: '"v1"', length: '1' })
    // @ts-expect-error the id function gets the item's type
    reply.streamSafe(async function * () { yield { key: 1 } }, { framing: 'ndjson', id: (item: { key: string }) => item.key })
    // @ts-expect-error ids need a source function (it starts after an id)
    reply.streamSafe(records(), { framing: 'ndjson', id: () => 'x' })
    return reply.send('checked only by the compiler')
  })

  app.get('/wrong', async (request, reply) => {
    // @ts-expect-error raw framing (the default) writes strings and bytes, not objects
    reply.streamSafe(records())
    // @ts-expect-error framing is 'raw' or 'ndjson'
    reply.streamSafe(text(), { framing: 'xml' })
    // @ts-expect-error idleTimeout is a number
    reply.streamSafe(text(), { idleTimeout: '5' })
    // @ts-expect-error a string is not a source (use reply.send)
    reply.streamSafe('body')
    return reply.send('checked only by the compiler')
  })

  const source: StreamSource<StreamChunk> = text()
  const value: StreamSourceValue<{ id: number }> = records()
  const framing: StreamFraming = 'ndjson'
  const common: StreamSafeOptions = { type: 'application/jsonl', framing, idleTimeout: 0 }
  const raw: StreamSafeRawOptions = { framing: 'raw' }
  const resumable: StreamSafeResumableOptions = { etag: 'v1', length: 0 }
  const withIds: StreamSafeNdjsonIdOptions<{ id: number }> = { framing: 'ndjson', id: item => String(item.id) }
  const fn: StreamSourceFunction<string> = (signal, resume: StreamResume) => { t.ok(resume.offset >= 0); return text() }
  const recordId: RecordId<string> = item => item
  t.ok(resumable !== undefined && withIds !== undefined && typeof fn === 'function' && typeof recordId === 'function')
  const nd: StreamSafeNdjsonOptions = { framing: 'ndjson' }
  // @ts-expect-error ndjson options must say so
  const notNd: StreamSafeNdjsonOptions = {}
  t.ok(source && value && common && raw && nd && notNd)

  t.equal((await app.inject('/raw')).body, 'a')
  t.equal((await app.inject('/readable')).body, 'x')
  t.equal((await app.inject('/ndjson')).body, '{"type":"data","data":{"id":1}}\n{"type":"end"}\n')
  t.equal((await app.inject('/function')).body, 'a')
  t.equal((await app.inject('/fetch')).body, 'a')
  const ranged = await app.inject({ url: '/resumable', headers: { range: 'bytes=1-' } })
  t.equal(ranged.statusCode, 206)
  t.equal(ranged.body, 'bc')
  t.equal((await app.inject({ url: '/ids', headers: { 'last-event-id': 'a' } })).body, '{"type":"end"}\n')
  await app.close()
})
