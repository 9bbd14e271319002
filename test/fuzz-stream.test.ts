// Property-based tests over thrown values through reply.streamSafe(), over a
// real loopback socket: before the first byte a valid problem+json; after it,
// ndjson framing ends with exactly one parseable `error` record and raw
// framing is cut (never a clean end).
import t from 'tap'
import fc from 'fast-check'
import { Agent, request } from 'undici'
import { guardProcess } from './helpers/guard.js'
import { streamApp } from './helpers/stream-app.js'
import { RUNS, thrownOrFault } from './helpers/arbitraries.js'
import { ndjsonErrorProblem, problemResponseProblem } from './helpers/chaos-checks.js'

guardProcess(t)

t.test('anything a source throws keeps the stream contract', async t => {
  let current: unknown
  let stopped = 0
  function source (first: unknown): () => AsyncGenerator<unknown> {
    return async function * () {
      try {
        if (first !== undefined) yield first
        throw current
      } finally {
        stopped++
      }
    }
  }
  const { url } = await streamApp(t, app => {
    app.get('/ndjson', async (_req, reply) => reply.streamSafe(source({ n: 1 })(), { framing: 'ndjson' }))
    app.get('/raw', async (_req, reply) => reply.streamSafe(source('first')() as AsyncGenerator<string>))
    app.get('/before', async (_req, reply) => reply.streamSafe(source(undefined)(), { framing: 'ndjson' }))
  })
  const dispatcher = new Agent({ connections: 4, headersTimeout: 10_000, bodyTimeout: 10_000 })
  t.teardown(() => dispatcher.close())
  let failure: string | undefined
  let runs = 0
  await fc.assert(fc.asyncProperty(thrownOrFault, fc.constantFrom('/ndjson', '/raw', '/before'), async (value, path) => {
    current = value
    runs++
    const res = await request(url + path, { dispatcher })
    if (path === '/raw') {
      // Cut without the terminating chunk: reading the body to its end must fail.
      const read = await res.body.text().then(() => 'a clean end', () => undefined)
      failure = res.statusCode === 200 ? read : `status ${res.statusCode}`
    } else {
      const body = await res.body.text()
      failure = path === '/before'
        ? problemResponseProblem(res.statusCode, res.headers['content-type'], body)
        : res.statusCode === 200 ? ndjsonErrorProblem(body) : `status ${res.statusCode}`
      if (failure !== undefined) failure += ` in ${JSON.stringify(body.slice(0, 600))}`
    }
    return failure === undefined
  }), { numRuns: RUNS * 3, endOnFailure: true }).catch(err => { throw new Error(`${String(failure)}\n${String(err)}`) })
  t.equal(stopped, runs, 'every producer ran its finally')
})
