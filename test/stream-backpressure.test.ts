import t, { type Test } from 'tap'
import { fork } from 'node:child_process'
import { Readable } from 'node:stream'
import { guardProcess } from './helpers/guard.js'
import { streamApp } from './helpers/stream-app.js'

guardProcess(t)

const MB = 1024 * 1024
const TOTAL = 100 * MB
const CHUNK = 64 * 1024

const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

/**
 * A slow reader: reads 1 MB, pauses long enough for every buffer between the
 * source and the client to fill, checks how far ahead the source got, then
 * reads the rest with a pause every 8 MB. Returns the bytes read.
 */
async function slowRead (t: Test, url: string, producedBytes: () => Promise<number>): Promise<number> {
  const response = await fetch(url)
  t.equal(response.status, 200)
  const reader = response.body!.getReader()
  let read = 0
  let nextPause = MB
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    read += value.byteLength
    if (read < nextPause) continue
    if (nextPause === MB) {
      await sleep(500)
      const ahead = (await producedBytes()) - read
      t.ok(ahead < 32 * MB, `while the client pauses, the source stops: ${(ahead / MB).toFixed(1)} MB produced beyond what was read`)
      nextPause = 8 * MB
    } else {
      await sleep(20)
      nextPause += 8 * MB
    }
  }
  return read
}

t.test('backpressure: 100 MB to a slow reader keeps the server\'s RSS growth under 50 MB', async t => {
  const child = fork(new URL('./helpers/stream-rss-server.ts', import.meta.url), {
    execArgv: ['--import', 'tsx'],
    // Coverage comes from the in-process tests; tap's coverage of a tsx child would be mapped wrongly.
    env: { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  t.teardown(() => { if (child.connected) child.disconnect() })
  const { address } = await new Promise<{ address: string }>((resolve, reject) => {
    child.once('message', message => resolve(message as { address: string }))
    child.once('error', reject)
    child.once('exit', code => reject(new Error(`the server process exited with ${code}`)))
  })
  const stats = async (): Promise<{ baseline: number, peak: number, produced: number }> => await (await fetch(address + '/stats')).json() as never
  for (const kind of ['readable', 'generator']) {
    // Warm up (JIT, first-request allocations), then measure from here.
    t.equal((await (await fetch(`${address}/stream?mb=8&kind=${kind}`)).arrayBuffer()).byteLength, 8 * MB)
    await (await fetch(address + '/mark')).json()
    const read = await slowRead(t, `${address}/stream?mb=100&kind=${kind}`, async () => (await stats()).produced)
    t.equal(read, TOTAL, `${kind}: every byte arrives`)
    const { baseline, peak } = await stats()
    const growth = peak - baseline
    t.ok(growth < 50 * MB, `${kind}: the server's RSS grew by ${(growth / MB).toFixed(1)} MB (baseline ${(baseline / MB).toFixed(0)} MB)`)
  }
})

t.test('idleTimeout does not count time spent waiting for a slow client', async t => {
  let produced = 0
  const readable = (): Readable => new Readable({
    read () {
      if (produced >= TOTAL) {
        this.push(null)
        return
      }
      produced += CHUNK
      this.push(Buffer.alloc(CHUNK, 97))
    }
  })
  async function * generator (): AsyncGenerator<Buffer> {
    while (produced < TOTAL) {
      produced += CHUNK
      yield Buffer.alloc(CHUNK, 98)
    }
  }
  const s = await streamApp(t, app => {
    // The reader pauses for 500 ms; an idle timer running during backpressure would fire.
    app.get('/readable', async (request, reply) => reply.streamSafe(readable(), { idleTimeout: 100 }))
    app.get('/generator', async (request, reply) => reply.streamSafe(generator(), { idleTimeout: 100 }))
  })
  for (const path of ['/readable', '/generator']) {
    produced = 0
    t.equal(await slowRead(t, s.url + path, async () => produced), TOTAL, path)
  }
  t.same(s.faults(), [], 'no GatewayTimeoutError')
})
