/* global EventSource, location */
// The demo page: one runner per panel. Each runner triggers a failure and
// returns what the browser observed (kept in window.demo.results for the
// end-to-end tests) plus the facts and body the panel shows.

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
  sse: subscribe,
  websocket: chat,
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

async function problemRequest (url, init) {
  const res = await fetch(url, init)
  const contentType = res.headers.get('content-type')
  const text = await res.text()
  let body
  try { body = JSON.parse(text) } catch { body = text }
  return {
    observed: { status: res.status, contentType, body },
    facts: [
      ['status', statusLine(res), tone(res.status)],
      ['type', (contentType ?? '').split(';')[0]],
      ['code', body.code],
      ['detail', body.detail]
    ],
    body: pretty(body)
  }
}

// Reads a body chunk by chunk, as an app would; a cut body makes read() reject.
async function readAll (res) {
  const reader = res.body.getReader()
  const decoder = new TextDecoder()
  let text = ''
  let bytes = 0
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return { text: text + decoder.decode(), bytes, outcome: 'complete', readError: null }
      bytes += value.byteLength
      text += decoder.decode(value, { stream: true })
    }
  } catch (err) {
    return { text, bytes, outcome: 'truncated', readError: `${err.name}: ${err.message}` }
  }
}

async function streamRaw () {
  const res = await fetch('/api/stream/raw')
  const { text, bytes, outcome, readError } = await readAll(res)
  return {
    observed: { status: res.status, bytes, outcome, readError, text },
    facts: [
      ['status', statusLine(res), tone(res.status)],
      ['bytes received', bytes],
      ['body', outcome, outcome === 'truncated' ? 'bad' : 'good'],
      ['read() error', readError ?? '(none)']
    ],
    body: text
  }
}

async function streamNdjson () {
  const res = await fetch('/api/stream/ndjson')
  const { text, bytes, outcome, readError } = await readAll(res)
  const records = text.split('\n').filter(line => line !== '').map(line => JSON.parse(line))
  const last = records.at(-1)
  return {
    observed: { status: res.status, contentType: res.headers.get('content-type'), bytes, outcome, readError, records },
    facts: [
      ['status', statusLine(res), tone(res.status)],
      ['records', `${records.filter(r => r.type === 'data').length} × data, then ${last?.type}`],
      ['body', `${outcome} (${bytes} bytes)`, outcome === 'complete' ? 'good' : 'bad'],
      ['last record', last?.type === 'error' ? `${last.error.status} ${last.error.code}` : '(no error)', last?.type === 'error' ? 'bad' : 'good']
    ],
    body: text.trim().split('\n').map(line => line.length > 160 ? line.slice(0, 157) + '…' : line).join('\n') +
      (last?.type === 'error' ? '\n\nerror record, pretty:\n' + pretty(last.error) : '')
  }
}

function subscribe () {
  return new Promise((resolve, reject) => {
    const source = new EventSource('/api/events')
    const ticks = []
    let errorEvent
    const timer = setTimeout(() => { source.close(); reject(new Error(`the stream did not end within ${WAIT_MS} ms`)) }, WAIT_MS)
    source.addEventListener('tick', event => { ticks.push(JSON.parse(event.data).n) })
    source.addEventListener('error', event => {
      if (event instanceof MessageEvent) {
        // The server's `event: error`: a MessageEvent whose data is the problem.
        // A real client would close() here after a terminal one; the demo lets
        // the browser reconnect, to show the server telling it to stop.
        errorEvent = event
        return
      }
      // A connection-level error (a plain Event). CONNECTING: the browser is
      // reconnecting with Last-Event-ID. CLOSED: it has stopped for good.
      if (source.readyState !== EventSource.CLOSED) return
      clearTimeout(timer)
      source.close()
      if (errorEvent === undefined) { reject(new Error('the connection failed without an error event')); return }
      const problem = JSON.parse(errorEvent.data)
      resolve({
        observed: {
          ticks,
          error: { constructor: errorEvent.constructor.name, type: errorEvent.type, data: errorEvent.data, lastEventId: errorEvent.lastEventId },
          finalReadyState: source.readyState
        },
        facts: [
          ['received', `${ticks.length} × tick`, 'good'],
          ['then', `${errorEvent.constructor.name} "${errorEvent.type}"`, 'bad'],
          ['problem', `${problem.status} ${problem.code}`, tone(problem.status)],
          ['event id', errorEvent.lastEventId],
          ['reconnect', '204, then CLOSED']
        ],
        body: ticks.map(n => `event: tick  data: {"n":${n},…}`).join('\n') +
          '\n\nevent: error  id: ' + errorEvent.lastEventId + '\ndata, parsed:\n' + pretty(problem)
      })
    })
  })
}

function chat () {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws/chat`)
    const log = []
    const frames = []
    let step = 0
    const send = text => { log.push(`→ ${text}`); socket.send(text) }
    const timer = setTimeout(() => { socket.close(); reject(new Error(`no close after ${WAIT_MS} ms`)) }, WAIT_MS)
    socket.addEventListener('open', () => { send(JSON.stringify({ op: 'echo', text: 'hello' })) })
    socket.addEventListener('message', event => {
      log.push(`← ${event.data}`)
      const frame = JSON.parse(event.data)
      frames.push(frame)
      // hello -> echo; garbage -> error frame (socket stays open); hello again -> echo; crash -> close
      if (step === 0 && frame.type === 'echo') { step = 1; send('{"op": "echo", oops') } else if (step === 1 && frame.type === 'error') { step = 2; send(JSON.stringify({ op: 'echo', text: 'still open?' })) } else if (step === 2 && frame.type === 'echo') { step = 3; send(JSON.stringify({ op: 'crash' })) }
    })
    socket.addEventListener('close', event => {
      clearTimeout(timer)
      log.push(`✕ closed: code ${event.code}, reason "${event.reason}"`)
      const errors = frames.filter(f => f.type === 'error')
      resolve({
        observed: { frames, close: { constructor: event.constructor.name, code: event.code, reason: event.reason, wasClean: event.wasClean } },
        facts: [
          ['error frames', errors.map(f => `${f.error.status} ${f.error.code}`).join(', ') || '(none)', 'warn'],
          ['open after 400', step >= 3 ? 'yes' : 'no', step >= 3 ? 'good' : 'bad'],
          ['close code', event.code, event.code === 1000 ? 'good' : 'bad'],
          ['close reason', event.reason]
        ],
        body: log.map(line => line.length > 100 ? line.slice(0, 99) + '…' : line).join('\n')
      })
    })
  })
}

async function placeOrder () {
  const before = (await (await fetch('/api/faults')).json()).faults
  const after = before.length === 0 ? 0 : before.at(-1).seq
  const res = await fetch('/api/orders', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ item: 'book-1', quantity: 1 })
  })
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
