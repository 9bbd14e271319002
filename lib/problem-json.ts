// Problem -> one line of JSON, on the server's hot path. Not in the isomorphic
// core: fast-json-stringify compiles with `new Function` and reads `process`.
import fastJson from 'fast-json-stringify'
import type { ProblemDetails } from './problem.js'

const stringifyKnown = fastJson({
  type: 'object',
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
    instance: { type: 'string' },
    code: { type: 'string' },
    requestId: { type: 'string' }
  },
  additionalProperties: true
})

/**
 * Problem -> one line of JSON. Never throws: extension members that cannot
 * be serialized (a BigInt, a cycle) are dropped, the standard members stay.
 */
export function stringifyProblem (problem: ProblemDetails): string {
  let json: string
  try {
    json = stringifyKnown(problem)
  } catch {
    const { type, title, status, detail, instance, code, requestId } = problem
    json = stringifyKnown({ type, title, status, detail, instance, code, requestId })
  }
  // Valid JSON may hold raw U+2028/U+2029; escaped, a record stays one line
  // for every line splitter and safe to embed in a script.
  return LINE_SEPARATORS.test(json) ? json.replace(LINE_SEPARATORS_G, escapeSeparator) : json
}

const LINE_SEPARATORS = /[\u2028\u2029]/
const LINE_SEPARATORS_G = /[\u2028\u2029]/g
function escapeSeparator (c: string): string {
  return c === '\u2028' ? '\\u2028' : '\\u2029'
}
