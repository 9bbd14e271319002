import t, { type Test } from 'tap'
import { Readable } from 'node:stream'
import { createReadStream, fstatSync, mkdtempSync, rmSync, writeFileSync, type ReadStream } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ServerResponse } from 'node:http'
import { guardProcess } from './helpers/guard.js'
import { streamApp, waitFor, foreignStreamLogs, type StreamApp } from './helpers/stream-app.js'

guardProcess(t)

/** Calls `onWait` each time a write to `raw` hits backpressure (returns false). */
function countDrainWaits (raw: ServerResponse, onWait: () => void): void {
  const write = raw.write.bind(raw)
  raw.write = ((chunk: Buffer) => {
    const ok = write(chunk)
    if (!ok) onWait()
    return ok
  }) as ServerResponse['write']
}

/** Opens `path`, reads the first chunk of the body, then aborts the request. */
async function readOneChunkThenAbort (url: string): Promise<void> {
  const controller = new AbortController()
  const response = await fetch(url, { signal: controller.signal })
  const reader = response.body!.getReader()
  await reader.read()
  controller.abort()
  await reader.read().catch(() => {})
}

/** Checks that the only fault lines are client aborts, at debug, and that nothing else complained. */
function assertQuietAbort (t: Test, s: StreamApp, phase: string, count = 1): void {
  const faults = s.faults()
  t.equal(faults.length, count, 'reported once per abort')
  for (const line of faults) {
    t.match(line, { level: 20, transport: 'stream', phase, handled: true, fault: { code: 'CLIENT_CLOSED', status: 499 } }, 'a client abort, at debug')
  }
  t.same(s.lines.filter(l => l.level >= 40), [], 'no warning or error line')
  t.same(foreignStreamLogs(s.lines), [])
}

t.test('client abort mid-stream: the generator is return()ed and its finally runs', async t => {
  let finished = false
  let pendingAtClose: boolean | undefined
  const s = await streamApp(t, app => {
    app.get('/', async (request, reply) => {
      const result = reply.streamSafe(async function * () {
        try {
          for (let i = 0; ; i++) {
            await new Promise(resolve => setImmediate(resolve))
            yield `line ${i}\n`
          }
        } finally {
          finished = true
        }
      }())
      reply.raw.on('close', () => { pendingAtClose = reply.raw.listenerCount('drain') > 0 })
      return result
    })
  })
  await readOneChunkThenAbort(s.url + '/')
  await waitFor(() => finished, "the generator's finally")
  await waitFor(() => s.faults().length === 1, 'the abort report')
  t.equal(pendingAtClose, false, 'the pump let go of the response by the time its close event ran')
  assertQuietAbort(t, s, 'mid-stream')
  t.match(s.reports[0]!.context, { transport: 'stream', phase: 'mid-stream' })
  t.equal(s.reports[0]!.fault.status, 499)
})

t.test('client abort while the server waits for drain: the source is still stopped', async t => {
  let finished = false
  let drainWaits = 0
  const s = await streamApp(t, app => {
    app.get('/', (request, reply) => {
      const raw = reply.raw
      countDrainWaits(raw, () => { drainWaits++ })
      reply.streamSafe(async function * () {
        const chunk = Buffer.alloc(64 * 1024, 120)
        try {
          for (;;) yield chunk
        } finally {
          finished = true
        }
      }())
    })
  })
  const controller = new AbortController()
  const response = await fetch(s.url + '/', { signal: controller.signal })
  t.equal(response.status, 200)
  // Never read the body: the socket buffers fill and the server must wait for 'drain'.
  await waitFor(() => drainWaits > 0, 'the server to hit backpressure')
  controller.abort()
  await waitFor(() => finished, "the generator's finally")
  await waitFor(() => s.faults().length === 1, 'the abort report')
  assertQuietAbort(t, s, 'mid-stream')
})

t.test('client abort: a Readable source is destroyed and the signal aborted, at once', async t => {
  let source: Readable | undefined
  let signal: AbortSignal | undefined
  let atClose: { destroyed: boolean, aborted: boolean } | undefined
  const s = await streamApp(t, app => {
    app.get('/', (request, reply) => {
      reply.streamSafe(sig => {
        signal = sig
        let i = 0
        source = new Readable({
          read () {
            setImmediate(() => this.push(`chunk ${i++}\n`))
          }
        })
        return source
      })
      // Registered after the pump's own listener: it sees the state the pump left.
      reply.raw.on('close', () => { atClose = { destroyed: source!.destroyed, aborted: signal!.aborted } })
    })
  })
  await readOneChunkThenAbort(s.url + '/')
  await waitFor(() => atClose !== undefined, 'the response to close')
  t.same(atClose, { destroyed: true, aborted: true }, 'destroyed and aborted in the same turn as the close event')
  await waitFor(() => s.faults().length === 1, 'the abort report')
  assertQuietAbort(t, s, 'mid-stream')
  t.equal(source!.listenerCount('data'), 0, 'no data listener left on the source')
})

t.test('client abort before the first byte: reported before-response, source stopped', async t => {
  let started = false
  let finished = false
  let signal: AbortSignal | undefined
  const s = await streamApp(t, app => {
    app.get('/', async (request, reply) => reply.streamSafe(async function * (sig: AbortSignal) {
      signal = sig
      started = true
      try {
        // Nothing to send yet: a source waiting on something slow stops with the signal.
        await new Promise(resolve => sig.addEventListener('abort', resolve))
        yield 'never sent'
      } finally {
        finished = true
      }
    }))
    app.get('/opening', async (request, reply) => reply.streamSafe(async () => {
      started = true
      await new Promise(resolve => setTimeout(resolve, 200))
      return Readable.from(['too late'])
    }))
  })
  const controller = new AbortController()
  const pending = fetch(s.url + '/', { signal: controller.signal }).catch((err: unknown) => err)
  await waitFor(() => started, 'the handler to start')
  controller.abort()
  t.match(await pending, { name: 'AbortError' })
  await waitFor(() => finished, "the generator's finally")
  t.equal(signal!.aborted, true)
  await waitFor(() => s.faults().length === 1, 'the abort report')
  assertQuietAbort(t, s, 'before-response')

  started = false
  const controller2 = new AbortController()
  const pending2 = fetch(s.url + '/opening', { signal: controller2.signal }).catch((err: unknown) => err)
  await waitFor(() => started, 'the source function to run')
  controller2.abort()
  await pending2
  await waitFor(() => s.faults().length === 2, 'the second abort report')
  // The Readable that opens after the client left is destroyed at once (nothing to assert on
  // the wire); give it the time to open, and check nothing complained.
  await new Promise(resolve => setTimeout(resolve, 300))
  assertQuietAbort(t, s, 'before-response', 2)
})

t.test("client abort: a file stream's descriptor is closed", async t => {
  const dir = mkdtempSync(join(tmpdir(), 'faultline-stream-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'big.bin')
  writeFileSync(file, Buffer.alloc(32 * 1024 * 1024, 7))
  let stream: ReadStream | undefined
  let fd: number | undefined
  let closed = false
  const s = await streamApp(t, app => {
    app.get('/', (request, reply) => {
      stream = createReadStream(file)
      stream.on('open', descriptor => { fd = descriptor })
      stream.on('close', () => { closed = true })
      reply.streamSafe(stream)
    })
  })
  await readOneChunkThenAbort(s.url + '/')
  await waitFor(() => closed, 'the file stream to close')
  t.type(fd, 'number')
  t.equal(stream!.destroyed, true)
  t.throws(() => fstatSync(fd!), { code: 'EBADF' }, 'the descriptor is closed')
  await waitFor(() => s.faults().length === 1, 'the abort report')
  assertQuietAbort(t, s, 'mid-stream')
})

t.test('many aborted streams leave no timers or response listeners behind', async t => {
  const responses: ServerResponse[] = []
  const s = await streamApp(t, app => {
    app.get('/', (request, reply) => {
      responses.push(reply.raw)
      reply.streamSafe((async function * () {
        for (let i = 0; ; i++) {
          await new Promise(resolve => setImmediate(resolve))
          yield `line ${i}\n`
        }
      }()), { idleTimeout: 60_000 })
    })
  })
  const timers = (): number => process.getActiveResourcesInfo().filter(r => r === 'Timeout').length
  const before = timers()
  const rounds = 20
  for (let i = 0; i < rounds; i++) await readOneChunkThenAbort(s.url + '/')
  await waitFor(() => s.faults().length === rounds, 'every abort report')
  await waitFor(() => responses.every(r => r.destroyed), 'every response to close')
  t.ok(timers() < before + rounds / 2, `idle timers are cleared (${before} before, ${timers()} after ${rounds} aborts)`)
  for (const res of responses) {
    t.equal(res.listenerCount('drain'), 0)
  }
  assertQuietAbort(t, s, 'mid-stream', rounds)
})

t.test('a failure while a client is not reading: the truncated response is cut off once the socket idles', async t => {
  let fail: ((err: Error) => void) | undefined
  let closed = false
  let drainWaits = 0
  const s = await streamApp(t, app => {
    app.get('/', (request, reply) => {
      const raw = reply.raw
      countDrainWaits(raw, () => { drainWaits++ })
      raw.on('close', () => { closed = true })
      const chunk = Buffer.alloc(64 * 1024, 120)
      const source = new Readable({ read () { this.push(chunk) } })
      // A Readable can fail on its own while the pump has it paused.
      fail = err => source.destroy(err)
      reply.streamSafe(source)
    })
  })
  const response = await fetch(s.url + '/')
  t.equal(response.status, 200)
  // Never read: the server is stuck on backpressure when the source fails.
  await waitFor(() => drainWaits > 0, 'the server to hit backpressure')
  fail!(new Error('failed while the client was not reading'))
  await waitFor(() => s.faults().length === 1, 'the report')
  t.match(s.faults()[0], { level: 50, phase: 'mid-stream' })
  await waitFor(() => closed, 'the response to be cut off', 20_000)
  await response.body?.cancel().catch(() => {})
})
