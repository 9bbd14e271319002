import type { Fault } from './fault.js'
import { causeChain, preview, type DebugCause } from './problem.js'
import { isThenable } from './thenable.js'

export type Transport = 'http' | 'stream' | 'sse' | 'websocket' | 'background'
export type Phase = 'before-response' | 'mid-stream' | 'message' | 'upgrade' | 'after-response'
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent'

/** The subset of a pino logger the report path uses. */
export interface FaultLogger {
  isLevelEnabled?: (level: string) => boolean
  trace: (obj: object, msg?: string) => void
  debug: (obj: object, msg?: string) => void
  info: (obj: object, msg?: string) => void
  warn: (obj: object, msg?: string) => void
  error: (obj: object, msg?: string) => void
  fatal: (obj: object, msg?: string) => void
}

/** The request-like object a report may carry (a FastifyRequest in practice). */
export interface ReportRequest {
  id?: string
  log?: FaultLogger
}

export interface FaultContext<R = ReportRequest> {
  transport: Transport
  phase: Phase
  /** The request the fault belongs to, when there is one. */
  request?: R | undefined
  /** Log level for this one report, overriding the class's (e.g. expected shutdown faults). */
  level?: LogLevel | undefined
  /**
   * `false` reports even if this request already reported the same fault:
   * for long-lived connections where each message is its own occurrence.
   */
  dedupe?: boolean | undefined
  /** Extra fields, e.g. `task` for background work. Copied into the log line. */
  [field: string]: unknown
}

/** A reporter: `(fault, { transport, phase, request })`. May be async; its failures are logged and ignored. */
export type FaultReporter<R = any> = (fault: Fault, context: FaultContext<R>) => unknown

/** Log level per class of fault: `4xx`, `5xx`, `clientAbort`, or a fault code. */
export interface LogLevels {
  '4xx'?: LogLevel
  '5xx'?: LogLevel
  clientAbort?: LogLevel
  [code: string]: LogLevel | undefined
}

export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']
const CONTEXT_KEYS = new Set(['transport', 'phase', 'request', 'level', 'dedupe'])
// Faults remembered per request for dedupe: two layers seeing one fault are
// adjacent, and a long-lived socket must not grow the list without bound.
const DEDUPE_WINDOW = 8

export interface ReportOptions {
  reporters: readonly FaultReporter[]
  logLevel?: LogLevels | undefined
  /** Logger for faults without a request (and for failing reporters of those). */
  log: FaultLogger
}

/** Where a failure happened, from whether the response's headers went out. */
export function responsePhase (headersSent: boolean): 'before-response' | 'mid-stream' {
  return headersSent ? 'mid-stream' : 'before-response'
}

/** Whether a fault is a client abort (499): the peer went away, normal churn, not our failure. */
export function isClientAbort (fault: Pick<Fault, 'status'>): boolean {
  return fault.status === 499
}

/** The log level for a fault: by code first, then its class. */
export function levelFor (fault: Fault, levels: LogLevels | undefined): LogLevel {
  if (levels !== undefined) {
    const byCode = Object.hasOwn(levels, fault.code) ? levels[fault.code] : undefined
    if (byCode !== undefined) return byCode
  }
  if (isClientAbort(fault)) return levels?.clientAbort ?? 'debug'
  if (fault.status >= 500) return levels?.['5xx'] ?? 'error'
  return levels?.['4xx'] ?? 'info'
}

/** A fault as a log record: plain data, read once, safe for any serializer. */
export interface SerializedFault {
  /** The fault's name; for a fault `toFault` adopted, the original error's (e.g. `TypeError`). */
  name: string
  message: string
  /** The fault's code; for an adopted fault, the original error's own code when it has one (e.g. `ECONNREFUSED`). */
  code: string
  status: number
  /** The fault's stack; for an adopted fault, the original error's (where it was thrown). */
  stack?: string
  /** The cause chain: the fault's, or for an adopted fault the original error's own causes. */
  cause?: DebugCause[]
  /** For an adopted fault: the original error's other own fields (e.g. the headers an http-errors error carries), previewed. */
  fields?: Record<string, unknown>
}

function nonEmpty<T> (list: T[]): T[] | undefined {
  return list.length > 0 ? list : undefined
}

/** An own enumerable property computed on its first read. */
function lazy (target: object, key: string, compute: () => unknown): void {
  Object.defineProperty(target, key, {
    enumerable: true,
    configurable: true,
    get () {
      const value = compute()
      Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true })
      return value
    }
  })
}

/**
 * The value `toFault` adopted to make `fault`, when `original` is one: then
 * the fault's own stack holds no frames (adoption captures none) and the
 * original's is the one worth logging. A fault built by hand with a cause
 * (a wrapped error) is not adopted: its own stack and cause chain are kept.
 */
function adoptedFrom (fault: Fault, original: unknown): object | undefined {
  return original !== fault && typeof original === 'object' && original !== null && fault.cause === original ? original : undefined
}

// A null prototype makes pino's `err` serializer take `type` from `name`
// instead of from `constructor.name` ("Object").
export function serializeFault (fault: Fault, lazily = false, original?: unknown): SerializedFault {
  const out: SerializedFault = Object.create(null)
  out.name = fault.name
  out.message = fault.message
  out.code = fault.code
  out.status = fault.status
  const source = adoptedFrom(fault, original)
  if (source !== undefined) {
    describeAdopted(out, source, lazily)
  } else if (lazily) {
    // Formatting stacks is most of the cost of a 5xx log line: leave it
    // to the first read (pino's err serializer, JSON.stringify), which a
    // no-op logger never makes.
    lazy(out, 'stack', () => typeof fault.stack === 'string' ? fault.stack : undefined)
    if (fault.cause !== undefined) lazy(out, 'cause', () => nonEmpty(causeChain(fault.cause)))
  } else {
    if (typeof fault.stack === 'string') out.stack = fault.stack
    const chain = causeChain(fault.cause)
    if (chain.length > 0) out.cause = chain
  }
  return out
}

/**
 * An adopted fault logs as its original error, as pino would log that error:
 * its name, code, the stack where it was thrown, its own fields and its own
 * causes. The message appears once, not once per layer. `causeChain` reads
 * it all safely (bounded, cycle-safe, never throwing); its first entry is
 * the original itself.
 */
function describeAdopted (out: SerializedFault, source: object, lazily: boolean): void {
  if (lazily) {
    describeAdoptedLazily(out, source)
    return
  }
  const chain = causeChain(source)
  const self = chain[0]
  if (self === undefined) return
  out.name = self.name
  if (self.code !== undefined) out.code = self.code
  if (self.stack !== undefined) out.stack = self.stack
  if (chain.length > 1) out.cause = chain.slice(1)
  if (self.fields !== undefined) out.fields = self.fields
}

/** `describeAdopted` with every member computed on its first read. */
function describeAdoptedLazily (out: SerializedFault, source: object): void {
  let described: DebugCause[] | undefined
  const chain = (): DebugCause[] => (described ??= causeChain(source))
  const self = (): DebugCause | undefined => chain()[0]
  const { name, code } = out
  lazy(out, 'name', () => self()?.name ?? name)
  lazy(out, 'code', () => self()?.code ?? code)
  lazy(out, 'stack', () => self()?.stack)
  if (hasCause(source)) lazy(out, 'cause', () => nonEmpty(chain().slice(1)))
  lazy(out, 'fields', () => self()?.fields)
}

function hasCause (value: object): boolean {
  try {
    return (value as { cause?: unknown }).cause !== undefined
  } catch {
    return false
  }
}

export type Report = <R extends ReportRequest>(fault: Fault, context: FaultContext<R>, original?: unknown) => boolean

/**
 * The key of the slot where a request remembers what it reported, for
 * dedupe. A plugin that declares it on its requests (`decorateRequest`, so
 * every request has the same shape) spares each request a WeakMap entry;
 * requests without it are remembered in a WeakMap.
 */
export const kReported: unique symbol = Symbol('fastify-faultline.reported')

type Remembered = { [kReported]?: unknown[] | null }

/**
 * The one report path: log the fault once, then hand it to every reporter.
 * Returns false when this request already reported the same fault (or the
 * same original value), so a fault seen by two layers is logged once.
 */
export function createReport (options: ReportOptions): Report {
  const { reporters, logLevel } = options
  const seen = new WeakMap<object, unknown[]>()

  return function report (fault, context, original) {
    const request = context.request
    if (request !== undefined && request !== null && context.dedupe !== false) {
      const slot = kReported in request
      const already = slot ? (request as Remembered)[kReported] : seen.get(request)
      if (already === undefined || already === null) {
        const list = original === undefined || original === fault ? [fault] : [fault, original]
        if (slot) (request as Remembered)[kReported] = list
        else seen.set(request, list)
      } else {
        if (already.includes(fault) || (original !== undefined && already.includes(original))) return false
        already.push(fault)
        if (original !== undefined && original !== fault) already.push(original)
        if (already.length > DEDUPE_WINDOW) already.splice(0, already.length - DEDUPE_WINDOW)
      }
    }
    const log = request?.log ?? options.log
    const level = context.level ?? levelFor(fault, logLevel)
    if (level !== 'silent' && enabled(log, level)) {
      log[level](logRecord(fault, context, level, log.isLevelEnabled === undefined, original), fault.message)
    }
    for (const reporter of reporters) callReporter(reporter, fault, context, log)
    return true
  }
}

/**
 * Whether a line at `level` would go anywhere: pino answers itself
 * (`silent`, a level above the fault's); a logger without
 * `isLevelEnabled` whose method for the level is an empty function
 * (Fastify's `logger: false`, abstract-logging's `noop`) drops every
 * record, so none is built.
 */
function enabled (log: FaultLogger, level: Exclude<LogLevel, 'silent'>): boolean {
  return log.isLevelEnabled === undefined ? !isEmptyFunction(log[level]) : log.isLevelEnabled(level)
}

// An empty function, as Function.prototype.toString prints it: `function noop () { }`,
// `() => {}`, a method `info () {}`.
const EMPTY_FUNCTION = /^(?:function\b[^(]*|[\w$]*\s*)\(\s*\)\s*(?:=>\s*)?\{\s*\}$/
// Per function, not per call: a logger's methods are a handful of shared functions.
const emptyFunctions = new WeakMap<object, boolean>()

function isEmptyFunction (fn: FaultLogger['info']): boolean {
  let empty = emptyFunctions.get(fn)
  if (empty === undefined) {
    empty = EMPTY_FUNCTION.test(Function.prototype.toString.call(fn))
    emptyFunctions.set(fn, empty)
  }
  return empty
}

function logRecord (fault: Fault, context: FaultContext<any>, level: LogLevel, lazily: boolean, original: unknown): Record<string, unknown> {
  // Stacks only where they help: server faults, or a level someone raised.
  // Other lines say it all in `fault` and `msg`.
  const withErr = fault.status >= 500 || level === 'warn' || level === 'error' || level === 'fatal'
  const summary: { code: string, status: number, causeCode?: string, details?: unknown } = faultSummary(fault)
  // Details, previewed (bounded, cycle-safe): on a line with a stack, always
  // (the log may hold what the client may not); on other lines, when the
  // client sees them too (a 409's `sku`).
  if (fault.details !== undefined && (withErr || fault.exposeDetails)) summary.details = preview(fault.details)
  const record: Record<string, unknown> = {
    fault: summary,
    transport: context.transport,
    phase: context.phase,
    handled: true
  }
  if (withErr) record.err = serializeFault(fault, lazily, original)
  for (const key of Object.keys(context)) {
    if (!CONTEXT_KEYS.has(key)) record[key] = context[key]
  }
  return record
}

/**
 * `{ code, status }`, plus `causeCode` when the fault adopted an error with a
 * code of its own (a plugin's `FST_JWT_…`, a `ECONNREFUSED`): the one place a
 * 4xx line keeps it, since the client never sees it.
 */
function faultSummary (fault: Fault): { code: string, status: number, causeCode?: string } {
  const summary: { code: string, status: number, causeCode?: string } = { code: fault.code, status: fault.status }
  const cause = fault.cause
  if (typeof cause === 'object' && cause !== null) {
    try {
      const code = (cause as { code?: unknown }).code
      if (typeof code === 'string' && code !== fault.code) summary.causeCode = code.length > 100 ? code.slice(0, 100) + '…' : code
    } catch {
      // A cause whose getter throws has no code worth logging.
    }
  }
  return summary
}

function callReporter (reporter: FaultReporter, fault: Fault, context: FaultContext<any>, log: FaultLogger): void {
  try {
    const result = reporter(fault, context)
    if (isThenable(result)) result.then(undefined, (err: unknown) => reporterFailed(err, fault, log))
  } catch (err) {
    reporterFailed(err, fault, log)
  }
}

function reporterFailed (err: unknown, fault: Fault, log: FaultLogger): void {
  log.warn({ fault: { code: fault.code, status: fault.status }, reporterError: describeError(err) }, 'faultline: an onFault reporter failed; ignored')
}

function describeError (err: unknown): { type: string, message: string, stack?: string } {
  try {
    if (typeof err === 'object' && err !== null) {
      const e = err as Record<string, unknown>
      const out: { type: string, message: string, stack?: string } = {
        type: typeof e.name === 'string' ? e.name : 'Object',
        message: typeof e.message === 'string' ? e.message : ''
      }
      if (typeof e.stack === 'string') out.stack = e.stack
      return out
    }
    return { type: typeof err, message: String(err) }
  } catch {
    return { type: 'unknown', message: 'an unreadable value' }
  }
}
