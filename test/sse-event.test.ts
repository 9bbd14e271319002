import t from 'tap'
import fc from 'fast-check'
import {
  sseFaultEvent, sseJsonEvent, isTerminalFault, isTerminalEventId, terminalEventId, DEFAULT_TERMINAL_ID_PREFIX,
  toProblem, defineFault, ForbiddenError, InternalError, ServiceUnavailableError, TooManyRequestsError
} from '../index.js'
import { retryFor, sseDataText, sseFieldValue, sseJsonLine, sseMessage, sseSerializer } from '../lib/sse-event.js'
import { guardProcess } from './helpers/guard.js'
import { parseEvents } from './helpers/sse-client.js'

t.test('sseJsonLine escapes every line break a parser could split on, and stays valid JSON', async t => {
  guardProcess(t)
  const raw = '{"a":"x\r\ny\u2028z\u2029"}'
  const line = sseJsonLine(raw)
  t.equal(line, '{"a":"x\\r\\ny\\u2028z\\u2029"}')
  t.same(JSON.parse(line), { a: 'x\r\ny\u2028z\u2029' })
  t.equal(sseJsonLine('{"plain":1}'), '{"plain":1}')
})

t.test('sseFieldValue drops NUL and line breaks', async t => {
  guardProcess(t)
  t.equal(sseFieldValue('a\rb\nc\u2028d\u2029e\0f'), 'abcdef')
})

t.test('terminal faults: below 500 and not retryable', async t => {
  guardProcess(t)
  t.equal(isTerminalFault(new ForbiddenError()), true)
  t.equal(isTerminalFault(new TooManyRequestsError()), false, '429 is retryable')
  t.equal(isTerminalFault(new ForbiddenError('x', { retryable: true })), false)
  t.equal(isTerminalFault(new InternalError()), false, '5xx lets the browser reconnect')
  t.equal(isTerminalFault({ status: 503, retryable: false }), false)
})

t.test('terminal ids are stateless: prefix plus the encoded code', async t => {
  guardProcess(t)
  t.equal(DEFAULT_TERMINAL_ID_PREFIX, 'faultline-terminal:')
  t.equal(terminalEventId('FORBIDDEN'), 'faultline-terminal:FORBIDDEN')
  t.equal(terminalEventId('A B\n\u2028', 'p:'), 'p:A%20B%0A%E2%80%A8')
  t.equal(isTerminalEventId('faultline-terminal:FORBIDDEN'), true)
  t.equal(isTerminalEventId('p:X', 'p:'), true)
  t.equal(isTerminalEventId('42'), false)
  t.equal(isTerminalEventId(null), false)
  t.equal(isTerminalEventId(undefined), false)
})

t.test('retryFor: only retryable faults, from retryAfter or the default', async t => {
  guardProcess(t)
  t.equal(retryFor(new ServiceUnavailableError('x', { retryAfter: 3 }), 1000), 3000)
  t.equal(retryFor(new ServiceUnavailableError(), 1000), 1000)
  t.equal(retryFor(new ForbiddenError(), 1000), undefined)
})

t.test('sseJsonEvent: fields in order, unsafe values neutralized, bad retry dropped', async t => {
  guardProcess(t)
  t.equal(sseJsonEvent('{}'), 'event: error\ndata: {}\n\n')
  t.equal(sseJsonEvent('{}', { event: 'oops', id: '1', retry: 2500.7 }), 'event: oops\nid: 1\ndata: {}\nretry: 2500\n\n')
  t.equal(sseJsonEvent('{}', { event: 'a\nb', id: 'c\r\nd' }), 'event: ab\nid: cd\ndata: {}\n\n')
  t.equal(sseJsonEvent('{}', { retry: -1 }), 'event: error\ndata: {}\n\n')
  t.equal(sseJsonEvent('{}', { retry: Number.NaN }), 'event: error\ndata: {}\n\n')
})

t.test('sseFaultEvent: final events carry id or retry, non-final ones neither', async t => {
  guardProcess(t)
  const forbidden = new ForbiddenError('no')
  t.equal(sseFaultEvent(forbidden, toProblem(forbidden)),
    'event: error\nid: faultline-terminal:FORBIDDEN\ndata: {"type":"about:blank","title":"Forbidden","status":403,"detail":"no","code":"FORBIDDEN"}\n\n')
  t.equal(sseFaultEvent(forbidden, toProblem(forbidden), { final: false, event: 'x' }),
    'event: x\ndata: {"type":"about:blank","title":"Forbidden","status":403,"detail":"no","code":"FORBIDDEN"}\n\n')
  const busy = new ServiceUnavailableError()
  t.match(sseFaultEvent(busy, toProblem(busy)), /\nretry: 3000\n\n$/)
  t.match(sseFaultEvent(busy, toProblem(busy), { defaultRetry: 10 }), /\nretry: 10\n\n$/)
  t.match(sseFaultEvent(forbidden, toProblem(forbidden), { terminalIdPrefix: 'end/' }), /^event: error\nid: end\/FORBIDDEN\n/)
})

t.test('property: no message, detail or code yields more than one event, and the problem round-trips', async t => {
  guardProcess(t)
  const Custom = defineFault({ code: 'PROP_\u2028_CODE', status: 409 })
  const breaks = fc.constantFrom('\r', '\n', '\r\n', '\u2028', '\u2029', '\0', 'data: x', 'event: y', 'id: z', 'retry: 1', ':')
  const text = fc.array(fc.oneof(fc.string(), breaks), { maxLength: 12 }).map(parts => parts.join(''))
  fc.assert(fc.property(text, text, (message, value) => {
    const fault = new Custom(message, { details: { [value]: value, value } })
    if (message !== '' && fault.message !== message) return false
    const problem = toProblem(fault)
    const bytes = sseFaultEvent(fault, problem)
    const { events, retry } = parseEvents('data: before\n\n' + bytes + 'data: after\n\n')
    if (events.length !== 3 || retry.length !== 0) return false
    const parsed = JSON.parse(events[1]!.data)
    return events[1]!.event === 'error' &&
      events[1]!.id === 'faultline-terminal:PROP_%E2%80%A8_CODE' &&
      parsed.detail === fault.message && parsed.value === value &&
      events[0]!.data === 'before' && events[2]!.data === 'after' &&
      !/[\r\u2028\u2029]/.test(bytes) && bytes.split('\n').length === 5
  }), { numRuns: 500 })
  t.pass('held for 500 runs')
})

t.test('sseMessage: text gets every line break as LF; fields that would break their line are refused', async t => {
  guardProcess(t)
  t.equal(sseDataText('a\rb\r\nc\nd\n\re'), 'a\nb\nc\nd\n\ne')
  t.equal(sseMessage('x\ry'), 'x\ny')
  t.equal(sseMessage(Buffer.from('x\r\ny')), 'x\ny')
  t.same(sseMessage({ data: 'a\rb', id: 7, event: 'tick', retry: 10, other: 'dropped' }), { data: 'a\rb', id: '7', event: 'tick', retry: '10' }, 'data is left to the serializer')
  t.same(sseMessage({ data: 1, id: '', event: 0, retry: null }), { data: 1 }, 'falsy fields are left out, as @fastify/sse does')
  // Not a message: @fastify/sse refuses it or writes nothing; nothing to check.
  for (const other of [null, undefined, 42, { id: 'x\r' }]) t.equal(sseMessage(other), other)
  t.throws(() => sseMessage({ data: 1, id: 'a\rb' }), { code: 'INTERNAL', status: 500, message: /^SSE event id "a\\rb" holds a line break/ })
  t.throws(() => sseMessage({ data: 1, event: 'x'.repeat(100) + '\n' }), { message: /^SSE event event "x{40}…" holds/ }, 'a long value is previewed')
  t.throws(() => sseMessage({ data: 1, id: 'T:1' }, 'T:'), { message: /terminal prefix "T:"/ })
  t.same(sseMessage({ data: 1, id: 'faultline-terminal:X' }, 'T:'), { data: 1, id: 'faultline-terminal:X' }, 'only the configured prefix is reserved')
})

t.test('sseSerializer: the serializer\'s text gets every line break as LF', async t => {
  guardProcess(t)
  t.equal(sseSerializer(String)('a\rb\r\nc'), 'a\nb\nc')
  t.equal(sseSerializer(JSON.stringify)('a\rb'), '"a\\rb"')
  const odd = sseSerializer(() => undefined as unknown as string)
  t.equal(odd(1), undefined, 'what is not text is passed on for @fastify/sse to handle')
})

t.test('sseSerializer: JSON.stringify, which never writes a raw line break, is used as it is', async t => {
  t.equal(sseSerializer(JSON.stringify), JSON.stringify, 'no check per event for @fastify/sse\'s default serializer')
  t.not(sseSerializer(String), String)
})
