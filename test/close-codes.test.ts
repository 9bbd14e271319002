import t from 'tap'
import fc from 'fast-check'
import {
  closeCodeFor, closeReason, truncateUtf8, defaultCloseCode, whyUnsendableCloseCode,
  SHUTDOWN_CLOSE_CODE, SHUTDOWN_REASON, MAX_CLOSE_REASON_BYTES
} from '../lib/close-codes.js'
import { peerGone, peerIdle, peerUnresponsive } from '../lib/websocket-faults.js'
import {
  Fault, defineFault, isSendableCloseCode, BadRequestError, NotFoundError, PayloadTooLargeError, RequestTimeoutError,
  InternalError, NotImplementedError, BadGatewayError, ServiceUnavailableError, GatewayTimeoutError, ClientClosedError
} from '../lib/fault.js'
import { guardProcess } from './helpers/guard.js'

guardProcess(t)

t.test('default map: 4xx -> 4000+status, 413 -> 1009, 5xx by kind', async t => {
  t.equal(closeCodeFor(new BadRequestError()), 4400)
  t.equal(closeCodeFor(new NotFoundError()), 4404)
  t.equal(closeCodeFor(new RequestTimeoutError()), 4408)
  t.equal(closeCodeFor(new ClientClosedError()), 4499)
  t.equal(closeCodeFor(new PayloadTooLargeError()), 1009)
  t.equal(closeCodeFor(new InternalError()), 1011)
  t.equal(closeCodeFor(new BadGatewayError()), 1014)
  t.equal(closeCodeFor(new ServiceUnavailableError()), 1013)
  t.equal(closeCodeFor(new NotImplementedError()), 1011)
  t.equal(closeCodeFor(new GatewayTimeoutError()), 1011)
  for (let status = 400; status <= 599; status++) t.ok(isSendableCloseCode(defaultCloseCode(status)), `status ${status}`)
  t.equal(SHUTDOWN_CLOSE_CODE, 1001)
  t.equal(SHUTDOWN_REASON, 'SERVER_SHUTDOWN')
  t.equal(MAX_CLOSE_REASON_BYTES, 123)
})

t.test('overrides: option by code, then by status, then the class, then the default', async t => {
  const Teapot = defineFault({ code: 'CC_TEAPOT', status: 418, closeCode: 4999 })
  t.equal(closeCodeFor(new Teapot()), 4999, 'class closeCode')
  t.equal(closeCodeFor(new Teapot(), { 418: 4018 }), 4018, 'status beats class')
  t.equal(closeCodeFor(new Teapot(), { 418: 4018, CC_TEAPOT: 3000 }), 3000, 'code beats status')
  t.equal(closeCodeFor(new NotFoundError(), { CC_TEAPOT: 3000 }), 4404, 'unrelated override')
  t.equal(closeCodeFor(new NotFoundError(), {}), 4404)
})

t.test('a value a server may not send is skipped, wherever it comes from', async t => {
  class Reserved extends Fault {
    static override code = 'CC_RESERVED'
    static override status = 503
    static override closeCode = 1006
  }
  t.equal(closeCodeFor(new Reserved()), 1013, 'class closeCode 1006 skipped')
  t.equal(closeCodeFor(new NotFoundError(), { NOT_FOUND: 1005, 404: 1015 }), 4404, 'option values skipped')
  t.equal(closeCodeFor(new NotFoundError(), { NOT_FOUND: 5000, 404: 3000 }), 3000)
  // Not inherited from Object.prototype either.
  t.equal(closeCodeFor(new NotFoundError(), Object.create({ NOT_FOUND: 4000 })), 4404)
})

t.test('a fault whose constructor cannot be read falls back to the default', async t => {
  const fault = new InternalError()
  Object.defineProperty(fault, 'constructor', { get () { throw new Error('hostile') } })
  t.equal(closeCodeFor(fault), 1011)
  const orphan = Object.assign(Object.create(null), { code: 'X', status: 404 }) as Fault
  t.equal(closeCodeFor(orphan), 4404)
})

t.test('closeReason is the fault code, cut to 123 bytes on a character boundary', async t => {
  t.equal(closeReason(new NotFoundError()), 'NOT_FOUND')
  const Long = defineFault({ code: 'É'.repeat(70), status: 422 })
  const reason = closeReason(new Long())
  t.equal(reason, 'É'.repeat(61), '61 two-byte characters: 122 bytes')
  t.equal(Buffer.byteLength(reason), 122)
})

t.test('truncateUtf8: 1-, 2-, 3- and 4-byte characters, lone surrogates', async t => {
  t.equal(truncateUtf8('a'.repeat(200)), 'a'.repeat(123))
  t.equal(truncateUtf8('short'), 'short')
  t.equal(truncateUtf8('€'.repeat(50), 10), '€€€', 'three 3-byte characters')
  t.equal(truncateUtf8('😀'.repeat(40)), '😀'.repeat(30), 'never half a surrogate pair')
  t.equal(truncateUtf8('ab😀', 5), 'ab', 'a 4-byte character that does not fit is dropped whole')
  t.equal(truncateUtf8('\ud800'.repeat(50), 4), '\ud800', 'a lone surrogate counts as its 3-byte replacement')
  t.equal(truncateUtf8('aé€😀', 10), 'aé€😀', 'exactly 10 bytes, kept whole')
})

t.test('truncateUtf8: property — a prefix, within the limit, as long as possible', async () => {
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 200 }), fc.integer({ min: 0, max: 130 }), (text, max) => {
    const out = truncateUtf8(text, max)
    const bytes = Buffer.byteLength(out)
    if (!text.startsWith(out)) return false
    if (bytes > max) return false
    if (out === text) return true
    const next = String.fromCodePoint(text.codePointAt(out.length)!)
    return bytes + Buffer.byteLength(next) > max
  }), { numRuns: 500 })
})

t.test('whyUnsendableCloseCode explains what cannot be configured', async t => {
  t.equal(whyUnsendableCloseCode(1000), undefined)
  t.equal(whyUnsendableCloseCode(4999), undefined)
  t.match(whyUnsendableCloseCode(1005), /1005 is reserved/)
  t.match(whyUnsendableCloseCode(1006), /1006 is reserved/)
  t.match(whyUnsendableCloseCode(1015), /1015 is reserved/)
  for (const bad of [999, 1004, 2000, 5000, 4000.5, '4000', null]) {
    t.match(whyUnsendableCloseCode(bad), /must be an integer close code/, String(bad))
  }
})

t.test('peer faults and the error frame', async t => {
  t.type(peerGone(), ClientClosedError)
  t.match(peerUnresponsive(2).message, /did not answer 2 ping/)
  t.type(peerUnresponsive(1), ClientClosedError)
  t.type(peerIdle(50), RequestTimeoutError)
  t.match(peerIdle(50).message, /50 ms/)
})
