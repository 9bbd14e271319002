// Memory of a resumed download: a 1 GiB body (size with RESUME_MB) served
// by reply.streamSafe with etag + length, whose source breaks at three
// offsets, read with the client's readBody (Range + If-Range resumes) and
// hashed as it arrives. The server runs in its own process, so each side's
// RSS is its own. Prints the RSS growth (peak - baseline) of both and checks
// the hash against the source's.
//   node --import tsx bench/resume-rss.ts
import { fork, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import { faultlineHttp, faultlineStream } from '../index.js'
import { readBody } from '../client/index.js'

const MB = Number(process.env.RESUME_MB ?? 1024)
const SIZE = MB * 1024 * 1024
const CHUNK = 64 * 1024
// A prime-length pattern: byte p of the body is PATTERN[p % PRIME], so any offset can start anywhere.
const PRIME = 65_521
const PATTERN = Buffer.alloc(PRIME * 2)
for (let i = 0; i < PATTERN.length; i++) PATTERN[i] = (i % PRIME * 2_654_435_761 >>> 13) & 0xff
const BREAKS = [Math.floor(SIZE * 0.23), Math.floor(SIZE * 0.51), Math.floor(SIZE * 0.87)]

/** Bytes [at, at + n) of the body, as a view of the pattern (nothing allocated per chunk). */
function bytesAt (at: number, n: number): Buffer {
  const start = at % PRIME
  return PATTERN.subarray(start, start + n)
}

const mib = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1)

async function server (): Promise<void> {
  let peak = process.memoryUsage.rss()
  const baseline = peak
  const breaks = [...BREAKS]
  const app = Fastify()
  await app.register(faultlineHttp)
  await app.register(faultlineStream)
  app.get('/big', async (request, reply) => reply.streamSafe(async function * (signal, { offset }) {
    while (breaks.length > 0 && breaks[0]! <= offset) breaks.shift()
    const failAt = breaks[0]
    for (let at = offset; at < SIZE && !signal.aborted;) {
      const end = Math.min(at + Math.min(CHUNK, PRIME), SIZE, failAt ?? SIZE)
      yield bytesAt(at, end - at)
      at = end
      if (at === failAt) throw new Error(`broke at ${at}`)
      const rss = process.memoryUsage.rss()
      if (rss > peak) peak = rss
    }
  }, { etag: '"big-v1"', length: SIZE }))
  app.get('/stats', async () => ({ baseline, peak }))
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  process.send!({ url })
}

async function client (): Promise<void> {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['server'], { execArgv: process.execArgv })
  const url = await new Promise<string>(resolve => child.once('message', (m: { url: string }) => resolve(m.url)))
  const expected = createHash('sha256')
  for (let at = 0; at < SIZE; at += PRIME) expected.update(bytesAt(at, Math.min(PRIME, SIZE - at)))
  const want = expected.digest('hex')

  const requests: string[] = []
  const counting = async (input: string | URL, init?: RequestInit): Promise<Response> => {
    requests.push(new Headers(init?.headers).get('range') ?? '(none)')
    return await fetch(input, init)
  }
  globalThis.gc?.()
  const baseline = process.memoryUsage.rss()
  let peak = baseline
  const hash = createHash('sha256')
  let received = 0
  const started = Date.now()
  for await (const chunk of readBody(`${url}/big`, { fetch: counting, retry: { attempts: 5, baseDelay: 10, maxDelay: 100 } })) {
    hash.update(chunk)
    received += chunk.byteLength
    if ((received & 0xfffff) < chunk.byteLength) {
      const rss = process.memoryUsage.rss()
      if (rss > peak) peak = rss
    }
  }
  const seconds = (Date.now() - started) / 1000
  const stats = await (await fetch(`${url}/stats`)).json() as { baseline: number, peak: number }
  child.kill()
  const got = hash.digest('hex')
  console.log(`body ${MB} MiB, ${requests.length} requests: ${requests.join(', ')}`)
  console.log(`hash ${got === want ? 'equal to the source' : 'DIFFERENT from the source'} (${got.slice(0, 16)}…)`)
  console.log(`client (readBody + sha256): RSS ${mib(baseline)} -> peak ${mib(peak)} MiB, growth ${mib(peak - baseline)} MiB`)
  console.log(`server (streamSafe):        RSS ${mib(stats.baseline)} -> peak ${mib(stats.peak)} MiB, growth ${mib(stats.peak - stats.baseline)} MiB`)
  console.log(`${seconds.toFixed(1)} s, ${(MB / seconds).toFixed(0)} MiB/s`)
  if (got !== want) process.exitCode = 1
}

if (process.argv[2] === 'server') await server()
else await client()
