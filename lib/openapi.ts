import { InternalError, describe, isFault, isFaultStatus, type FaultClass } from './fault.js'
import { FaultlineInvalidOptionError } from './errors.js'

// OpenAPI problem responses for a route's `faults` option. Pure: the http
// plugin's onRoute hook hands in the route's options and gets back the
// responses to add; nothing here knows Fastify.

/** `$id` of the shared problem schema faultline adds with `fastify.addSchema`. */
export const PROBLEM_SCHEMA_ID = 'faultline-problem'
/** The media type of every problem response. */
export const PROBLEM_MEDIA_TYPE = 'application/problem+json'

type JsonSchema = Record<string, unknown>

/** A route's `faults` option: the fault classes it may answer with, or `false` for no problem responses at all. */
export type RouteFaults = ReadonlyArray<FaultClass<any>> | false

/** Members of the problem body a fault's details cannot overwrite (see lib/problem.ts). */
const RESERVED_MEMBERS = new Set(['type', 'title', 'status', 'detail', 'instance', 'code', 'requestId', 'stack', 'cause'])

/**
 * The shared problem schema (RFC 9457 plus faultline's members). Extension
 * members are allowed: a fault's details travel as top-level members.
 */
export function problemSchema (): JsonSchema {
  return {
    $id: PROBLEM_SCHEMA_ID,
    title: 'Problem details (RFC 9457)',
    type: 'object',
    properties: {
      type: { type: 'string', description: 'URI reference identifying the problem type; `about:blank` without `typeBase`.' },
      title: { type: 'string', description: 'Short summary of the problem type.' },
      status: { type: 'integer', minimum: 400, maximum: 599, description: 'The HTTP status code.' },
      detail: { type: 'string', description: 'Explanation of this occurrence; the title when the fault is not exposed.' },
      instance: { type: 'string', description: 'The request path, without the query string.' },
      code: { type: 'string', description: 'Stable machine-readable fault code, e.g. `NOT_FOUND`.' },
      requestId: { type: 'string', description: 'The request id, to find the log line.' }
    },
    required: ['type', 'title', 'status', 'detail', 'code'],
    additionalProperties: true
  }
}

/** Whether `value` is a fault class (a constructor whose instances are faults, with a valid static status). */
export function isFaultClass (value: unknown): value is FaultClass<any> {
  try {
    return typeof value === 'function' && isFault(value.prototype) &&
      typeof (value as unknown as FaultClass).code === 'string' && isFaultStatus((value as unknown as FaultClass).status)
  } catch {
    return false
  }
}

export interface FaultResponsesInput {
  /** The route's `faults` option, unchecked. */
  faults: unknown
  /** The route's existing `schema.response`, if any. */
  existing: unknown
  /** `GET /users/:id`, for error messages. */
  route: string
  /** Plugin name, for error messages. */
  plugin: string
}

export interface FaultResponses {
  /** Responses to add to `schema.response`, keyed by status. */
  responses: Record<string, JsonSchema>
  /** The classes the route declared (without the implicit `InternalError`). */
  declared: Array<FaultClass<any>>
}

/**
 * The problem responses for one route: one per status among its `faults`,
 * each referencing the shared schema and narrowing `code` to the declared
 * codes, plus a 500 `INTERNAL` response (any route can fail unexpectedly)
 * unless the route says `faults: false` or describes 500 itself.
 *
 * A route with neither `faults` nor a response schema is left alone: any
 * response schema would make @fastify/swagger drop the "Default Response"
 * it shows for such routes, leaving a document with errors and no success.
 *
 * A status the route already describes is a register-time error: faultline
 * will not guess how to merge two descriptions of one response.
 */
export function faultResponses (input: FaultResponsesInput): FaultResponses {
  const { faults, existing, route, plugin } = input
  const present = existingStatuses(existing)
  if (faults === false || (faults === undefined && present.size === 0)) return { responses: {}, declared: [] }
  const declared = checkFaults(faults, route, plugin)
  const byStatus = new Map<number, Array<FaultClass<any>>>()
  for (const cls of declared) {
    if (present.has(String(cls.status))) {
      throw new FaultlineInvalidOptionError(plugin, `faults of route ${route}`,
        `the route's schema.response already describes status ${cls.status}, which ${cls.name} would add. ` +
        `Remove ${cls.name} from faults, or describe the ${PROBLEM_MEDIA_TYPE} response yourself with { $ref: '${PROBLEM_SCHEMA_ID}#' }`)
    }
    const list = byStatus.get(cls.status) ?? []
    if (!list.some(c => c.code === cls.code)) list.push(cls)
    byStatus.set(cls.status, list)
  }
  // The implicit 500 steps aside when the route describes server errors itself.
  if (!present.has('500') && !present.has('5xx') && !present.has('default')) {
    const list = byStatus.get(500) ?? []
    if (!list.some(c => c.code === InternalError.code)) list.push(InternalError)
    byStatus.set(500, list)
  }
  const responses: Record<string, JsonSchema> = {}
  for (const status of [...byStatus.keys()].sort((a, b) => a - b)) {
    responses[String(status)] = statusResponse(status, byStatus.get(status)!, route, plugin)
  }
  return { responses, declared }
}

function checkFaults (faults: unknown, route: string, plugin: string): Array<FaultClass<any>> {
  if (faults === undefined) return []
  if (!Array.isArray(faults)) {
    throw new FaultlineInvalidOptionError(plugin, `faults of route ${route}`, `must be an array of fault classes (e.g. [NotFoundError]) or false, got ${describe(faults)}`)
  }
  faults.forEach((entry: unknown, i) => {
    if (!isFaultClass(entry)) {
      throw new FaultlineInvalidOptionError(plugin, `faults[${i}] of route ${route}`,
        `must be a fault class (a built-in such as NotFoundError, or one made by defineFault), got ${describe(entry)}` +
        (isFault(entry) ? ' (a fault instance: list its class instead)' : ''))
    }
  })
  return faults as Array<FaultClass<any>>
}

function existingStatuses (existing: unknown): Set<string> {
  if (existing === null || typeof existing !== 'object') return new Set()
  return new Set(Object.keys(existing))
}

function statusResponse (status: number, classes: Array<FaultClass<any>>, route: string, plugin: string): JsonSchema {
  const codes = classes.map(c => c.code)
  const narrow: JsonSchema = {
    type: 'object',
    properties: {
      status: { type: 'integer', enum: [status] },
      code: { type: 'string', enum: codes }
    }
  }
  const parts: JsonSchema[] = [{ $ref: `${PROBLEM_SCHEMA_ID}#` }, narrow]
  if (classes.some(c => c.detailsSchema !== undefined)) {
    parts.push({ anyOf: classes.map(c => variant(c, route, plugin)) })
  }
  return {
    description: [...new Set(classes.map(c => c.title))].join(' / '),
    content: { [PROBLEM_MEDIA_TYPE]: { schema: { allOf: parts } } }
  }
}

/** One fault's shape: its code, plus the members its `detailsSchema` describes. */
function variant (cls: FaultClass<any>, route: string, plugin: string): JsonSchema {
  const properties: Record<string, unknown> = { code: { type: 'string', enum: [cls.code] } }
  const out: JsonSchema = { type: 'object', properties }
  const details = cls.detailsSchema
  if (details === undefined) return out
  const members = details.properties
  if (members !== null && typeof members === 'object') {
    for (const [name, schema] of Object.entries(members)) {
      if (RESERVED_MEMBERS.has(name)) {
        throw new FaultlineInvalidOptionError(plugin, `faults of route ${route}`,
          `the detailsSchema of ${cls.name} describes the member '${name}', which a fault's details cannot set (problem members win)`)
      }
      properties[name] = schema
    }
  }
  // Details are sent only when exposed (4xx by default): only then are they certain to be there.
  const exposed = cls.expose ?? cls.status < 500
  if (exposed && Array.isArray(details.required) && details.required.length > 0) out.required = [...details.required]
  if (typeof details.description === 'string') out.description = details.description
  return out
}
