// Checks shared by the fuzz, injection and chaos suites: each returns why a
// transport's output breaks its contract, or undefined when it holds.
import { parseEvents } from './sse-client.js'
import { DEFAULT_TERMINAL_ID_PREFIX, MAX_CLOSE_REASON_BYTES, isSendableCloseCode } from '../../index.js'

const FIELD = /^(event|id|data|retry): /

/** Why an SSE body is not "one data event, then one well-formed error event, then the end"; undefined when it is. */
export function errorEventProblem (body: string): string | undefined {
  const { events } = parseEvents(body)
  if (events.length !== 2) return `expected 2 events, got ${events.length}`
  const [first, error] = events
  if (first!.event !== undefined || first!.data !== '"first"') return 'the first event changed'
  if (error!.event !== 'error') return `last event is ${String(error!.event)}`
  if (error!.id !== undefined && !error!.id.startsWith(DEFAULT_TERMINAL_ID_PREFIX)) return `foreign id ${error!.id}`
  let problem: { status?: unknown, code?: unknown, title?: unknown }
  try {
    problem = JSON.parse(error!.data)
  } catch {
    return 'error data is not JSON'
  }
  if (typeof problem.status !== 'number' || problem.status < 400 || problem.status > 599) return `status ${String(problem.status)}`
  if (typeof problem.code !== 'string' || typeof problem.title !== 'string') return 'no code or title'
  // The raw error event: only known fields, one line each, one data line.
  const blocks = body.split('\n\n').filter(b => b !== '')
  const lines = blocks[blocks.length - 1]!.split('\n')
  if (!lines.every(line => FIELD.test(line))) return `unknown field in ${JSON.stringify(lines)}`
  if (lines.filter(l => l.startsWith('data: ')).length !== 1 || lines.filter(l => l.startsWith('event: ')).length !== 1) return 'not exactly one event and one data line'
  if (/[\r\u2028\u2029]/.test(body)) return 'a raw line separator in the body'
  return undefined
}

/** Why an ndjson body is not "one data record, then exactly one error record with a problem"; undefined when it is. */
export function ndjsonErrorProblem (body: string): string | undefined {
  if (/[\r\u2028\u2029]/.test(body)) return 'a raw line separator in the body'
  if (!body.endsWith('\n')) return 'the last record is not terminated'
  const lines = body.slice(0, -1).split('\n')
  if (lines.length !== 2) return `expected 2 records, got ${lines.length}`
  let records: Array<{ type?: unknown, error?: { status?: unknown, code?: unknown } }>
  try {
    records = lines.map(line => JSON.parse(line))
  } catch {
    return 'a record is not JSON'
  }
  if (records[0]!.type !== 'data') return 'the data record changed'
  const last = records[1]!
  if (last.type !== 'error' || typeof last.error !== 'object' || last.error === null) return 'the last record is not an error record'
  const { status, code } = last.error
  if (typeof status !== 'number' || status < 400 || status > 599) return `status ${String(status)}`
  if (typeof code !== 'string') return 'no code'
  return undefined
}

/** Why a response is not a valid problem+json with a 400-599 status; undefined when it is. */
export function problemResponseProblem (status: number, contentType: unknown, body: string): string | undefined {
  if (status < 400 || status > 599) return `status ${status}`
  if (!String(contentType).startsWith('application/problem+json')) return `content-type ${String(contentType)}`
  if (/[\r\n\u2028\u2029]/.test(body)) return 'a line break in the body'
  try {
    const problem = JSON.parse(body)
    if (problem.status !== status || typeof problem.code !== 'string' || typeof problem.title !== 'string') return `fields ${body.slice(0, 200)}`
  } catch {
    return 'the body is not JSON'
  }
  return undefined
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

/** Why a close the client saw from the server breaks the contract; undefined when it holds. */
export function closeProblem (code: number, reason: Buffer): string | undefined {
  if (!isSendableCloseCode(code) || code === 1005 || code === 1006 || code === 1015) return `close code ${code}`
  if (reason.byteLength > MAX_CLOSE_REASON_BYTES) return `reason of ${reason.byteLength} bytes`
  try {
    strictUtf8.decode(reason)
  } catch {
    return 'reason is not valid UTF-8'
  }
  return undefined
}

/** Why a WebSocket error frame is not `{"type":"error","error":<problem>}`; undefined when it is. */
export function errorFrameProblem (text: string): string | undefined {
  try {
    const frame = JSON.parse(text)
    if (frame.type !== 'error' || typeof frame.error !== 'object') return 'not an error frame'
    const { status, code } = frame.error
    if (typeof status !== 'number' || status < 400 || status > 599 || typeof code !== 'string') return `problem ${text.slice(0, 200)}`
  } catch {
    return 'the frame is not JSON'
  }
  return undefined
}
