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

const PANELS = ['not-found', 'internal', 'validation', 'stream-raw', 'stream-ndjson', 'sse', 'websocket', 'background']

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
  t.equal(await field(page, 'not-found', 'status'), '404 Not Found')
  t.equal(await field(page, 'not-found', 'detail'), 'No book with id 42')
})

demo.test('HTTP: a thrown InternalError reaches the browser as a title only', async (t, page) => {
  const o = await run(t, page, 'internal')
  t.equal(o.status, 500)
  t.match(o.body, { status: 500, code: 'INTERNAL', title: 'Internal Server Error', detail: 'Internal Server Error' })
  t.notMatch(JSON.stringify(o.body), /ledger|password|10\.0\.3\.7|stack/)
  t.equal(await field(page, 'internal', 'detail'), 'Internal Server Error')
  // The page's server-side table shows that reporters still got the real message.
  t.match(await page.locator('#reports').innerText(), /ledger database refused the connection/)
})

demo.test('HTTP: a schema failure is a 400 VALIDATION problem listing the issue', async (t, page) => {
  const o = await run(t, page, 'validation')
  t.equal(o.status, 400)
  t.match(o.body, { status: 400, code: 'VALIDATION', errors: [{ instancePath: String, message: String }] })
  t.equal(await field(page, 'validation', 'code'), 'VALIDATION')
})

demo.test('stream, raw: a failure after the first byte truncates the body and fetch rejects', async (t, page) => {
  const o = await run(t, page, 'stream-raw')
  t.equal(o.status, 200)
  t.equal(o.outcome, 'truncated', 'the body read rejected instead of ending cleanly')
  t.match(o.readError, /^TypeError: /)
  t.match(o.text, /^1,order-1001,42.00 EUR\n/)
  t.ok(o.bytes > 0, 'the bytes before the failure arrived')
  t.notMatch(o.text, /Export upstream|BAD_GATEWAY/, 'nothing about the fault leaks into the raw body')
  t.equal(await field(page, 'stream-raw', 'body'), 'truncated')
})

demo.test('stream, ndjson: the body ends cleanly with an error record', async (t, page) => {
  const o = await run(t, page, 'stream-ndjson')
  t.equal(o.status, 200)
  t.match(o.contentType, /^application\/x-ndjson/)
  t.equal(o.outcome, 'complete')
  t.same(o.records.slice(0, 3).map((r: any) => r.type), ['data', 'data', 'data'])
  t.equal(o.records.length, 4)
  t.match(o.records[3], {
    type: 'error',
    error: { status: 503, code: 'SERVICE_UNAVAILABLE', detail: 'Inventory shard 3 is rebalancing; try again shortly', requestId: String }
  })
  t.equal(await field(page, 'stream-ndjson', 'last record'), '503 SERVICE_UNAVAILABLE')
})

demo.test('SSE: EventSource receives a MessageEvent of type error with the problem, then stops', async (t, page) => {
  const o = await run(t, page, 'sse')
  t.same(o.ticks, [1, 2, 3])
  t.equal(o.error.constructor, 'MessageEvent')
  t.equal(o.error.type, 'error')
  t.equal(o.error.lastEventId, 'faultline-terminal:FORBIDDEN')
  t.match(JSON.parse(o.error.data), { status: 403, code: 'FORBIDDEN', detail: 'Your subscription to ticks was revoked', instance: '/api/events' })
  t.equal(o.finalReadyState, 2, 'EventSource.CLOSED: the reconnect was told to stop (204)')
  t.equal(await field(page, 'sse', 'then'), 'MessageEvent "error"')
  t.equal(await field(page, 'sse', 'problem'), '403 FORBIDDEN')
})

demo.test('WebSocket: an error frame keeps the socket open; a fatal fault closes it with code and reason', async (t, page) => {
  const o = await run(t, page, 'websocket')
  t.same(o.frames.map((f: any) => f.type), ['echo', 'error', 'echo', 'error'])
  t.match(o.frames[1].error, { status: 400, code: 'BAD_REQUEST', detail: /Messages must be JSON/ })
  t.match(o.frames[3].error, { status: 500, code: 'INTERNAL', detail: 'Internal Server Error' })
  t.notMatch(JSON.stringify(o.frames), /redis-2/, 'the 5xx message stays on the server')
  t.same(o.close, { constructor: 'CloseEvent', code: 1011, reason: 'INTERNAL', wasClean: true })
  t.equal(await field(page, 'websocket', 'close code'), '1011')
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
