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
    // Only the standard members ever reach it (a problem with others takes
    // JSON.stringify): `true` made it walk every object's entries again
    // looking for more, on every problem rendered.
    additionalProperties: false
  })
}

function stringifyKnown (problem: Partial<ProblemDetails>): string {
  if (compiled === undefined) prepareProblemSerializer()
  return compiled!(problem)
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
    // The standard members alone, each one the serializer cannot write
    // without calling into it (an object, whose toString may throw; NaN,
    // Infinity or a word for an integer) left out.
    const { type, title, status, detail, instance, code, requestId, retryAfter } = problem
    json = stringifyKnown({
      type: writableString(type),
      title: writableString(title),
      status: writableInteger(status),
      detail: writableString(detail),
      instance: writableString(instance),
      code: writableString(code),
      requestId: writableString(requestId),
      retryAfter: writableInteger(retryAfter)
    })
  }
  return escapeLineSeparators(json)
}

/** `value` as a string member, when it is a primitive the serializer writes as text, else undefined. */
function writableString (value: unknown): string | undefined {
  const kind = typeof value
  return kind === 'string' || kind === 'number' || kind === 'boolean' || kind === 'bigint' ? String(value) : undefined
}

/** `value` when the compiled serializer can write it as an integer (it truncates numbers, reads strings and BigInts), else undefined. */
function writableInteger (value: unknown): number | undefined {
  const kind = typeof value
  return (kind === 'number' || kind === 'string' || kind === 'bigint') && Number.isFinite(Math.trunc(Number(value))) ? value as number : undefined
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
