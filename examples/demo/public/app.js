/* global location */
// The demo page: one runner per panel. Each runner triggers a failure and
// returns what the browser observed (kept in window.demo.results for the
// end-to-end tests) plus the facts and body the panel shows. The wire is
// read with `fastify-faultline/client`, loaded as plain ES modules.
import * as client from '/client/index.js'

const WAIT_MS = 20000 // generous: a shared machine can be slow

const results = {}
window.demo = { results, run, runAll }

const runners = {
  'not-found': () => problemRequest('/api/books/42'),
  internal: () => problemRequest('/api/report'),
  validation: () => problemRequest('/api/books', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ title: '', year: 1200 })
  }),
  'stream-raw': streamRaw,
  'stream-ndjson': streamNdjson,
  resume: resumeDownload,
  sse: subscribe,
  websocket: chat,
  reconnect,
  background: placeOrder
}

for (const button of document.querySelectorAll('[data-run]')) {
  button.addEventListener('click', () => { run(button.dataset.run) })
}
document.getElementById('run-all').addEventListener('click', runAll)
refreshReports()

async function runAll () {
  const button = document.getElementById('run-all')
  button.disabled = true
  document.body.dataset.runAll = 'running'
  try {
    for (const name of Object.keys(runners)) await run(name)
  } finally {
    button.disabled = false
    document.body.dataset.runAll = 'done'
  }
}

async function run (name) {
  const panel = document.querySelector(`[data-panel="${name}"]`)
  const button = panel.querySelector('[data-run]')
  button.disabled = true
  panel.dataset.state = 'running'
  render(panel, [['state', 'running…']], '')
  try {
    const { observed, facts, body } = await runners[name]()
    results[name] = observed
    render(panel, facts, body)
    panel.dataset.state = 'done'
  } catch (err) {
    // A failure of the demo itself (not of the route): say so plainly.
    results[name] = { demoError: String(err) }
    render(panel, [['demo error', String(err), 'bad']], '')
    panel.dataset.state = 'failed'
  } finally {
    button.disabled = false
    await refreshReports()
  }
}

// ---------------------------------------------------------------- rendering

function render (panel, facts, body) {
  const dl = panel.querySelector('.facts')
  dl.replaceChildren()
  for (const [label, value, tone] of facts) {
    const dt = document.createElement('dt')
    dt.textContent = label
    const dd = document.createElement('dd')
    dd.textContent = String(value)
    dd.dataset.field = label
    if (tone) dd.className = tone
    dl.append(dt, dd)
  }
  panel.querySelector('.body').textContent = body
}

function pretty (value) {
  return typeof value === 'string' ? value : JSON.stringify(value, null, 2)
}

function statusLine (res) {
  return `${res.status} ${res.statusText}`.trim()
}

function tone (status) {
  return status >= 500 ? 'bad' : status >= 400 ? 'warn' : 'good'
}

async function refreshReports () {
  const tbody = document.getElementById('reports')
  let faults
  try {
    faults = (await (await fetch('/api/faults')).json()).faults
  } catch {
    return // the table is a convenience; the panels carry the results
  }
  if (faults.length === 0) return
  tbody.replaceChildren()
  for (const f of faults.slice(-10).reverse()) {
    const tr = document.createElement('tr')
    tr.className = tone(f.status)
    for (const cell of [f.seq, f.requestId ?? '–', f.transport, f.phase, f.status, f.code, f.message, f.exposedToClient ? 'yes' : 'no, title only']) {
      const td = document.createElement('td')
      td.textContent = String(cell)
      tr.append(td)
    }
    tbody.append(tr)
  }
}

// ------------------------------------------------------------------- runners
// Every panel reads the wire with the client module: the same fault classes
// the routes threw, rebuilt from problem bodies, error records, SSE error
// events and close frames. No hand-written decoding.

function faultFacts (fault) {
  return [
    ['class', fault.constructor.name, tone(fault.status)],
    ['problem', `${fault.status} ${fault.code}`, tone(fault.status)],
    ['message', fault.message]
  ]
}

function describeFault (fault) {
  return { className: fault.constructor.name, status: fault.status, code: fault.code, message: fault.message, retryable: fault.retryable, retryAfter: fault.retryAfter ?? null, details: fault.details ?? null }
}

async function problemRequest (url, init) {
  const res = await fetch(url, init)
  const contentType = res.headers.get('content-type')
  const fault = await client.faultFromResponse(res)
  const body = fault.problem
  return {
    observed: { status: res.status, contentType, body, fault: describeFault(fault), isFault: fault instanceof client.Fault },
    facts: [
      ['status', statusLine(res), tone(res.status)],
      ['type', (contentType ?? '').split(';')[0]],
      ['class', fault.constructor.name, tone(fault.status)],
      ['code', fault.code],
      ['detail', fault.message]
    ],
    body: pretty(body)
  }
}

async function streamRaw () {
  const res = await fetch('/api/stream/raw')
  const decoder = new TextDecoder()
  let text = ''
  let bytes = 0
  let fault = null
  try {
    for await (const chunk of client.readBody(res)) {
      bytes += chunk.byteLength
      text += decoder.decode(chunk, { stream: true })
    }
  } catch (err) {
    if (!(err instanceof client.StreamTruncatedError)) throw err
    fault = err
  }
  const outcome = fault === null ? 'complete' : 'truncated'
  return {
    observed: { status: res.status, bytes, outcome, fault: fault && describeFault(fault), text },
    facts: [
      ['status', statusLine(res), tone(res.status)],
      ['bytes received', bytes],
      ['body', outcome, outcome === 'truncated' ? 'bad' : 'good'],
      ['class', fault ? fault.constructor.name : '(none)', fault ? 'bad' : 'good'],
      ['request id', fault?.details?.requestId ?? '(none)']
    ],
    body: text
  }
}

async function resumeDownload () {
  // A fetch that records every attempt: what the client asked, what came back.
  const attempts = []
  const recording = async (url, init) => {
    const res = await fetch(url, init)
    const headers = new Headers(init?.headers)
    attempts.push({ range: headers.get('range'), ifRange: headers.get('if-range'), status: res.status, contentRange: res.headers.get('content-range') })
    return res
  }
  const session = crypto.randomUUID()
  const chunks = []
  let bytes = 0
  for await (const chunk of client.readBody(`/api/download?session=${session}`, { fetch: recording, retry: { baseDelay: 50, maxDelay: 500 } })) {
    chunks.push(chunk)
    bytes += chunk.byteLength
  }
  const all = new Uint8Array(bytes)
  let at = 0
  for (const chunk of chunks) {
    all.set(chunk, at)
    at += chunk.byteLength
  }
  const digest = [...new Uint8Array(await crypto.subtle.digest('SHA-256', all))].map(b => b.toString(16).padStart(2, '0')).join('')
  const expected = await (await fetch('/api/download/sha256')).json()
  const partials = attempts.filter(a => a.status === 206).length
  const match = digest === expected.sha256
  return {
    observed: { attempts, bytes, sha256: digest, expected: expected.sha256, length: expected.length, match },
    facts: [
      ['attempts', attempts.length],
      ['206 responses', partials, partials > 0 ? 'good' : 'warn'],
      ['bytes', `${bytes} of ${expected.length}`, bytes === expected.length ? 'good' : 'bad'],
      ['sha256', digest.slice(0, 16) + '…'],
      ['expected', expected.sha256.slice(0, 16) + '…'],
      ['checksum', match ? 'equal' : 'DIFFERENT', match ? 'good' : 'bad']
    ],
    body: attempts.map((a, i) => `#${i + 1} ${a.range === null ? 'GET (whole body)' : `Range: ${a.range}, If-Range: ${a.ifRange}`}\n   -> ${a.status}${a.contentRange ? ` Content-Range: ${a.contentRange}` : ''}`).join('\n')
  }
}

async function streamNdjson () {
  const res = await fetch('/api/stream/ndjson')
  const items = []
  let fault = null
  try {
    for await (const item of client.readNdjson(res)) items.push(item)
  } catch (err) {
    if (!(err instanceof client.Fault)) throw err
    fault = err
  }
  return {
    observed: { status: res.status, contentType: res.headers.get('content-type'), items, fault: fault && describeFault(fault) },
    facts: [
      ['status', statusLine(res), tone(res.status)],
      ['records', `${items.length} × data, then ${fault ? 'an error record' : 'the end record'}`],
      ...(fault ? faultFacts(fault) : []),
      ['retry after', fault?.retryAfter === undefined ? '(none)' : `${fault.retryAfter} s`]
    ],
    body: items.map(item => JSON.stringify(item)).join('\n') + (fault ? '\n\nthrown: ' + pretty(describeFault(fault)) : '')
  }
}

async function subscribe () {
  const ticks = []
  let requests = 0
  let fault = null
  const countingFetch = (url, init) => { requests++; return fetch(url, init) }
  try {
    for await (const message of client.readEvents('/api/events', { fetch: countingFetch })) {
      if (message.event === 'tick') ticks.push(JSON.parse(message.data).n)
    }
  } catch (err) {
    if (!(err instanceof client.Fault)) throw err
    fault = err
  }
  if (fault === null) throw new Error('the stream ended without its error event')
  return {
    observed: { ticks, requests, fault: describeFault(fault), forbidden: fault instanceof client.ForbiddenError },
    facts: [
      ['received', `${ticks.length} × tick`, 'good'],
      ...faultFacts(fault),
      ['requests', `${requests} (terminal: not retried)`]
    ],
    body: ticks.map(n => `event: tick  data: {"n":${n},…}`).join('\n') + '\n\nthen thrown: ' + pretty(describeFault(fault))
  }
}

async function chat () {
  const log = []
  const frames = []
  const faults = []
  let step = 0
  let closeEvent = null
  const socket = client.connectSocket(wsUrl('/ws/chat'), {
    onOpen (ws) {
      ws.addEventListener('close', event => { closeEvent = { code: event.code, reason: event.reason, wasClean: event.wasClean } })
      send(JSON.stringify({ op: 'echo', text: 'hello' }))
    },
    onMessage (data) {
      log.push(`← ${data}`)
      frames.push(JSON.parse(data))
      // hello -> echo; garbage -> onFault (socket stays open); hello again -> echo; crash -> closed
      if (step === 0) { step = 1; send('{"op": "echo", oops') } else if (step === 2) { step = 3; send(JSON.stringify({ op: 'crash' })) }
    },
    onFault (fault) {
      log.push(`← error frame: ${fault.constructor.name} ${fault.status} ${fault.code}`)
      faults.push(describeFault(fault))
      if (step === 1) { step = 2; send(JSON.stringify({ op: 'echo', text: 'still open?' })) }
    }
  })
  function send (text) { log.push(`→ ${text}`); socket.send(text) }
  const final = await withTimeout(socket.closed, 'the socket did not close')
  // closed resolves inside the close event; the page's own close listener runs right after.
  await new Promise(resolve => setTimeout(resolve))
  log.push(`✕ closed: ${final ? `${final.constructor.name} (code ${closeEvent?.code}, reason "${closeEvent?.reason}")` : 'normally'}`)
  return {
    observed: { frames, faults, final: final && describeFault(final), close: closeEvent },
    facts: [
      ['error frames', faults.map(f => `${f.className} ${f.status}`).join(', ') || '(none)', 'warn'],
      ['open after 400', step >= 3 ? 'yes' : 'no', step >= 3 ? 'good' : 'bad'],
      ['closed with', final ? final.constructor.name : '(normal close)', final ? 'bad' : 'good'],
      ['close code', closeEvent?.code ?? '?'],
      ['close reason', closeEvent?.reason ?? '?']
    ],
    body: log.map(line => line.length > 100 ? line.slice(0, 99) + '…' : line).join('\n')
  }
}

async function reconnect () {
  const log = []
  const told = []
  const closes = []
  let opens = 0
  const session = Math.random().toString(36).slice(2)
  const socket = client.connectSocket(wsUrl(`/ws/ticker?session=${session}`), {
    retry: { baseDelay: 200 },
    onOpen (ws) {
      opens++
      log.push(`✓ open #${opens}`)
      ws.addEventListener('close', event => { closes.push(event.code); log.push(`✕ close ${event.code} "${event.reason}"`) })
      log.push('→ ping')
      socket.send('ping')
    },
    onMessage (data) {
      log.push(`← ${data}`)
      if (JSON.parse(data).connection === 'again') socket.close()
    },
    onFault (fault) {
      told.push(fault.constructor.name)
      log.push(`… ${fault.constructor.name} (retryable): reconnecting`)
    }
  })
  const final = await withTimeout(socket.closed, 'the socket did not reconnect and close')
  return {
    observed: { opens, told, closes, final: final ? describeFault(final) : null },
    facts: [
      ['server closed with', closes[0] ?? '?', 'warn'],
      ['onFault was told', told.join(', ') || '(nothing)', 'warn'],
      ['connections opened', opens, opens === 2 ? 'good' : 'bad'],
      ['closed', final ? final.constructor.name : 'normally, by the page', final ? 'bad' : 'good']
    ],
    body: log.join('\n')
  }
}

function wsUrl (path) {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${path}`
}

function withTimeout (promise, message) {
  let timer
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((resolve, reject) => { timer = setTimeout(() => reject(new Error(`${message} within ${WAIT_MS} ms`)), WAIT_MS) })
  ])
}

async function placeOrder () {
  const before = (await (await fetch('/api/faults')).json()).faults
  const after = before.length === 0 ? 0 : before.at(-1).seq
  const res = await fetch('/api/orders', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ item: 'book-1', quantity: 1 })
  })
  const fault = await client.faultFromResponse(res.clone())
  if (fault !== undefined) throw fault
  const body = await res.json()
  // The failure happens after the response, so only the server knows: ask its reporter feed.
  const deadline = Date.now() + WAIT_MS
  let report
  while (report === undefined) {
    if (Date.now() > deadline) throw new Error(`the background failure was not reported within ${WAIT_MS} ms`)
    await new Promise(resolve => setTimeout(resolve, 100))
    const { faults } = await (await fetch(`/api/faults?after=${after}`)).json()
    report = faults.find(f => f.requestId === body.requestId && f.transport === 'background')
  }
  return {
    observed: { status: res.status, body, report },
    facts: [
      ['status', statusLine(res), tone(res.status)],
      ['then reported', `${report.status} ${report.code}`, 'bad'],
      ['transport', `${report.transport}, ${report.phase}`],
      ['request id', `${report.requestId}${report.requestId === body.requestId ? ' (same)' : ' (different!)'}`]
    ],
    body: 'response:\n' + pretty(body) + '\n\nreported afterwards:\n' + pretty(report)
  }
}
