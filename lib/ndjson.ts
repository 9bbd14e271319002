import { FaultlineStreamChunkError } from './errors.js'
import { errorRecord } from './problem.js'
import { escapeLineSeparators } from './json-line.js'

// Newline-delimited JSON records for reply.streamSafe(..., { framing: 'ndjson' }).
// Each record is exactly one line (lib/json-line.ts), data records as error records.

/** The record that ends a stream that succeeded. */
export const NDJSON_END = '{"type":"end"}\n'

/** One item as a `data` record. Throws FaultlineStreamChunkError when the item cannot be serialized. */
export function ndjsonData (item: unknown, index: number): string {
  let json: string | undefined
  try {
    json = JSON.stringify(item)
  } catch (err) {
    throw new FaultlineStreamChunkError(`ndjson item ${index} cannot be serialized as JSON (${messageOf(err)})`, { cause: err })
  }
  // Like JSON arrays: undefined, functions and symbols become null.
  return '{"type":"data","data":' + (json === undefined ? 'null' : escapeLineSeparators(json)) + '}\n'
}

/** The record that ends a stream that failed; `problemJson` is one line of problem details JSON. */
export function ndjsonError (problemJson: string): string {
  return errorRecord(problemJson) + '\n'
}

function messageOf (err: unknown): string {
  return err instanceof Error ? err.message : 'not serializable'
}
