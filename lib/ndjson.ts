import { FaultlineStreamChunkError } from './errors.js'
import { describe } from './fault.js'
import { errorRecord } from './problem.js'
import { escapeLineSeparators } from './json-line.js'

// Newline-delimited JSON records for reply.streamSafe(..., { framing: 'ndjson' }).
// Each record is exactly one line (lib/json-line.ts), data records as error records.

/** The record that ends a stream that succeeded. */
export const NDJSON_END = '{"type":"end"}\n'

/** Longest record id: it travels back in a `Last-Event-ID` request header. */
export const MAX_ID_LENGTH = 1024
// Visible ASCII, inner spaces allowed: what survives a header round trip unchanged.
const ID = /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/

/** The id `id(item, index)` gives, checked. Throws FaultlineStreamChunkError when it throws or is not a usable id. */
export function recordId (id: (item: unknown, index: number) => unknown, item: unknown, index: number): string {
  let value: unknown
  try {
    value = id(item, index)
  } catch (err) {
    throw new FaultlineStreamChunkError(`the id function threw for ndjson item ${index} (${messageOf(err)})`, { cause: err })
  }
  if (typeof value !== 'string' || value.length > MAX_ID_LENGTH || !ID.test(value)) {
    throw new FaultlineStreamChunkError(`the id of ndjson item ${index} must be a string of 1 to ${MAX_ID_LENGTH} visible ASCII characters (it comes back in a Last-Event-ID header), got ${describe(value)}`)
  }
  return value
}

/**
 * One item as a `data` record, with `"id"` when `id` is given. Throws
 * FaultlineStreamChunkError when the item cannot be serialized or its id is unusable.
 */
export function ndjsonData (item: unknown, index: number, id?: (item: unknown, index: number) => unknown): string {
  const head = id === undefined ? '{"type":"data","data":' : '{"type":"data","id":' + JSON.stringify(recordId(id, item, index)) + ',"data":'
  let json: string | undefined
  try {
    json = JSON.stringify(item)
  } catch (err) {
    throw new FaultlineStreamChunkError(`ndjson item ${index} cannot be serialized as JSON (${messageOf(err)})`, { cause: err })
  }
  // Like JSON arrays: undefined, functions and symbols become null.
  return head + (json === undefined ? 'null' : escapeLineSeparators(json)) + '}\n'
}

/** The record that ends a stream that failed; `problemJson` is one line of problem details JSON. */
export function ndjsonError (problemJson: string): string {
  return errorRecord(problemJson) + '\n'
}

function messageOf (err: unknown): string {
  return err instanceof Error ? err.message : 'not serializable'
}
