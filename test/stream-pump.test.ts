import t from 'tap'
import { EventEmitter, once } from 'node:events'
import { Readable } from 'node:stream'
import { guardProcess } from './helpers/guard.js'
import { waitFor } from './helpers/stream-app.js'
import { StreamPump, type StreamHost, type PumpOptions } from '../lib/stream-pump.js'
import { ndjsonData, ndjsonError, NDJSON_END } from '../lib/ndjson.js'
import { sourceFault, resolveStreamOptions, rawChunk } from '../lib/stream-source.js'
import { toFault, toProblem, stringifyProblem, NotFoundError, type Fault } from '../index.js'

guardProcess(t)

/** A response stand-in: records what is written and lets a test emit 'close' and 'drain'. */
class FakeSink extends EventEmitter {
  writableEnded = false
  writes: Array<string | Uint8Array> = []
  ended: string | Uint8Array | undefined = undefined
  writeResult = true
  write (chunk: string | Uint8Array): boolean {
    this.writes.push(chunk)
    return this.writeResult
  }

  end (chunk?: string | Uint8Array): void {
    this.ended = chunk ?? ''
  }
}

interface Calls {
  commit: number
  before: Fault[]
  after: Fault[]
  truncated: number
  /** Error records ended with the stuck-client guard. */
  guarded: number
  gone: boolean[]
}

function harness (options: Partial<PumpOptions> = {}, commit: () => void = () => {}): { pump: StreamPump, sink: FakeSink, calls: Calls } {
  const sink = new FakeSink()
  const calls: Calls = { commit: 0, before: [], after: [], truncated: 0, guarded: 0, gone: [] }
  const host: StreamHost = {
    sink,
    commit () { calls.commit++; commit() },
    failBefore (err) { calls.before.push(toFault(err)) },
    failAfter (err) { const fault = toFault(err); calls.after.push(fault); return fault },
    truncate () { calls.truncated++ },
    cutIfStuck () { calls.guarded++ },
    clientGone (committed) { calls.gone.push(committed) },
    problemJson (fault) { return stringifyProblem(toProblem(fault)) }
  }
  const pump = new StreamPump(host, { type: undefined, framing: 'raw', idleTimeout: 0, headOnly: false, ...options })
  return { pump, sink, calls }
}

const tick = async (): Promise<void> => await new Promise(resolve => setImmediate(resolve))

t.test('Readable sources in odd states', async t => {
  const errored = new Readable({ read () {} })
  errored.on('error', () => {})
  errored.destroy(new Error('failed before streamSafe'))
  const a = harness()
  a.pump.start(errored)
  t.same(a.calls.before.map(f => [f.status, f.message]), [[500, 'failed before streamSafe']], 'an errored stream fails before the response, once')

  const ended = new Readable({ read () { this.push(null) } })
  ended.resume()
  await once(ended, 'close')
  const b = harness()
  b.pump.start(ended)
  t.equal(b.calls.commit, 1)
  t.equal(b.sink.ended, '', 'an ended stream is an empty body')

  const destroyed = new Readable({ read () {} })
  destroyed.destroy()
  const c = harness()
  c.pump.start(destroyed)
  t.same(c.calls.before.map(f => [f.status, f.message]), [[502, 'The stream source was destroyed before it started']])

  const closesEarly = new Readable({ read () {} })
  const d = harness()
  d.pump.start(closesEarly)
  closesEarly.push('some')
  await tick()
  closesEarly.destroy()
  await tick()
  t.same(d.calls.after.map(f => [f.status, f.message]), [[502, 'The stream source closed before it ended']], 'a source destroyed without an error mid-way, once')
  t.equal(d.calls.truncated, 1)

  const lateError = new Readable({ read () { this.push('x'); this.push(null) } })
  const e = harness()
  e.pump.start(lateError)
  await once(lateError, 'end')
  lateError.emit('error', new Error('after the end'))
  t.same(e.calls.after, [], 'an error after the end is ignored (and does not crash)')
})

t.test('iterators that misbehave', async t => {
  const a = harness()
  a.pump.start({ [Symbol.asyncIterator]: () => ({ next () { throw new Error('sync throw') } }) })
  t.same(a.calls.before.map(f => f.message), ['sync throw'])

  for (const [result, word] of [[5, 'number'], [null, 'null']] as const) {
    const b = harness()
    b.pump.start({ [Symbol.asyncIterator]: () => ({ next: async () => result }) })
    await tick()
    t.same(b.calls.before.map(f => f.message), [`The stream source's iterator returned ${word} instead of an iterator result`])
  }

  // return() that throws, and one that rejects: neither escapes.
  for (const ret of [() => { throw new Error('return throws') }, async () => { throw new Error('return rejects') }]) {
    const c = harness()
    c.pump.start({ [Symbol.asyncIterator]: () => ({ next: async () => ({ done: false, value: 'x' }), return: ret }) })
    await tick()
    c.sink.emit('close')
    await tick()
    t.same(c.calls.gone, [true])
  }

  // An iterator without return(): nothing to call.
  const d = harness()
  d.pump.start({ [Symbol.asyncIterator]: () => ({ next: async () => await new Promise(() => {}) }) })
  d.sink.emit('close')
  t.same(d.calls.gone, [false])

  // A next() that rejects after the client left is not reported again.
  let rejectNext!: (err: unknown) => void
  const e = harness()
  e.pump.start({ [Symbol.asyncIterator]: () => ({ next: async () => await new Promise((_resolve, reject) => { rejectNext = reject }) }) })
  e.sink.emit('close')
  rejectNext(new Error('late'))
  await tick()
  t.same(e.calls.before, [])
  t.same(e.calls.after, [])
})

t.test('drain without backpressure, and a commit that throws', async t => {
  const a = harness()
  a.pump.start({ [Symbol.asyncIterator]: () => ({ next: async () => await new Promise(() => {}) }) })
  a.sink.emit('drain')
  t.equal(a.calls.commit, 0, "a 'drain' the pump did not wait for changes nothing")

  const b = harness({}, () => { throw new Error('headers rejected') })
  b.pump.start(Readable.from([]))
  await tick()
  t.same(b.calls.before.map(f => f.message), ['headers rejected'], 'a commit that throws on an empty source fails before the response, once')
  t.equal(b.sink.ended, undefined)
})

t.test('an ndjson error record that cannot be rendered falls back to truncation, never a hang', async t => {
  const h = harness({ framing: 'ndjson' })
  h.pump.start((async function * () { yield { n: 1 }; throw new Error('mid-stream') })())
  // The renderer breaks only now, after the first record went out.
  ;(h as unknown as { pump: { host: StreamHost } }).pump.host.problemJson = () => { throw new URIError('URI malformed') }
  for (let i = 0; i < 10 && h.calls.truncated === 0; i++) await tick()
  t.equal(h.calls.after.length, 1, 'reported once')
  t.equal(h.calls.truncated, 1, 'truncated instead')
  t.equal(h.calls.guarded, 0)
  t.equal(h.sink.ended, undefined, 'no clean end')
})

t.test('an ndjson error record is ended with the guard against a client that does not read', async t => {
  const h = harness({ framing: 'ndjson' })
  h.pump.start((async function * () { yield { n: 1 }; throw new Error('mid-stream') })())
  for (let i = 0; i < 10 && h.sink.ended === undefined; i++) await tick()
  t.match(JSON.parse(String(h.sink.ended)), { type: 'error', error: { status: 500 } })
  t.equal(h.calls.guarded, 1)
  t.equal(h.calls.truncated, 0)
})

t.test('a source that opens after the stream ended is stopped at once', async t => {
  let resolveOpen!: (value: unknown) => void
  const open = async (): Promise<unknown> => await new Promise(resolve => { resolveOpen = resolve })

  let returned = false
  const a = harness()
  a.pump.start(open)
  a.sink.emit('close')
  resolveOpen({ [Symbol.asyncIterator]: () => ({ next: async () => ({ done: true, value: undefined }), return: async () => { returned = true; return { done: true, value: undefined } } }) })
  await waitFor(() => returned, 'return() on the late iterator')

  const b = harness()
  b.pump.start(open)
  b.sink.emit('close')
  resolveOpen({ [Symbol.asyncIterator]: () => { throw new Error('cannot iterate') } })
  await tick()

  const c = harness()
  c.pump.start(open)
  c.sink.emit('close')
  resolveOpen(42)
  await tick()

  const late = new Readable({ read () {} })
  const d = harness()
  d.pump.start(open)
  d.sink.emit('close')
  resolveOpen(late)
  await tick()
  t.equal(late.destroyed, true)
  t.same([a, b, c, d].map(h => h.calls.gone), [[false], [false], [false], [false]])
})

t.test('lib helpers', async t => {
  t.equal(ndjsonData({ a: 1 }, 0), '{"type":"data","data":{"a":1}}\n')
  t.equal(ndjsonData(() => 1, 0), '{"type":"data","data":null}\n')
  t.equal(ndjsonData('line\nbreak', 0), '{"type":"data","data":"line\\nbreak"}\n', 'one record per line, always')
  t.equal(ndjsonData('a\u2028b\u2029c', 0), '{"type":"data","data":"a\\u2028b\\u2029c"}\n', 'data records escape U+2028/U+2029 as error records do')
  t.equal(JSON.parse(ndjsonData('a\u2028b', 0)).data, 'a\u2028b')
  t.equal(NDJSON_END, '{"type":"end"}\n')
  t.equal(ndjsonError('{"status":500}'), '{"type":"error","error":{"status":500}}\n')
  // eslint-disable-next-line no-throw-literal
  t.throws(() => ndjsonData({ toJSON () { throw 'a string' } }, 3), { code: 'FST_FAULTLINE_STREAM_CHUNK', message: /ndjson item 3 cannot be serialized as JSON \(not serializable\)/ })

  t.equal(rawChunk('s', 0), 's')
  t.throws(() => rawChunk(7, 2), { message: /chunk 2 is 7/ })

  t.match(sourceFault('plain string', true), { status: 502, code: 'BAD_GATEWAY' }, 'a thrown string while opening')
  t.match(sourceFault('plain string', false), { status: 500 })
  t.match(sourceFault(Object.assign(new Error('reset'), { code: 'ECONNRESET' }), false), { status: 502, message: 'The stream source failed: its peer closed the connection' })
  const own = new NotFoundError()
  t.equal(sourceFault(own, true), own)

  t.same(resolveStreamOptions(undefined, { idleTimeout: 5 }, false), { type: undefined, framing: 'raw', idleTimeout: 5 })
  t.same(resolveStreamOptions({ framing: 'ndjson', idleTimeout: 0, type: 'a/b' }, { idleTimeout: 5 }, false), { type: 'a/b', framing: 'ndjson', idleTimeout: 0 })
  t.same(resolveStreamOptions({}, { idleTimeout: 5 }, false), { type: undefined, framing: 'raw', idleTimeout: 5 })
})
