import fc from 'fast-check'
import { defineFault, Fault, statusTitle } from '../../lib/fault.js'
import { wellFormed } from '../../lib/problem.js'

/** Runs per property: at least 1,000 (the reliability promise), more when asked. */
export const RUNS = Math.max(1000, Number(process.env.FAULTLINE_FUZZ_RUNS ?? 0))

/** Strings that try to break renderers: line breaks, separators, NUL, markup, lone surrogates. */
export const nastyString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 64 }),
  fc.string({ unit: 'grapheme', maxLength: 64 }),
  fc.constantFrom(
    '\r\n', '\n', '\r', '\u2028', '\u2029', '\0', '</script><script>alert(1)</script>', '"\'`',
    '\ud800', '\udfff', 'event: evil\ndata: x\n\n', 'id: terminal:\r\nretry: 1', 'x\r\nSet-Cookie: a=b',
    '{"type":"end"}\n', '😀'.repeat(60), 'é'.repeat(100)
  ),
  fc.tuple(fc.string({ maxLength: 8 }), fc.constantFrom('\r', '\n', '\r\n', '\u2028', '\0'), fc.string({ maxLength: 8 })).map(([a, b, c]) => a + b + c)
)

const statusLike = fc.oneof(
  fc.integer({ min: -1000, max: 1000 }),
  fc.constantFrom(Number.NaN, Infinity, -0, 404.5, 499, 500, 599, 600, 200),
  fc.constantFrom('404', '500', 'abc', '', null, undefined, true, {}, []),
  fc.double()
)

function throwingGetter (): PropertyDescriptor {
  return { enumerable: true, get () { throw new Error('getter trap') } }
}

/** Error-like values with arbitrary fields, including hostile ones. */
export const errorLike = fc.record({
  message: fc.oneof(nastyString, fc.constant(undefined), fc.integer()),
  statusCode: statusLike,
  status: statusLike,
  code: fc.oneof(nastyString, fc.constant(undefined), fc.integer()),
  expose: fc.oneof(fc.boolean(), fc.constant('yes'), fc.constant(undefined)),
  isError: fc.boolean(),
  cyclic: fc.boolean(),
  getterOn: fc.constantFrom(undefined, 'message', 'statusCode', 'status', 'code', 'cause', 'expose'),
  proxy: fc.boolean(),
  bigMessage: fc.boolean()
}).map(spec => {
  const target = (spec.isError ? new Error() : {}) as unknown as Record<string, unknown>
  for (const key of ['message', 'statusCode', 'status', 'code', 'expose'] as const) {
    if (spec[key] !== undefined) Object.defineProperty(target, key, { value: spec[key], enumerable: true, configurable: true, writable: true })
  }
  if (spec.bigMessage) target.message = 'm'.repeat(1024 * 1024) + '\ud800'
  if (spec.cyclic) {
    const other = new Error('other') as unknown as Record<string, unknown>
    other.cause = target
    target.cause = other
  }
  if (spec.getterOn !== undefined) Object.defineProperty(target, spec.getterOn, throwingGetter())
  if (spec.proxy) return new Proxy(target, { get () { throw new Error('proxy trap') }, getPrototypeOf () { throw new Error('proxy trap') } })
  return target
})

/** Anything a route could throw. */
export const thrown = fc.oneof(
  { weight: 3, arbitrary: errorLike },
  { weight: 2, arbitrary: fc.anything({ withBigInt: true, withBoxedValues: true, withMap: true, withSet: true, withTypedArray: true, withSparseArray: true, withNullPrototype: true }) },
  { weight: 1, arbitrary: nastyString }
)

/**
 * Values whose JSON form is surprising: `toJSON` returning undefined, a
 * function, a symbol or a BigInt, or throwing; plus anything fast-check makes.
 */
export const jsonHostile = fc.oneof(
  fc.constantFrom<unknown>(
    { toJSON: () => undefined },
    { toJSON: () => () => 1 },
    { toJSON: () => Symbol('s') },
    { toJSON: () => 1n },
    { toJSON () { throw new Error('toJSON failed') } },
    { nested: { toJSON: () => undefined }, list: [{ toJSON: () => undefined }] },
    () => 1,
    Symbol('top'),
    undefined
  ),
  fc.anything({ withBigInt: true, withBoxedValues: true, withMap: true, withSet: true, withTypedArray: true, withSparseArray: true, withNullPrototype: true })
)

/** Details a fault may carry: hostile keys and hostile JSON values. */
export const hostileDetails = fc.dictionary(nastyString, jsonHostile, { maxKeys: 4 })

let definedCount = 0
// The control characters defineFault refuses in a code.
const CONTROL = /[\u0000-\u001f\u007f]/g // eslint-disable-line no-control-regex

/**
 * Faults of user-defined classes: any status, a code as hostile as
 * `defineFault` accepts (separators, up to 200 characters of 4-byte UTF-8),
 * or, for a hand-written subclass of `Fault` that skips its checks, a code
 * with lone surrogates; any message, retryAfter and expose.
 */
export const definedFault = fc.record({
  handWritten: fc.boolean(),
  code: fc.oneof(nastyString, fc.constant('😀'.repeat(100)), fc.string({ unit: 'grapheme', minLength: 60, maxLength: 200 })),
  status: fc.integer({ min: 400, max: 599 }),
  message: nastyString,
  retryAfter: fc.option(fc.oneof(fc.integer({ min: -10, max: 100_000 }), fc.double())),
  retryable: fc.option(fc.boolean()),
  expose: fc.option(fc.boolean()),
  details: fc.option(hostileDetails)
}).map(spec => {
  const raw = `F${definedCount++}_${spec.code.replace(CONTROL, '')}`.slice(0, 200)
  const Cls = spec.handWritten
    ? class HandWrittenFault extends Fault {
      static override code = raw
      static override status = spec.status
      static override title = statusTitle(spec.status)
      static override retryable = spec.retryable ?? undefined
    }
    : defineFault({ code: wellFormed(raw), status: spec.status, ...(spec.retryable === null ? {} : { retryable: spec.retryable }) })
  return new Cls(spec.message, {
    ...(spec.retryAfter === null ? {} : { retryAfter: spec.retryAfter }),
    ...(spec.expose === null ? {} : { expose: spec.expose }),
    ...(spec.details === null ? {} : { details: spec.details })
  })
})

/** Anything thrown, or a defined fault with a hostile code: what a transport must render. */
export const thrownOrFault = fc.oneof(thrown, definedFault)
