// The BUILT client (dist/client) in Chromium as plain ES modules: no
// bundler, only an import map for eventsource-parser. The same promises as
// test/client.test.ts, observed by the browser itself.
import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import type { Page } from 'playwright-core'
import { clientApp } from '../helpers/client-app.js'
import { external } from '../helpers/external.js'
import { guardProcess } from '../helpers/guard.js'
import { launchChromium } from './browser.js'

guardProcess(t)
const DIST = new URL('../../dist/', import.meta.url)
const PARSER = new URL('../../node_modules/eventsource-parser/dist/index.js', import.meta.url)
if (!existsSync(new URL('client/index.js', DIST))) throw new Error('dist/client/index.js is missing: run `npm run build` first (npm test does)')

const PAGE = `<!doctype html>
<meta charset="utf-8">
<script type="importmap">{ "imports": { "eventsource-parser": "/vendor/eventsource-parser.js" } }</script>
<script type="module">
  window.client = await import('/dist/client/index.js')
  document.body.dataset.ready = 'yes'
</script>
<body></body>`

const { base, hits } = await clientApp(t, app => {
  app.get('/page', async (request, reply) => reply.type('text/html').send(PAGE))
  app.get('/vendor/eventsource-parser.js', async (request, reply) => reply.type('text/javascript').send(readFileSync(PARSER)))
  app.get<{ Params: { '*': string } }>('/dist/*', async (request, reply) => {
    const file = new URL(request.params['*'], DIST)
    if (!file.pathname.startsWith(DIST.pathname) || !file.pathname.endsWith('.js') || !existsSync(file)) return reply.code(404).send('')
    return reply.type('text/javascript').send(readFileSync(file))
  })
})

const pageErrors: string[] = []

// Without a browser the file skips with one line outside CI and fails under CI=true.
const browserPage = await external(t, 'the browser tests (test/e2e/client.test.ts)', async () => {
  const browser = await launchChromium()
  t.teardown(() => browser.close())
  const page = await browser.newPage()
  page.on('pageerror', err => { pageErrors.push(err.message) })
  await page.goto(`${base}/page`)
  await page.waitForSelector('body[data-ready="yes"]', { state: 'attached', timeout: 30_000 })
  return page
})

/** Runs `fn` in the page with the client module as `c` (only from `browserPage.test`, which runs with a page). */
async function inPage<T> (fn: string): Promise<T> {
  return await (browserPage.value as Page).evaluate(`(async (c) => { ${fn} })(window.client)`) as T
}

const HELPERS = `
  const OutOfStockError = c.defineFault({ code: 'OUT_OF_STOCK', status: 409, title: 'Out of Stock' })
  const caught = async p => { try { await p; return undefined } catch (e) { return e } }
  const drain = async it => { const out = []; for await (const x of it) out.push(x); return out }
`

browserPage.test('the client loads unbundled, without a Node built-in', async t => {
  t.equal(await inPage<string>('return typeof c.readEvents'), 'function')
  t.equal(await inPage<boolean>('return new c.NotFoundError() instanceof c.Fault'), true)
})

browserPage.test('HTTP: a thrown defineFault class arrives as that class with its details', async t => {
  const r = await inPage<any>(`${HELPERS}
    const fault = await c.faultFromResponse(await fetch('/http/out-of-stock'))
    return { isClass: fault instanceof OutOfStockError, name: fault.constructor.name, details: fault.details, message: fault.message, requestId: typeof fault.problem.requestId }`)
  t.same(r, { isClass: true, name: 'OutOfStockError', details: { sku: 'BK-1', left: 2 }, message: 'Only 2 left of BK-1', requestId: 'string' })
})

browserPage.test('raw: a body cut mid-way throws StreamTruncatedError', async t => {
  const r = await inPage<any>(`${HELPERS}
    const e = await caught(drain(c.readBody('/raw/cut')))
    return { truncated: e instanceof c.StreamTruncatedError, requestId: typeof e.details?.requestId }`)
  t.same(r, { truncated: true, requestId: 'string' })
})

browserPage.test('ndjson: an error record throws the thrown class', async t => {
  const r = await inPage<any>(`${HELPERS}
    const items = []
    const e = await caught((async () => { for await (const x of c.readNdjson('/ndjson/fail')) items.push(x) })())
    return { items, isClass: e instanceof OutOfStockError, details: e.details }`)
  t.same(r, { items: [{ n: 1 }, { n: 2 }], isClass: true, details: { sku: 'BK-2', left: 0 } })
})

browserPage.test('SSE: a terminal fault is thrown with exactly one request; a retryable one resumes with Last-Event-ID', async t => {
  const r = await inPage<any>(`${HELPERS}
    const e = await caught(drain(c.readEvents('/sse/terminal')))
    const resumed = await drain(c.readEvents('/sse/retryable', { retry: { baseDelay: 1 } }))
    return { forbidden: e instanceof c.ForbiddenError, ids: resumed.map(m => m.id) }`)
  t.same(r, { forbidden: true, ids: ['1', '2', '3'] })
  t.same(hits.get('/sse/terminal'), [undefined], 'one request')
  t.same(hits.get('/sse/retryable'), [undefined, '2'], 'resumed with Last-Event-ID')
})

browserPage.test('WebSocket: error frame keeps it open; 1001 reconnects; 4403 resolves closed with ForbiddenError', async t => {
  const r = await inPage<any>(`${HELPERS}
    const ws = path => location.origin.replace('http', 'ws') + path
    const frames = []
    const echo = c.connectSocket(ws('/ws/echo'), {
      onFault: f => frames.push(f.constructor.name),
      onMessage: d => { if (d === 'echo:after') echo.close() }
    })
    echo.send('bad'); echo.send('after')
    const echoClosed = await echo.closed
    let opened = 0
    const told = []
    const back = c.connectSocket(ws('/ws/shutdown-once'), {
      retry: { baseDelay: 1 },
      onOpen: s => { if (++opened === 2) s.send('x') },
      onFault: f => told.push(f.constructor.name),
      onMessage: d => { if (d === 'echo:x') back.close() }
    })
    const backClosed = await back.closed
    const forbidden = await c.connectSocket(ws('/ws/forbidden'), { retry: { baseDelay: 1 } }).closed
    return { frames, echoClosed: echoClosed ?? null, opened, told, backClosed: backClosed ?? null, forbidden: forbidden instanceof c.ForbiddenError }`)
  t.same(r, { frames: ['BadRequestError'], echoClosed: null, opened: 2, told: ['ServerShutdownError'], backClosed: null, forbidden: true })
  await new Promise(resolve => setTimeout(resolve, 100))
  t.equal(hits.get('/ws/forbidden')!.length, 1, 'never reconnected')
})

browserPage.test('no page errors', async t => {
  t.same(pageErrors, [])
})
