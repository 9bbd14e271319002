// Problem -> one line of JSON, on the server's hot path. Not in the isomorphic
// core: fast-json-stringify compiles with `new Function` and reads `process`.
import fastJson from 'fast-json-stringify'
import type { ProblemDetails } from './problem.js'
import { escapeLineSeparators } from './json-line.js'

const stringifyKnown = fastJson({
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

function hasExtensions (problem: ProblemDetails): boolean {
  for (const key in problem) {
    if (!KNOWN.has(key)) return true
  }
  return false
}
