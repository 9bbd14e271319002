// Problem -> one line of JSON, on the server's hot path. Not in the isomorphic
// core: fast-json-stringify compiles with `new Function` and reads `process`.
import { createRequire } from 'node:module'
import type FastJson from 'fast-json-stringify'
import type { Fault } from './fault.js'
import { detailsJson, omitted, problemHead, showsDetails, toProblem, TOO_LARGE, type ProblemDetails, type ProblemOptions } from './problem.js'
import { escapeLineSeparators } from './json-line.js'

type Serializer = (problem: Partial<ProblemDetails>) => string

// Loaded and compiled when faultlineHttp is registered (or on first use),
// not at import: fast-json-stringify brings ajv, some sixty modules.
let compiled: Serializer | undefined

/** Loads and compiles the serializer of the standard members, once. */
export function prepareProblemSerializer (): void {
  if (compiled !== undefined) return
  const fastJson = createRequire(import.meta.url)('fast-json-stringify') as typeof FastJson
  compiled = fastJson({
    type: 'object',
    properties: {
      type: { type: 'string' },
      title: { type: 'string' },
      status: { type: 'integer' },
      detail: { type: 'string' },
      instance: { type: 'string' },
      code: { type: 'string' },
      requestId: { type: 'string' },
      retryAfter: { type: 'integer' }
    },
    additionalProperties: true
  })
}

function stringifyKnown (problem: Partial<ProblemDetails>): string {
  return standardJson(problem) ?? compiledJson(problem)
}

function compiledJson (problem: Partial<ProblemDetails>): string {
  if (compiled === undefined) prepareProblemSerializer()
  return compiled!(problem)
}

/**
 * The standard members as JSON, written directly when each has its schema
 * type (as `problemHead` makes them): the compiled serializer's text, in its
 * member order, without its type dispatch per member nor its pass over the
 * object's entries for additional ones (issue 16: rendering was about 5% of
 * a thrown 404's server CPU). Undefined otherwise (a number for a request
 * id, from a custom `genReqId`): the compiled serializer coerces those.
 */
function standardJson (problem: Partial<ProblemDetails>): string | undefined {
  const { type, title, status, detail, instance, code, requestId, retryAfter } = problem
  if (typeof type !== 'string' || typeof title !== 'string' || !Number.isInteger(status) || typeof detail !== 'string' ||
    typeof code !== 'string' || !optionalString(instance) || !optionalString(requestId) ||
    (retryAfter !== undefined && !Number.isInteger(retryAfter))) return undefined
  let json = '{"type":' + jsonString(type) + ',"title":' + jsonString(title) + ',"status":' + String(status) + ',"detail":' + jsonString(detail)
  if (instance !== undefined) json += ',"instance":' + jsonString(instance)
  json += ',"code":' + jsonString(code)
  if (requestId !== undefined) json += ',"requestId":' + jsonString(requestId)
  if (retryAfter !== undefined) json += ',"retryAfter":' + String(retryAfter)
  return json + '}'
}

function optionalString (value: unknown): boolean {
  return value === undefined || typeof value === 'string'
}

// Up to this length a string is scanned by hand; past it, JSON.stringify escapes faster than a loop.
const SCANNED = 64

/** `text` as a JSON string, as JSON.stringify writes it: short ones that need no escape without the call. */
function jsonString (text: string): string {
  if (text.length > SCANNED) return JSON.stringify(text)
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    // Control characters, the quote, the backslash, and surrogates (a lone one is escaped).
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return JSON.stringify(text)
  }
  return '"' + text + '"'
}

// The members every problem has: rendered by the precompiled serializer.
const KNOWN = new Set(['type', 'title', 'status', 'detail', 'instance', 'code', 'requestId', 'retryAfter'])

/**
 * Problem -> one line of JSON. Never throws, and always valid JSON: a problem
 * with only the standard members takes the precompiled serializer; one with
 * extension members (details, debug output) takes JSON.stringify, which
 * applies `toJSON` as JSON does (fast-json-stringify's additionalProperties
 * path prints a `toJSON()` that returns undefined as a bare `undefined`).
 * Extension members that cannot be serialized (a BigInt, a cycle, a throwing
 * `toJSON`) are dropped whole, the standard members stay.
 */
export function stringifyProblem (problem: ProblemDetails): string {
  let json: string
  try {
    json = hasExtensions(problem) ? JSON.stringify(problem) : stringifyKnown(problem)
  } catch {
    const { type, title, status, detail, instance, code, requestId, retryAfter } = problem
    json = stringifyKnown({ type, title, status, detail, instance, code, requestId, retryAfter })
  }
  return escapeLineSeparators(json)
}

/**
 * Fault -> problem -> one line of JSON: the one renderer of every transport
 * (problem+json bodies, ndjson and WebSocket error records, SSE error
 * events). The same text as `stringifyProblem(toProblem(fault, options))`,
 * in time linear in the details: they are serialized once, as they are,
 * after the standard members, and never copied member by member into the
 * problem object (which turns slow, dictionary-mode, past about a thousand
 * members).
 */
export function renderProblem (fault: Fault, options: ProblemOptions = {}): string {
  if (options.debug === true) return stringifyProblem(toProblem(fault, options))
  const head = problemHead(fault, options)
  if (!showsDetails(fault, options)) return escapeLineSeparators(stringifyKnown(head))
  const details = detailsJson(fault.details, options.maxDetailsBytes)
  if (details === TOO_LARGE) {
    head.detailsOmitted = omitted(fault, options)
    return stringifyProblem(head)
  }
  const json = escapeLineSeparators(stringifyKnown(head))
  // `{…standard}` + `{…details}` -> `{…standard,…details}`, each part
  // escaped on its own: escaping the joined text would copy it once more.
  return details === undefined ? json : json.slice(0, -1) + ',' + escapeLineSeparators(details).slice(1)
}

function hasExtensions (problem: ProblemDetails): boolean {
  for (const key in problem) {
    if (!KNOWN.has(key)) return true
  }
  return false
}
