// Range parsing against RFC 9110 §14, property-tested: valid single ranges
// give exactly the bytes the grammar says (checked against a BigInt model, so
// huge and zero-padded positions are exact), everything the server ignores
// gives the whole body, and nothing ever throws.
import t from 'tap'
import fc from 'fast-check'
import { RUNS, nastyString } from './helpers/arbitraries.js'
import {
  contentRange, ifRangeMatches, isWeakEtag, parseContentRange, parseRangeHeader, planRange, rangeFor, strongEtag,
  type RangePlan
} from '../lib/range.js'

// Positions: small, near a length, zero-padded, and far beyond any safe integer.
const digitString = fc.oneof(
  fc.nat({ max: 5000 }).map(String),
  fc.bigInt({ min: 0n, max: 2n ** 80n }).map(String),
  fc.tuple(fc.nat({ max: 5 }), fc.nat({ max: 3000 })).map(([zeros, n]) => '0'.repeat(zeros) + String(n)),
  fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: 1, maxLength: 400 })
)
const lengthArb = fc.oneof(fc.nat({ max: 4000 }), fc.constantFrom(0, 1, 2, Number.MAX_SAFE_INTEGER, 2 ** 40))
const ows = fc.constantFrom('', ' ', '\t', '  \t')
const unit = fc.constantFrom('bytes', 'Bytes', 'BYTES', 'bYtEs')

type Spec = { kind: 'int', first: string, last: string | undefined } | { kind: 'suffix', length: string }

/** The RFC's answer, computed with unbounded integers. */
function model (spec: Spec | undefined, length: number): RangePlan {
  const len = BigInt(length)
  if (spec === undefined || len === 0n) return { status: 200, start: 0, end: length - 1 }
  if (spec.kind === 'suffix') {
    const n = BigInt(spec.length)
    if (n === 0n) return { status: 416 }
    const start = n >= len ? 0n : len - n
    return { status: 206, start: Number(start), end: length - 1 }
  }
  const first = BigInt(spec.first)
  if (first >= len) return { status: 416 }
  const last = spec.last === undefined ? len - 1n : BigInt(spec.last)
  return { status: 206, start: Number(first), end: Number(last < len - 1n ? last : len - 1n) }
}

const validSpec: fc.Arbitrary<Spec> = fc.oneof(
  fc.tuple(digitString, digitString).map(([a, b]) => BigInt(a) <= BigInt(b) ? { kind: 'int' as const, first: a, last: b } : { kind: 'int' as const, first: b, last: a }),
  digitString.map(a => ({ kind: 'int' as const, first: a, last: undefined })),
  digitString.map(n => ({ kind: 'suffix' as const, length: n }))
)

function text (spec: Spec): string {
  return spec.kind === 'suffix' ? `-${spec.length}` : `${spec.first}-${spec.last ?? ''}`
}

t.test('a valid single range gives exactly the model answer', async t => {
  fc.assert(fc.property(validSpec, lengthArb, unit, ows, ows, fc.nat({ max: 2 }), (spec, length, u, before, after, empties) => {
    // Empty list elements and OWS around the element are allowed (§5.6.1).
    const header = `${u}=${','.repeat(empties)}${before}${text(spec)}${after}${', '.repeat(empties)}`
    if (JSON.stringify(parseRangeHeader(header)) !== JSON.stringify(spec)) throw new Error(`${header} parsed as ${JSON.stringify(parseRangeHeader(header))}`)
    const plan = rangeFor('GET', header, undefined, '"e"', length)
    const expected = model(spec, length)
    if (JSON.stringify(plan) !== JSON.stringify(expected)) throw new Error(`${header} on ${length}: ${JSON.stringify(plan)} != ${JSON.stringify(expected)}`)
  }), { numRuns: RUNS })
})

t.test('every plan is within the representation', async t => {
  fc.assert(fc.property(fc.oneof(nastyString, validSpec.map(s => 'bytes=' + text(s))), lengthArb, (header, length) => {
    const plan = rangeFor('GET', header, undefined, '"e"', length)
    if (plan.status === 416) return length > 0
    if (plan.status === 200) return plan.start === 0 && plan.end === length - 1
    return Number.isSafeInteger(plan.start) && Number.isSafeInteger(plan.end) && plan.start >= 0 && plan.start <= plan.end && plan.end < length
  }), { numRuns: RUNS })
})

t.test('what the server ignores gets the whole body', async t => {
  const whole = (length: number): RangePlan => ({ status: 200, start: 0, end: length - 1 })
  // first-pos > last-pos is invalid (§14.1.1).
  fc.assert(fc.property(fc.bigInt({ min: 1n, max: 2n ** 70n }), fc.bigInt({ min: 0n, max: 2n ** 70n }), lengthArb, (gap, last, length) => {
    const header = `bytes=${last + gap}-${last}`
    return parseRangeHeader(header) === undefined && JSON.stringify(rangeFor('GET', header, undefined, '"e"', length)) === JSON.stringify(whole(length))
  }), { numRuns: RUNS })
  // Several ranges: allowed to answer with the whole body (§14.2).
  fc.assert(fc.property(fc.array(validSpec, { minLength: 2, maxLength: 5 }), ows, lengthArb, (specs, sep, length) => {
    const header = 'bytes=' + specs.map(text).join(`${sep},${sep}`)
    return parseRangeHeader(header) === undefined && rangeFor('GET', header, undefined, '"e"', length).status === 200
  }), { numRuns: RUNS })
  // Other units, other-range syntax, and junk.
  const ignored = [
    undefined, '', 'bytes', 'bytes=', 'bytes=,', 'bytes= , ,', 'bytes=-', 'bytes=--1', 'bytes=1--2', 'bytes=a-b', 'bytes=1-2-3',
    'bytes=0x10-', 'bytes=+1-2', 'bytes=1 -2', 'bytes =0-1', ' bytes=0-1', 'bytes=-1.5', 'bytes=1e3-', 'bytes=½-',
    'items=0-1', 'none', 'bytes:0-1', '=0-1', 'bytes=0-1;x', 'bytes=0-1\r\nX: y', 'bytes=0-१'
  ]
  for (const header of ignored) {
    t.equal(parseRangeHeader(header), undefined, JSON.stringify(header))
    t.same(rangeFor('GET', header, undefined, '"e"', 100), whole(100), JSON.stringify(header))
  }
  // Not a string at all.
  for (const header of [null, 7, ['bytes=0-1'], {}, Symbol('r')]) t.equal(parseRangeHeader(header), undefined)
  // Range handling is defined for GET only.
  t.same(rangeFor('HEAD', 'bytes=0-1', undefined, '"e"', 100), whole(100))
  t.same(rangeFor('POST', 'bytes=0-1', undefined, '"e"', 100), whole(100))
  // An empty representation has no byte to address: the whole (empty) body.
  t.same(planRange({ kind: 'suffix', length: '5' }, 0), whole(0))
  t.same(planRange({ kind: 'int', first: '0', last: undefined }, 0), whole(0))
})

t.test('unsatisfiable ranges and suffixes', async t => {
  t.same(rangeFor('GET', 'bytes=100-', undefined, '"e"', 100), { status: 416 })
  t.same(rangeFor('GET', 'bytes=100-200', undefined, '"e"', 100), { status: 416 })
  t.same(rangeFor('GET', 'bytes=-0', undefined, '"e"', 100), { status: 416 })
  t.same(rangeFor('GET', `bytes=${'9'.repeat(500)}-`, undefined, '"e"', Number.MAX_SAFE_INTEGER), { status: 416 })
  t.same(rangeFor('GET', 'bytes=99-', undefined, '"e"', 100), { status: 206, start: 99, end: 99 })
  t.same(rangeFor('GET', 'bytes=-1', undefined, '"e"', 100), { status: 206, start: 99, end: 99 })
  t.same(rangeFor('GET', 'bytes=-1000', undefined, '"e"', 100), { status: 206, start: 0, end: 99 }, 'a suffix longer than the body is all of it')
  t.same(rangeFor('GET', `bytes=0-${'9'.repeat(400)}`, undefined, '"e"', 100), { status: 206, start: 0, end: 99 })
  t.same(rangeFor('GET', `bytes=${'0'.repeat(300)}7-0008`, undefined, '"e"', 100), { status: 206, start: 7, end: 8 })
  // first-pos against last-pos, compared as digit strings: equal, greater with as many digits, greater with more.
  t.same(rangeFor('GET', 'bytes=007-7', undefined, '"e"', 100), { status: 206, start: 7, end: 7 }, 'a one-byte range')
  t.same(parseRangeHeader('bytes=8-7'), undefined, 'first-pos after last-pos: ignored')
  t.same(parseRangeHeader('bytes=10-9'), undefined, 'first-pos after last-pos, more digits: ignored')
  // 16 digits, just past the safe integers: beyond every length, never rounded into one.
  t.same(rangeFor('GET', 'bytes=9007199254740993-', undefined, '"e"', Number.MAX_SAFE_INTEGER), { status: 416 })
  t.same(rangeFor('GET', 'bytes=9007199254740990-9007199254740993', undefined, '"e"', Number.MAX_SAFE_INTEGER), { status: 206, start: 9007199254740990, end: 9007199254740990 })
  t.same(rangeFor('GET', 'bytes=-9007199254740993', undefined, '"e"', 10), { status: 206, start: 0, end: 9 })
  t.equal(contentRange({ status: 416 }, 100), 'bytes */100')
  t.equal(contentRange({ status: 206, start: 5, end: 9 }, 100), 'bytes 5-9/100')
})

t.test('If-Range: only a strong, exact match lets the range through', async t => {
  const etag = '"v1"'
  t.equal(ifRangeMatches(undefined, etag), true, 'no condition')
  t.equal(ifRangeMatches('"v1"', etag), true)
  t.equal(ifRangeMatches(' "v1"\t', etag), true, 'OWS around the field value')
  for (const other of ['W/"v1"', '"v2"', 'v1', '"V1"', '"v1" ,"v2"', 'Wed, 21 Oct 2015 07:28:00 GMT', '', '*', 7, null, ['"v1"']]) {
    t.equal(ifRangeMatches(other, etag), false, JSON.stringify(other))
  }
  t.same(rangeFor('GET', 'bytes=5-', '"v1"', etag, 100), { status: 206, start: 5, end: 99 })
  t.same(rangeFor('GET', 'bytes=5-', 'W/"v1"', etag, 100), { status: 200, start: 0, end: 99 }, 'a weak validator never matches (§13.1.5)')
  t.same(rangeFor('GET', 'bytes=5-', '"v0"', etag, 100), { status: 200, start: 0, end: 99 }, 'the entity changed: the whole new body')
  t.same(rangeFor('GET', 'bytes=500-', '"v0"', etag, 100), { status: 200, start: 0, end: 99 }, 'not a 416: the range was for another entity')
  fc.assert(fc.property(nastyString, value => ifRangeMatches(value, etag) === (value.replace(/^[ \t]+|[ \t]+$/g, '') === etag)), { numRuns: RUNS })
})

t.test('strong entity-tags for the etag option', async t => {
  t.equal(strongEtag('"v1"'), '"v1"')
  t.equal(strongEtag('""'), '""')
  t.equal(strongEtag('abc-123'), '"abc-123"', 'bare tag characters are quoted')
  for (const bad of ['W/"v1"', 'W/v1', '', 'a b', 'a"b', '"a', '"a"b"', 'é€', 'x\r\n', 7, undefined, null]) {
    t.equal(strongEtag(bad), undefined, JSON.stringify(bad))
  }
  t.equal(isWeakEtag('W/"x"'), true)
  t.equal(isWeakEtag('"x"'), false)
  t.equal(isWeakEtag(3), false)
  fc.assert(fc.property(nastyString, value => {
    const tag = strongEtag(value)
    return tag === undefined || /^"[\x21\x23-\x7e\x80-\xff]*"$/.test(tag)
  }), { numRuns: RUNS })
})

t.test('Content-Range of a 206, parsed back', async t => {
  fc.assert(fc.property(fc.nat({ max: 2 ** 50 }), fc.nat({ max: 2 ** 50 }), fc.nat({ max: 2 ** 50 }), (a, b, extra) => {
    const start = Math.min(a, b)
    const end = Math.max(a, b)
    const length = end + 1 + extra
    const parsed = parseContentRange(contentRange({ status: 206, start, end }, length))
    return parsed !== undefined && parsed.start === start && parsed.end === end && parsed.length === length
  }), { numRuns: RUNS })
  t.same(parseContentRange('bytes 0-9/*'), { start: 0, end: 9, length: undefined })
  t.same(parseContentRange(' Bytes 5-9/10 '), { start: 5, end: 9, length: 10 })
  for (const bad of ['bytes 9-5/10', 'bytes 0-10/10', 'bytes */10', 'bytes 0-9', 'items 0-9/10', `bytes 0-${'9'.repeat(30)}/*`, 'bytes -1-9/10', 'bytes 0-9/10, bytes 0-1/10', undefined, 5]) {
    t.equal(parseContentRange(bad), undefined, JSON.stringify(bad))
  }
  fc.assert(fc.property(nastyString, value => { parseContentRange(value); return true }), { numRuns: RUNS })
})

t.test('nothing throws, whatever the headers', async t => {
  const anyHeader = fc.oneof(nastyString, fc.anything(), fc.string({ unit: fc.constantFrom(...'bytes=0123456789-, \t*"W/'), maxLength: 80 }))
  fc.assert(fc.property(anyHeader, anyHeader, fc.constantFrom('GET', 'HEAD'), lengthArb, (range, ifRange, method, length) => {
    rangeFor(method, range, ifRange, '"e"', length)
    parseRangeHeader(range)
    strongEtag(range)
    isWeakEtag(range)
    return true
  }), { numRuns: RUNS })
  // A huge header does not take long: linear scans only.
  const huge = 'bytes=' + '0'.repeat(200_000) + '1-' + '9'.repeat(200_000)
  t.same(rangeFor('GET', huge, undefined, '"e"', 10), { status: 206, start: 1, end: 9 })
  t.equal(parseRangeHeader('bytes=' + ',-'.repeat(50_000)), undefined)
})
