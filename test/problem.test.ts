import t from 'tap'
import { toProblem, stringifyProblem, NotFoundError, InternalError, ValidationError, defineFault, toFault } from '../index.js'
import fc from 'fast-check'
import { causeChain, detailsJson, preview, wellFormed, DEFAULT_MAX_DETAILS_BYTES, TOO_LARGE } from '../lib/problem.js'
import { renderProblem } from '../lib/problem-json.js'
import { escapeLineSeparators } from '../lib/json-line.js'
import { nastyString, RUNS } from './helpers/arbitraries.js'
import { guardProcess } from './helpers/guard.js'

guardProcess(t)

t.test('an exposed fault shows its message and details', async t => {
  const Pay = defineFault<{ invoice: string }>({ code: 'PROBLEM_PAY', status: 402 })
  const p = toProblem(new Pay('pay invoice 9', { details: { invoice: 'inv-9' } }), { instance: '/pay', requestId: 'req-1' })
  t.same(p, {
    type: 'about:blank',
    title: 'Payment Required',
    status: 402,
    detail: 'pay invoice 9',
    instance: '/pay',
    code: 'PROBLEM_PAY',
    requestId: 'req-1',
    invoice: 'inv-9'
  })
  t.same(Object.keys(toProblem(new NotFoundError())), ['type', 'title', 'status', 'detail', 'code'], 'no instance or requestId unless given')
})

t.test('typeBase builds the type URI from the code', async t => {
  t.equal(toProblem(new NotFoundError(), { typeBase: 'https://errors.example.com/' }).type, 'https://errors.example.com/not-found')
  const Odd = defineFault({ code: 'ODD CODE/ü', status: 400 })
  t.equal(toProblem(new Odd(), { typeBase: 'urn:x:' }).type, 'urn:x:' + encodeURIComponent('odd code/ü'))
})

t.test('an unexposed fault shows only its title and code', async t => {
  const f = new InternalError('db password=hunter2', { details: { query: 'SELECT secret' }, cause: new Error('socket hunter2') })
  const p = toProblem(f, { requestId: 'r' })
  t.same(p, { type: 'about:blank', title: 'Internal Server Error', status: 500, detail: 'Internal Server Error', code: 'INTERNAL', requestId: 'r' })
  t.notMatch(stringifyProblem(p), /hunter2|SELECT|stack/)
  const safe = toProblem(new InternalError('hidden', { details: { incident: 'abc' }, exposeDetails: true }))
  t.equal(safe.incident, 'abc', 'details marked safe are shown')
  t.equal(safe.detail, 'Internal Server Error')
  const hiddenDetails = toProblem(new NotFoundError('shown', { details: { internal: 1 }, exposeDetails: false }))
  t.equal(hiddenDetails.internal, undefined)
  t.equal(hiddenDetails.detail, 'shown')
})

t.test('details cannot overwrite standard members and hostile details are dropped', async t => {
  const p = toProblem(new NotFoundError('x', {
    details: JSON.parse('{"status":200,"type":"evil","title":"t","detail":"d","instance":"i","code":"c","requestId":"r","stack":"s","cause":"c","__proto__":{"polluted":true},"constructor":1,"ok":true}')
  }), { requestId: 'real' })
  t.equal(p.status, 404)
  t.equal(p.type, 'about:blank')
  t.equal(p.code, 'NOT_FOUND')
  t.equal(p.requestId, 'real')
  t.equal(p.ok, true)
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution')
  t.equal(Object.getPrototypeOf(p), Object.prototype)
  const getter = Object.defineProperty({ a: 1 }, 'b', { enumerable: true, get () { throw new Error('x') } })
  t.same(toProblem(new NotFoundError('x', { details: getter })).a, undefined, 'details whose getters throw are dropped whole')
  t.same(toProblem(new NotFoundError('x', { details: [1, 2] as unknown as Record<string, unknown> })).detail, 'x', 'array details are ignored')
  t.same(toProblem(new NotFoundError('x', { details: 'str' as unknown as Record<string, unknown> })).detail, 'x')
})

t.test('debug adds the real message, stack and cause chain', async t => {
  const root = Object.assign(new Error('root cause'), { code: 'EROOT' })
  const f = new InternalError('db password=hunter2', { cause: new Error('middle', { cause: root }), details: { q: 1 } })
  const p = toProblem(f, { debug: true })
  t.equal(p.detail, 'db password=hunter2')
  t.match(p.stack, /^InternalError: db password=hunter2/)
  t.equal(p.q, 1)
  t.match(p.cause, [{ name: 'Error', message: 'middle' }, { name: 'Error', message: 'root cause', code: 'EROOT' }])
  t.equal(p.cause?.length, 2, 'the whole chain, nothing more')
  t.equal(toProblem(new NotFoundError(), { debug: true }).cause, undefined, 'no cause, no member')
  const noStack = new NotFoundError()
  Object.defineProperty(noStack, 'stack', { value: undefined })
  t.equal(toProblem(noStack, { debug: true }).stack, undefined)
})

t.test('causeChain is bounded, cycle-safe and survives hostile links', async t => {
  const a = new Error('a') as Error & { cause?: unknown }
  const b = new Error('b', { cause: a })
  a.cause = b
  t.same(causeChain(a).map(c => c.message), ['a', 'b'], 'a cycle stops')
  let deep: unknown = 'bottom'
  for (let i = 0; i < 50; i++) deep = new Error(`e${i}`, { cause: deep })
  t.equal(causeChain(deep).length, 10, 'bounded')
  t.same(causeChain('text'), [{ name: 'string', message: 'text' }])
  t.same(causeChain({ name: 5, message: 6 }), [{ name: 'Object', message: '' }])
  const hostile = new Proxy({}, { get () { throw new Error('trap') } })
  t.same(causeChain(new Error('top', { cause: hostile })).map(c => c.message), ['top'], 'stops at a link it cannot read')
  t.same(causeChain(null), [])
})

t.test('stringifyProblem: one line of valid JSON, always', async t => {
  const f = new NotFoundError('line1\r\nline2\u2028\u2029 \ud800 </script> "q" \0', { details: { big: 1n as unknown } })
  const json = stringifyProblem(toProblem(f))
  t.notMatch(json, /[\r\n\u2028\u2029]/, 'no raw line breaks of any kind')
  const parsed = JSON.parse(json)
  t.equal(parsed.detail, 'line1\r\nline2\u2028\u2029 \ud800 </script> "q" \0', 'round-trips exactly')
  t.equal(parsed.big, undefined, 'unserializable details are dropped, standard members kept')
  t.equal(parsed.status, 404)
  const cyclic: Record<string, unknown> = {}
  cyclic.self = cyclic
  const c = JSON.parse(stringifyProblem(toProblem(new NotFoundError('c', { details: { cyclic } }), { requestId: 'r', instance: '/i' })))
  t.same(c, { type: 'about:blank', title: 'Not Found', status: 404, detail: 'c', instance: '/i', code: 'NOT_FOUND', requestId: 'r' })
  const validation = toFault(Object.assign(new Error('bad'), { validation: [{ instancePath: '/a', message: 'm' }] }))
  t.same(JSON.parse(stringifyProblem(toProblem(validation))).errors, [{ instancePath: '/a', message: 'm' }])
  t.ok(validation instanceof ValidationError)
})

t.test('stringifyProblem: the standard members as JSON.stringify writes them, in their order; other types coerced, never a throw', async t => {
  const ORDER = ['type', 'title', 'status', 'detail', 'instance', 'code', 'requestId', 'retryAfter'] as const
  const oracle = (p: Record<string, unknown>): string => escapeLineSeparators(JSON.stringify(Object.fromEntries(ORDER.filter(k => p[k] !== undefined).map(k => [k, p[k]]))))
  const optional = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(arb, { nil: undefined })
  fc.assert(fc.property(
    fc.record({ type: nastyString, title: nastyString, status: fc.integer({ min: 400, max: 599 }), detail: nastyString, instance: optional(nastyString), code: nastyString, requestId: optional(nastyString), retryAfter: optional(fc.nat()) }),
    problem => stringifyProblem(problem) === oracle(problem)
  ), { numRuns: RUNS })
  t.pass('the same text for any strings (escapes, surrogates, separators, long ones)')
  // Members of other types (a custom genReqId may return a number) are coerced.
  const base = toProblem(new NotFoundError('m'), { requestId: 'r' })
  t.equal(JSON.parse(stringifyProblem({ ...base, requestId: 42 as unknown as string })).requestId, '42', 'a number request id is written as a string')
  t.equal(JSON.parse(stringifyProblem({ ...base, retryAfter: 1.5 })).retryAfter, 1, 'a fractional retryAfter is truncated to an integer')
  t.equal(JSON.parse(stringifyProblem({ ...base, status: '404' as unknown as number, retryAfter: 2n as unknown as number })).status, 404, 'an integer given as a string or a BigInt is written')
  t.equal(stringifyProblem(base), oracle(base as unknown as Record<string, unknown>))
  // Integers the serializer cannot write: left out, never a throw (it threw here before).
  const { status: _status, ...rest } = base
  for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, 'soon', {}]) {
    const json = stringifyProblem({ ...base, status: bad as number, retryAfter: bad as number })
    t.strictSame(JSON.parse(json), rest, `status and retryAfter ${String(bad)}: left out, the other members kept`)
  }
  const { title: _title, ...untitled } = base
  for (const bad of [Object.create(null), { toString () { throw new Error('x') } }]) {
    t.strictSame(JSON.parse(stringifyProblem({ ...base, title: bad as string })), untitled, 'a string member that is an object (no toString, or one that throws): left out')
  }
  t.equal(JSON.parse(stringifyProblem({ ...base, title: 7 as unknown as string, big: 1n as unknown })).title, '7', 'after a failure elsewhere, a number for a string member is still written as text')
})

t.test('stringifyProblem: toJSON behaves as JSON says, and never breaks the line', async t => {
  const render = (details: Record<string, unknown>) => stringifyProblem(toProblem(new NotFoundError('m', { details })))
  t.same(JSON.parse(render({ a: { toJSON: () => undefined }, b: 1 })), { ...JSON.parse(render({})), b: 1 }, 'toJSON() -> undefined omits the member')
  t.same(JSON.parse(render({ a: { toJSON: () => () => 1 }, s: { toJSON: () => Symbol('s') } })), JSON.parse(render({})), 'functions and symbols are omitted')
  t.same(JSON.parse(render({ a: [{ toJSON: () => undefined }] })).a, [null], 'inside arrays they become null')
  for (const bad of [{ toJSON: () => 1n }, { toJSON () { throw new Error('x') } }]) {
    t.same(JSON.parse(render({ a: bad, b: 1 })), JSON.parse(render({})), 'a BigInt or a throwing toJSON drops the extension members')
  }
  t.equal(render({ t: 'a\u2028b' }).includes('\u2028'), false, 'separators in details are escaped too')
  const handBuilt = { ...toProblem(new NotFoundError('m')), big: 1n as unknown }
  t.same(JSON.parse(stringifyProblem(handBuilt)), toProblem(new NotFoundError('m')), 'a problem built by hand with an unserializable member: the standard members stay')
  t.equal(JSON.parse(render({ t: 'a\u2028b' })).t, 'a\u2028b')
})

t.test('causes keep their other fields, previewed, for logs and debug', async t => {
  const carried = Object.assign(new Error('busy'), { statusCode: 503, headers: { 'x-token': 'abc' } })
  t.same(causeChain(carried)[0]!.fields, { statusCode: 503, headers: '{"x-token":"abc"}' })
  t.same(causeChain({ password: 'p' })[0], { name: 'Object', message: '', fields: { password: 'p' } })
  const many = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`k${i}`, i]))
  t.equal(Object.keys(causeChain(many)[0]!.fields!).length, 20, 'bounded')
  t.equal(causeChain(new Error('plain'))[0]!.fields, undefined)
})

t.test('preview: bounded, serializable, never throws', async t => {
  t.equal(preview(null), null)
  t.equal(preview(3), 3)
  t.equal(preview(true), true)
  t.equal(preview('s'), 's')
  t.equal(preview('x'.repeat(2000)), 'x'.repeat(1000) + '…')
  t.equal(preview(undefined), 'undefined')
  t.equal(preview(10n), '10')
  t.equal(preview(Symbol('s')), 'Symbol(s)')
  const cyclic: Record<string, unknown> = { n: 1n }
  cyclic.self = cyclic
  t.equal(preview(cyclic), '{"n":"1n","self":"[Circular]"}')
  t.equal(preview({ big: 'y'.repeat(2000) }), ('{"big":"' + 'y'.repeat(2000)).slice(0, 1000) + '…')
  t.equal(preview({ toJSON: () => undefined }), 'undefined')
  t.equal(preview({ toJSON () { throw new Error('x') } }), '[unreadable]')
})

t.test('wellFormed replaces lone surrogates only', async t => {
  t.equal(wellFormed('a\ud800b\udfffc😀'), 'a\ufffdb\ufffdc😀')
  t.equal(toProblem(new (class extends NotFoundError { static override code = 'LONE_\ud83d' })(), { typeBase: 'x:' }).type, 'x:lone-%EF%BF%BD')
})

t.test('renderProblem: the same problem as stringifyProblem(toProblem()), for any details', async t => {
  const member = fc.oneof(
    fc.constantFrom('type', 'status', 'code', 'requestId', 'retryAfter', 'stack', 'cause', '__proto__', 'constructor', 'prototype', 'toJSON', 'detailsOmitted', '0', '10'),
    fc.string({ maxLength: 6 }),
    nastyString
  )
  const value = fc.oneof(
    nastyString, fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.constant(undefined),
    fc.array(fc.string({ maxLength: 4 }), { maxLength: 3 }),
    fc.dictionary(fc.string({ maxLength: 4 }), fc.string({ maxLength: 8 }), { maxKeys: 3 }),
    fc.constantFrom(1n as unknown, new Date(0), { toJSON: () => undefined }, { toJSON: () => 'j' }, () => 1)
  )
  const detailsArb = fc.oneof(
    fc.dictionary(member, value, { maxKeys: 8 }),
    fc.dictionary(member, value, { maxKeys: 8 }).map(d => JSON.parse(JSON.stringify(d, (_k, v: unknown) => typeof v === 'bigint' ? 1 : v)) as Record<string, unknown>)
  )
  fc.assert(fc.property(detailsArb, fc.constantFrom(undefined, 5, 40, 200), fc.boolean(), fc.boolean(), (details, maxDetailsBytes, debug, exposed) => {
    const fault = new NotFoundError('m\u2028', { details, exposeDetails: exposed })
    let seen = 0
    const options = { maxDetailsBytes, debug, requestId: 'r', instance: '/i', onDetailsOmitted: () => { seen++ } }
    const rendered = renderProblem(fault, options)
    const viaObject = stringifyProblem(toProblem(fault, options))
    if (/[\r\n\u2028\u2029]/.test(rendered)) throw new Error(`not one line: ${rendered}`)
    const a = JSON.parse(rendered) as Record<string, unknown>
    const b = JSON.parse(viaObject) as Record<string, unknown>
    if (debug) { delete a.stack; delete b.stack }
    t.same(a, b)
    if (seen % 2 !== 0) throw new Error('onDetailsOmitted: once per rendering')
    if (typeof a.detailsOmitted === 'object' && Object.keys(a).some(k => Object.hasOwn(details, k) && !['detailsOmitted', 'type', 'status', 'code', 'requestId', 'detail', 'title', 'instance', 'stack', 'cause'].includes(k))) {
      throw new Error('dropped details leave no member behind')
    }
  }), { numRuns: RUNS })
})

t.test('maxDetailsBytes counts UTF-8 bytes of the details JSON, exactly', async t => {
  // {"a":"…"} is 8 bytes around the text.
  const kept = (text: string, limit: number): boolean => detailsJson({ a: text }, limit) !== TOO_LARGE
  t.ok(kept('x'.repeat(92), 100), '100 ASCII bytes fit 100')
  t.notOk(kept('x'.repeat(93), 100), '101 do not')
  t.ok(kept('é'.repeat(46), 100), 'é is 2 bytes: 8 + 92')
  t.notOk(kept('é'.repeat(47), 100))
  t.ok(kept('€'.repeat(30) + 'xx', 100), '€ is 3 bytes: 8 + 90 + 2')
  t.notOk(kept('€'.repeat(31), 100))
  t.ok(kept('😀'.repeat(23), 100), 'an astral character is 4 bytes: 8 + 92')
  t.notOk(kept('😀'.repeat(23) + 'x', 100))
  t.equal(detailsJson({}, 100), undefined, 'no member: nothing to add')
  t.equal(detailsJson({ gone: undefined }, 100), undefined, 'no member JSON keeps: nothing to add')
  t.equal(detailsJson({ gone: undefined, x: 1 }, 3), TOO_LARGE)
  t.equal(detailsJson(Object.assign(Object('ab') as object, { c: 1 }), 100), '{"0":"a","1":"b","c":1}', 'a boxed string: its own members')
  t.equal(detailsJson({ toJSON: () => ({ hidden: 1 }), shown: 2 }, 100), '{"shown":2}', 'details are members, not a value: their own toJSON is not called')
  t.equal(detailsJson(JSON.parse('{"__proto__":1,"status":2,"detailsOmitted":4,"ok":3}'), 100), '{"ok":3}', 'reserved members are taken out')
  const omitted: number[] = []
  const p = toProblem(new NotFoundError('x', { details: { a: 'x'.repeat(100) } }), { maxDetailsBytes: 50, onDetailsOmitted: (_f, limit) => omitted.push(limit) })
  t.same(p.detailsOmitted, { reason: 'too-large', limit: 50 })
  t.equal(p.a, undefined)
  t.same(omitted, [50])
  t.equal(toProblem(new NotFoundError('x', { details: { a: 'x'.repeat(100) } })).a, 'x'.repeat(100), 'default limit: 16 KiB')
  t.same(toProblem(new NotFoundError('x', { details: { a: 'x'.repeat(16384) } })).detailsOmitted, { reason: 'too-large', limit: 16384 })
  t.equal(DEFAULT_MAX_DETAILS_BYTES, 16384)
  const late = Object.defineProperty({ a: 1 }, 'b', { enumerable: true, get () { if (++reads > 1) throw new Error('second read'); return 2 } })
  let reads = 0
  t.same(toProblem(new NotFoundError('x', { details: late })).a, undefined, 'a getter that throws on the second read: dropped whole')
})

t.test('preview: the same text as cutting the whole JSON, for values of any size', async t => {
  const wide = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`k${i}`, { v: i, s: 'x'.repeat(i % 7) }]))
  const full = JSON.stringify(wide)
  t.equal(preview(wide), full.slice(0, 1000) + '…', 'members past the kept text are skipped, the kept text is the same')
  const list = Array.from({ length: 5000 }, (_, i) => [i, 'é\u2028"'])
  t.equal(preview(list), JSON.stringify(list).slice(0, 1000) + '…')
  t.equal(preview({ a: 1, b: [1, 2] }), '{"a":1,"b":[1,2]}')
  t.equal(preview({ f: () => 1, s: Symbol('s'), u: undefined, n: 1, b: true, z: null }), '{"n":1,"b":true,"z":null}')
})

// The algorithms before large values were cut early, as oracles: preview
// walked every member; detailsJson rendered everything before it measured.
function previewWalkingAll (value: object): string {
  const seen = new WeakSet<object>()
  let written = 0
  const least = (v: unknown): number => typeof v === 'string' ? v.length + 2 : typeof v === 'object' ? (v === null ? 4 : 2) : typeof v === 'number' || typeof v === 'boolean' ? 1 : 0
  const json = JSON.stringify(value, function (this: unknown, key, v: unknown) {
    if (written > 1000) return undefined
    if (typeof v === 'bigint') v = `${v}n`
    else if (typeof v === 'object' && v !== null) {
      if (seen.has(v)) v = '[Circular]'
      else seen.add(v)
    }
    written += least(v) + (Array.isArray(this) || v === undefined || typeof v === 'function' || typeof v === 'symbol' ? 0 : key.length + 3)
    return v
  }) as string | undefined
  return json === undefined ? String(json) : json.length > 1000 ? json.slice(0, 1000) + '…' : json
}

const wideMember = fc.oneof(
  fc.string({ maxLength: 30 }), fc.integer(), fc.boolean(), fc.constant(null), fc.constant(undefined),
  fc.constantFrom(1n as unknown, new Date(0), { toJSON: () => undefined }, { toJSON: () => 'x'.repeat(50) }, () => 1, Symbol('s')),
  fc.array(fc.integer(), { maxLength: 40 }),
  fc.dictionary(fc.string({ maxLength: 3 }), fc.string({ maxLength: 20 }), { maxKeys: 40 })
)
const wideValue = fc.oneof(
  fc.array(wideMember, { minLength: 20, maxLength: 400 }),
  fc.array(fc.tuple(fc.string({ maxLength: 12 }), wideMember), { minLength: 20, maxLength: 400 }).map(entries => Object.fromEntries(entries) as object)
)

t.test('preview: large objects and arrays are cut before JSON.stringify walks them, to the same text', async t => {
  fc.assert(fc.property(wideValue, value => {
    t.equal(preview(value), previewWalkingAll(value))
  }), { numRuns: RUNS })
  let reads = 0
  const wide: Record<string, unknown> = {}
  for (let i = 0; i < 2000; i++) Object.defineProperty(wide, `k${i}`, { enumerable: true, get () { reads++; return 'v'.repeat(20) } })
  t.equal(preview(wide), previewWalkingAll({ ...wide }))
  reads = 0
  preview(wide)
  t.ok(reads > 0 && reads < 100, `members past the kept text are never read (${reads} of 2,000 read)`)
  const dates = Array.from({ length: 100 }, () => new Date(0))
  t.equal(preview(dates), JSON.stringify(dates).slice(0, 1000) + '…', 'a member with toJSON counts nothing before it runs: none is cut too early')
  const small = Array.from({ length: 40 }, (_, i) => i)
  t.equal(preview(small), JSON.stringify(small), 'a large array that fits is kept whole')
  t.equal(String(preview(JSON.parse(`{${Array.from({ length: 40 }, (_, i) => `"__proto__${i}":1`).join(',')},"__proto__":2}`))).endsWith('"__proto__":2}'), true, 'a member named __proto__ stays a member')
})

t.test('detailsJson: details that cannot fit are dropped before they are rendered, with the same answer', async t => {
  fc.assert(fc.property(wideValue.filter(v => !Array.isArray(v)), fc.constantFrom(100, 1000, 5000, DEFAULT_MAX_DETAILS_BYTES), (details, limit) => {
    const record = details as Record<string, unknown>
    const reference = detailsJson(record, 2 ** 30)
    const expected = typeof reference === 'string' && Buffer.byteLength(reference) > limit ? TOO_LARGE : reference
    const actual = detailsJson(record, limit)
    // Details that cannot be rendered (a BigInt among the members a problem
    // takes: not one under a reserved name such as __proto__, which is
    // dropped) are dropped either way: as too large when the rest already is.
    if (reference === undefined) t.ok(actual === undefined || actual === TOO_LARGE)
    else t.equal(actual, expected)
  }), { numRuns: RUNS })
  let reads = 0
  const wide: Record<string, unknown> = {}
  for (let i = 0; i < 5000; i++) Object.defineProperty(wide, `field${i}`, { enumerable: true, get () { reads++; return `value ${i}` } })
  t.equal(detailsJson(wide), TOO_LARGE)
  t.ok(reads < 1000, `only the members it takes to exceed the default 16 KiB are read (${reads} of 5,000)`)
  const text = JSON.stringify(wide)
  reads = 0
  t.equal(detailsJson(wide, 2 * 1024 * 1024), text, 'above 1 MiB the details are rendered directly')
  t.equal(reads, 5000, 'each member read once')
  const reserved: Record<string, unknown> = { ok: 1 }
  for (let i = 0; i < 400; i++) reserved[`gone${i}`] = undefined
  for (const name of ['type', 'status', 'detailsOmitted']) reserved[name] = 'x'.repeat(200)
  t.equal(detailsJson(reserved, 300), '{"ok":1}', 'members JSON drops and reserved members count nothing')
})
