// Property: whatever a route throws, server -> wire -> client gives the same
// class, code, status, exposed message and exposed details, over HTTP,
// ndjson, SSE and WebSocket. One server per transport; `inject` where a
// socket adds nothing (HTTP, ndjson, SSE), a real ws socket for WebSocket.
import t from 'tap'
import fc from 'fast-check'
import { deepStrictEqual, ok, strictEqual } from 'node:assert'
import Fastify, { type FastifyInstance } from 'fastify'
import type { AddressInfo } from 'node:net'
import { WebSocket } from 'ws'
import { faultlineHttp } from '../plugins/http.js'
import { faultlineStream } from '../plugins/stream.js'
import { faultlineSse } from '../plugins/sse.js'
import { faultlineWebsocket } from '../plugins/websocket.js'
import { defineFault, faultCatalog, faultClassFor, type Fault, type FaultClass } from '../lib/fault.js'
import { faultFromResponse, readNdjson, readEvents, connectSocket, type WebSocketConstructor } from '../client/index.js'
import { nastyString } from './helpers/arbitraries.js'
import { rejection } from './helpers/iterate.js'

const RUNS = Math.max(500, Number(process.env.FAULTLINE_FUZZ_RUNS ?? 0))
const BUILTINS = faultCatalog().map(e => faultClassFor(e.code)!)

interface Case { Cls: FaultClass, message: string, details: Record<string, unknown> | undefined, expose: boolean | undefined }

let nextCode = 0
const faultClass = fc.oneof(
  fc.constantFrom(...BUILTINS),
  // A fresh defineFault class, as a module shared by both halves would define it.
  fc.record({ status: fc.integer({ min: 400, max: 599 }), retryable: fc.option(fc.boolean(), { nil: undefined }) })
    .map(({ status, retryable }) => defineFault({ code: `PROP_${status}_${nextCode++}`, status, retryable }))
)
const jsonish = fc.oneof(fc.string({ maxLength: 20 }), fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.integer(), { maxLength: 3 }))
const faultCase: fc.Arbitrary<Case> = fc.record({
  Cls: faultClass,
  message: nastyString,
  details: fc.option(fc.dictionary(fc.stringMatching(/^x[a-zA-Z0-9]{0,8}$/), jsonish, { maxKeys: 4 }), { nil: undefined }),
  expose: fc.option(fc.boolean(), { nil: undefined })
})

const cases = new Map<string, Case>()
let caseId = 0
function register (c: Case): string {
  const id = String(caseId++)
  cases.set(id, c)
  return id
}
function thrown (id: string): Fault {
  const c = cases.get(id)!
  return new c.Cls(c.message, { details: c.details, expose: c.expose })
}

/** The client's fault is the thrown one, as far as the wire may tell. */
function same (got: unknown, c: Case): void {
  const f = new c.Cls(c.message, { details: c.details, expose: c.expose })
  ok(got instanceof c.Cls, `${String(got)} is a ${c.Cls.name}`)
  const g = got as Fault
  strictEqual(g.code, f.code)
  strictEqual(g.status, f.status)
  strictEqual(g.message, f.expose ? f.message : f.title)
  deepStrictEqual(g.details, f.exposeDetails && f.details !== undefined && Object.keys(f.details).length > 0 ? JSON.parse(JSON.stringify(f.details)) : undefined)
}

function responseOf (res: { rawPayload: Buffer, statusCode: number, headers: Record<string, unknown> }): Response {
  const headers = new Headers()
  for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers.set(k, String(v))
  return new Response(res.statusCode === 204 ? null : new Uint8Array(res.rawPayload), { status: res.statusCode, headers })
}

async function build (): Promise<FastifyInstance> {
  const app = Fastify({ logger: false })
  await app.register(faultlineHttp)
  await app.register(faultlineStream)
  await app.register(faultlineSse)
  await app.register(faultlineWebsocket)
  app.get<{ Params: { id: string } }>('/http/:id', async request => { throw thrown(request.params.id) })
  app.get<{ Params: { id: string } }>('/ndjson/:id', async (request, reply) => reply.streamSafe((async function * () {
    yield 1
    throw thrown(request.params.id)
  }()), { framing: 'ndjson' }))
  app.get<{ Params: { id: string } }>('/sse/:id', { sse: true }, async (request, reply) => {
    await reply.sse.send(async function * () {
      yield { data: 1 }
      throw thrown(request.params.id)
    }())
  })
  app.get<{ Params: { id: string } }>('/ws/:id', { websocket: true }, (socket, request) => { throw thrown(request.params.id) })
  return app
}

const app = await build()
t.teardown(() => app.close())
await app.listen({ port: 0, host: '127.0.0.1' })
const wsBase = `ws://127.0.0.1:${(app.server.address() as AddressInfo).port}`

t.test('HTTP: problem+json -> faultFromResponse', async t => {
  await fc.assert(fc.asyncProperty(faultCase, async c => {
    const res = await app.inject(`/http/${register(c)}`)
    same(await faultFromResponse(responseOf(res)), c)
  }), { numRuns: RUNS })
  t.pass(`${RUNS} runs`)
})

t.test('ndjson: error record -> readNdjson throws', async t => {
  await fc.assert(fc.asyncProperty(faultCase, async c => {
    const res = await app.inject(`/ndjson/${register(c)}`)
    const items: unknown[] = []
    const err = await rejection((async () => { for await (const item of readNdjson(responseOf(res))) items.push(item) })())
    deepStrictEqual(items, [1])
    same(err, c)
  }), { numRuns: RUNS })
  t.pass(`${RUNS} runs`)
})

t.test('SSE: error event -> readEvents throws', async t => {
  await fc.assert(fc.asyncProperty(faultCase, async c => {
    const res = await app.inject({ url: `/sse/${register(c)}`, headers: { accept: 'text/event-stream' } })
    const data: string[] = []
    const err = await rejection((async () => { for await (const m of readEvents(responseOf(res), { retry: false })) data.push(m.data) })())
    deepStrictEqual(data, ['1'])
    same(err, c)
  }), { numRuns: RUNS })
  t.pass(`${RUNS} runs`)
})

t.test('WebSocket: error frame and close -> connectSocket', async t => {
  // A socket per case: run them ten at a time (the runs are independent),
  // so 500 handshakes stay well within the file's timeout on a busy machine.
  const samples = fc.sample(faultCase, { numRuns: RUNS, seed: Number(process.env.FAULTLINE_FUZZ_SEED ?? Date.now() % 2 ** 31) })
  for (let i = 0; i < samples.length; i += 10) {
    await Promise.all(samples.slice(i, i + 10).map(async c => {
      const frames: Fault[] = []
      const socket = connectSocket(`${wsBase}/ws/${register(c)}`, {
        WebSocket: WebSocket as unknown as WebSocketConstructor,
        retry: false,
        onFault: f => { frames.push(f) }
      })
      const final = await socket.closed
      try {
        strictEqual(frames.length, 1, 'one error frame')
        same(frames[0], c)
        same(final, c)
      } catch (err) {
        throw new Error(`${c.Cls.name} ${JSON.stringify({ message: c.message, details: c.details, expose: c.expose })}: ${(err as Error).message}`)
      }
    }))
  }
  t.pass(`${samples.length} runs`)
})
