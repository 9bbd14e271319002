// One line of JSON, whatever the value holds. JSON.stringify never emits a
// raw CR or LF, but valid JSON may hold raw U+2028/U+2029: escaped, a record
// stays one line for every line splitter (some treat them as breaks) and is
// safe to embed in a script.

const LINE_SEPARATORS_G = /[\u2028\u2029]/g

function escapeSeparator (c: string): string {
  return c === '\u2028' ? '\\u2028' : '\\u2029'
}

/**
 * `json` with U+2028 and U+2029 escaped (a no-op, and no copy, for the
 * common text without them; `includes` answers at once for a one-byte string).
 */
export function escapeLineSeparators (json: string): string {
  return json.includes('\u2028') || json.includes('\u2029') ? json.replace(LINE_SEPARATORS_G, escapeSeparator) : json
}
