// Chaos for resumable streams: 200 downloads of a multi-MB body whose source
// breaks at random offsets 1-5 times each, read with the client's readBody.
// Every download ends with the source's exact bytes, every resumed request
// carries Range + If-Range for exactly where the previous one broke, and no
// download makes a request beyond one per break (within the policy's
// budget). Then the rolling deploy: two servers, the first closed
// mid-download, the client finishing on the second with identical bytes.
// (ndjson with ids: chaos-resume-ndjson.test.ts.)
import t from 'tap'
import Fastify from 'fastify'
import { guardProcess } from './helpers/guard.js'
import { makeBody, sha256, sliceSource } from './helpers/resumable.js'
import { breakPoints, resumeApp } from './helpers/resume-app.js'
import { prng, runAll } from './helpers/chaos-client.js'
import { within } from './helpers/within.js'
import { faultlineHttp, faultlineStream } from '../index.js'
import { readBody } from '../client/index.js'

guardProcess(t)

const DOWNLOADS = Math.max(200, Number(process.env.FAULTLINE_RESUME_CHAOS ?? 200) || 200)
const SIZE = 2 * 1024 * 1024
const POLICY = { attempts: 5, baseDelay: 1, maxDelay: 10 }
const seed = Number(process.env.FAULTLINE_CHAOS_SEED ?? Date.now() % 1_000_000)
const random = prng(seed)
t.comment(`seed ${seed} (FAULTLINE_CHAOS_SEED to replay)`)

t.test(`${DOWNLOADS} raw downloads, each broken 1-5 times at random offsets`, async t => {
  const body = makeBody(SIZE, seed)
  const expected = sha256(body)
  const s = await resumeApp(t, body, 0)
  const plans = new Map<string, number[]>()
  for (let i = 0; i < DOWNLOADS; i++) {
    const plan = breakPoints(random, SIZE)
    plans.set(`d${i}`, plan)
    s.plan(`d${i}`, { breaks: plan })
  }
  const hashes = new Map<string, string>()
  await runAll(DOWNLOADS, 8, async i => {
    const chunks: Uint8Array[] = []
    for await (const chunk of readBody(`${s.base}/raw/d${i}`, { retry: POLICY })) chunks.push(chunk)
    hashes.set(`d${i}`, sha256(chunks))
  })
  let wrongHash = 0
  let wrongRequests = 0
  let totalBreaks = 0
  for (const [key, plan] of plans) {
    totalBreaks += plan.length
    if (hashes.get(key) !== expected) wrongHash++
    const requests = s.seen.filter(r => r.url === `/raw/${key}`)
    const expectedHeaders = [[undefined, undefined], ...plan.map(at => [`bytes=${at}-`, '"chaos-v1"'])]
    if (JSON.stringify(requests.map(r => [r.range, r.ifRange])) !== JSON.stringify(expectedHeaders)) {
      wrongRequests++
      if (wrongRequests <= 3) t.comment(`${key}: breaks ${plan.join(',')}, requests ${JSON.stringify(requests.map(r => r.range))}`)
    }
  }
  t.equal(hashes.size, DOWNLOADS, 'every download completed')
  t.equal(wrongHash, 0, 'every download hashes equal to the source')
  t.equal(wrongRequests, 0, 'one request per break, each resumed one with Range at the break and If-Range')
  t.equal(s.seen.length, DOWNLOADS + totalBreaks, `${DOWNLOADS + totalBreaks} requests in all, none beyond the breaks`)
  t.ok(Math.max(...[...plans.values()].map(p => p.length)) <= POLICY.attempts, 'every download stayed within the retry budget')
})

t.test('rolling deploy: the first server closes mid-download, the client finishes on the second', async t => {
  const body = makeBody(8 * 1024 * 1024, seed + 1)
  const seen: Array<{ server: string, range: string | undefined, ifRange: string | undefined }> = []
  async function server (name: string): Promise<{ close: () => Promise<void>, base: string }> {
    const app = Fastify({ logger: false, forceCloseConnections: true })
    await app.register(faultlineHttp)
    await app.register(faultlineStream, { closeTimeout: 50 })
    app.addHook('onRequest', async request => {
      seen.push({ server: name, range: request.headers.range, ifRange: request.headers['if-range'] as string | undefined })
    })
    // Same entity on both: the etag is derived from the content (here, its hash), never from the instance.
    app.get('/export', async (request, reply) => reply.streamSafe(async function * (signal, resume) {
      for await (const chunk of sliceSource(body, { chunk: 64 * 1024 })(signal, resume)) {
        yield chunk
        await new Promise(resolve => setTimeout(resolve, 2)) // a slow export
      }
    }, { etag: sha256(body).slice(0, 32), length: body.length }))
    const base = await app.listen({ port: 0, host: '127.0.0.1' })
    t.teardown(() => app.close())
    return { close: async () => { await app.close() }, base }
  }
  const first = await server('first')
  const second = await server('second')
  let target = first.base
  // A load balancer: new requests go to whichever instance is in service.
  const balanced = async (url: string | URL, init?: RequestInit): Promise<Response> => await fetch(String(url).replace('http://lb', target), init)
  const chunks: Uint8Array[] = []
  let received = 0
  let closing: Promise<void> | undefined
  for await (const chunk of readBody('http://lb/export', { fetch: balanced, retry: POLICY })) {
    chunks.push(chunk)
    received += chunk.byteLength
    if (closing === undefined && received > body.length / 4) {
      target = second.base // out of rotation first, then shut down
      closing = first.close()
    }
  }
  await within(t, closing!, 'the first server to close')
  t.equal(sha256(chunks), sha256(body), 'identical bytes')
  t.equal(seen.length, 2)
  t.match(seen[0], { server: 'first', range: undefined })
  t.match(seen[1], { server: 'second', range: /^bytes=\d+-$/, ifRange: `"${sha256(body).slice(0, 32)}"` })
  const resumedAt = Number(/^bytes=(\d+)-$/.exec(seen[1]!.range!)![1])
  t.ok(resumedAt > body.length / 4 && resumedAt < body.length, `resumed at byte ${resumedAt}`)
})
