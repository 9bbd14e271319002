import t, { type Test } from 'tap'
import { mkdirSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import type { Page } from 'playwright-core'
import { buildDemo } from '../../examples/demo/app.js'
import { external } from '../helpers/external.js'
import { guardProcess } from '../helpers/guard.js'
import { captureLogs } from '../helpers/logs.js'
import { findChromium, launchChromium } from './browser.js'

// The demo app in-process on loopback, driven by a real Chromium: every
// assertion is about what the browser itself observed. Without a browser the
// file skips with one line outside CI and fails under CI=true.

const PANEL_TIMEOUT = 60_000 // a bound, not a timing assertion: the machine is shared

guardProcess(t)

const logs = captureLogs()
const pageErrors: string[] = []

const demo = await external(t, 'the browser tests (test/e2e/demo.test.ts)', async () => {
  const executablePath = findChromium()
  const app = await buildDemo({ logger: { level: 'debug', stream: logs.stream } })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const browser = await launchChromium(executablePath)
  t.teardown(() => browser.close())
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  page.on('pageerror', err => { pageErrors.push(err.message) })
  await page.goto(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}/`)
  return page
})

/** Clicks the panel's button, waits for it to finish, returns what the page recorded. */
async function run (t: Test, page: Page, name: string): Promise<Record<string, any>> {
  const panel = page.locator(`[data-panel="${name}"]`)
  await panel.locator('[data-run]').click()
  await page.waitForSelector(`[data-panel="${name}"][data-state="done"], [data-panel="${name}"][data-state="failed"]`, { timeout: PANEL_TIMEOUT })
  const observed = await page.evaluate(n => (window as any).demo.results[n], name)
  t.equal(await panel.getAttribute('data-state'), 'done', `${name}: the panel ran (${JSON.stringify(observed)})`)
  return observed
}

async function field (page: Page, name: string, label: string): Promise<string> {
  return await page.locator(`[data-panel="${name}"] dd[data-field="${label}"]`).innerText()
}

const PANELS = ['not-found', 'internal', 'validation', 'stream-raw', 'stream-ndjson', 'resume', 'sse', 'websocket', 'reconnect', 'background']

demo.test('the page loads with its script and style', async (t, page) => {
  t.equal(await page.title(), 'fastify-faultline demo')
  t.same(await page.locator('[data-panel]').evaluateAll(panels => panels.map(p => (p as HTMLElement).dataset.panel)), PANELS)
  t.equal(await page.evaluate(() => typeof (window as any).demo?.run), 'function')
})

demo.test('HTTP: a thrown NotFoundError is a 404 problem with its message', async (t, page) => {
  const o = await run(t, page, 'not-found')
  t.equal(o.status, 404)
  t.equal(o.contentType, 'application/problem+json; charset=utf-8')
  t.match(o.body, { status: 404, code: 'NOT_FOUND', title: 'Not Found', detail: 'No book with id 42', instance: '/api/books/42', requestId: String })
  t.match(o.fault, { className: 'NotFoundError', status: 404, message: 'No book with id 42' })
  t.equal(o.isFault, true, 'rebuilt by the client module as a Fault')
  t.equal(await field(page, 'not-found', 'status'), '404 Not Found')
  t.equal(await field(page, 'not-found', 'class'), 'NotFoundError')
  t.equal(await field(page, 'not-found', 'detail'), 'No book with id 42')
})

demo.test('HTTP: a thrown InternalError reaches the browser as a title only', async (t, page) => {
  const o = await run(t, page, 'internal')
  t.equal(o.status, 500)
  t.match(o.body, { status: 500, code: 'INTERNAL', title: 'Internal Server Error', detail: 'Internal Server Error' })
  t.notMatch(JSON.stringify(o.body), /ledger|password|10\.0\.3\.7|stack/)
  t.equal(await field(page, 'internal', 'detail'), 'Internal Server Error')
  t.equal(await field(page, 'internal', 'class'), 'InternalError')
  // The page's server-side table shows that reporters still got the real message.
  t.match(await page.locator('#reports').innerText(), /ledger database refused the connection/)
})

demo.test('HTTP: a schema failure is a 400 VALIDATION problem listing the issue', async (t, page) => {
  const o = await run(t, page, 'validation')
  t.equal(o.status, 400)
  t.match(o.body, { status: 400, code: 'VALIDATION', errors: [{ instancePath: String, message: String }] })
  t.equal(await field(page, 'validation', 'code'), 'VALIDATION')
  t.match(o.fault, { className: 'ValidationError', details: { errors: [{ instancePath: String }] } })
})

demo.test('stream, raw: a failure after the first byte truncates the body: readBody throws StreamTruncatedError', async (t, page) => {
  const o = await run(t, page, 'stream-raw')
  t.equal(o.status, 200)
  t.equal(o.outcome, 'truncated', 'the body read failed instead of ending cleanly')
  t.match(o.fault, { className: 'StreamTruncatedError', code: 'STREAM_TRUNCATED', retryable: true, details: { requestId: String } })
  t.match(o.text, /^1,order-1001,42.00 EUR\n/)
  t.ok(o.bytes > 0, 'the bytes before the failure arrived')
  t.notMatch(o.text, /Export upstream|BAD_GATEWAY/, 'nothing about the fault leaks into the raw body')
  t.equal(await field(page, 'stream-raw', 'body'), 'truncated')
  t.equal(await field(page, 'stream-raw', 'class'), 'StreamTruncatedError')
})

demo.test('stream, ndjson: the error record is thrown as the class the route threw', async (t, page) => {
  const o = await run(t, page, 'stream-ndjson')
  t.equal(o.status, 200)
  t.match(o.contentType, /^application\/x-ndjson/)
  t.same(o.items.map((i: any) => i.sku), ['BK-001', 'BK-002', 'BK-003'])
  t.match(o.fault, { className: 'ServiceUnavailableError', status: 503, code: 'SERVICE_UNAVAILABLE', message: 'Inventory shard 3 is rebalancing; try again shortly', retryAfter: 5 })
  t.equal(await field(page, 'stream-ndjson', 'class'), 'ServiceUnavailableError')
  t.equal(await field(page, 'stream-ndjson', 'retry after'), '5 s')
})

demo.test('resume: a download broken twice finishes through 206s with the expected checksum', async (t, page) => {
  const o = await run(t, page, 'resume')
  t.equal(o.attempts.length, 3, 'the first request and two resumes')
  t.match(o.attempts[0], { range: null, ifRange: null, status: 200, contentRange: null })
  for (const a of o.attempts.slice(1)) {
    t.match(a, { range: /^bytes=\d+-$/, ifRange: /^"[0-9a-f]{32}"$/, status: 206 })
    t.equal(a.contentRange, `bytes ${/^bytes=(\d+)-$/.exec(a.range)![1]}-${o.length - 1}/${o.length}`, 'each 206 starts where the client asked')
  }
  t.equal(o.bytes, o.length)
  t.equal(o.sha256, o.expected, 'the checksum of what arrived equals the source\'s')
  t.equal(o.match, true)
  t.equal(await field(page, 'resume', 'checksum'), 'equal')
  t.equal(await field(page, 'resume', '206 responses'), '2')
})

demo.test('SSE: readEvents throws the terminal ForbiddenError after one request', async (t, page) => {
  const o = await run(t, page, 'sse')
  t.same(o.ticks, [1, 2, 3])
  t.equal(o.forbidden, true)
  t.match(o.fault, { className: 'ForbiddenError', status: 403, code: 'FORBIDDEN', message: 'Your subscription to ticks was revoked', retryable: false })
  t.equal(o.requests, 1, 'terminal: never retried')
  t.equal(await field(page, 'sse', 'class'), 'ForbiddenError')
  t.equal(await field(page, 'sse', 'problem'), '403 FORBIDDEN')
})

demo.test('WebSocket: an error frame keeps the socket open; a fatal fault closes it and closed resolves with the fault', async (t, page) => {
  const o = await run(t, page, 'websocket')
  t.same(o.frames.map((f: any) => f.type), ['echo', 'echo'])
  t.match(o.faults, [{ className: 'BadRequestError', status: 400, message: /Messages must be JSON/ }, { className: 'InternalError', status: 500, message: 'Internal Server Error' }])
  t.equal(o.faults.length, 2, 'one fault per failing message, nothing more')
  t.notMatch(JSON.stringify(o), /redis-2/, 'the 5xx message stays on the server')
  t.match(o.final, { className: 'InternalError', code: 'INTERNAL' })
  t.same(o.close, { code: 1011, reason: 'INTERNAL', wasClean: true })
  t.equal(await field(page, 'websocket', 'close code'), '1011')
  t.equal(await field(page, 'websocket', 'closed with'), 'InternalError')
})

demo.test('WebSocket reconnection: a server-initiated 1001 reconnects', async (t, page) => {
  const o = await run(t, page, 'reconnect')
  t.same(o.closes, [1001, 1000], 'the server\'s 1001, then the page\'s own close')
  t.same(o.told, ['ServerShutdownError'])
  t.equal(o.opens, 2, 'the socket survived the restart')
  t.equal(o.final, null, 'closed normally by the page')
  t.equal(await field(page, 'reconnect', 'connections opened'), '2')
})

demo.test('background: the response is 202, the failure of the task is reported afterwards with the request id', async (t, page) => {
  const o = await run(t, page, 'background')
  t.equal(o.status, 202)
  t.match(o.body, { status: 'accepted', orderId: String, requestId: String })
  t.match(o.report, {
    transport: 'background',
    phase: 'after-response',
    status: 502,
    code: 'BAD_GATEWAY',
    requestId: o.body.requestId,
    task: 'receipt-email'
  })
  const logged = logs.faults().filter(l => l.transport === 'background')
  t.equal(logged.length, 1, 'logged once, as handled')
  t.equal(logged[0]?.reqId, o.body.requestId)
  t.equal(await field(page, 'background', 'then reported'), '502 BAD_GATEWAY')
})

demo.test('Run all runs every panel again', async (t, page) => {
  await page.locator('#run-all').click()
  await page.waitForSelector('body[data-run-all="done"]', { timeout: PANEL_TIMEOUT * 2 })
  const states = await page.locator('[data-panel]').evaluateAll(panels => panels.map(p => `${(p as HTMLElement).dataset.panel}: ${(p as HTMLElement).dataset.state}`))
  t.same(states, PANELS.map(name => `${name}: done`))
})

demo.test('after every panel ran', async (t, page) => {
  t.same(pageErrors, [], 'the page script threw nothing')
  t.ok(logs.faults().length > 0, 'the server logged the faults as handled')
  if (process.env.UPDATE_SCREENSHOT === '1') {
    const path = new URL('../../docs/demo.png', import.meta.url)
    mkdirSync(new URL('./', path), { recursive: true })
    await page.screenshot({ path: path.pathname, fullPage: true })
    t.pass(`screenshot saved to ${path.pathname}`)
  }
})
