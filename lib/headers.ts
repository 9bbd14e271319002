// What Node's http module would refuse in a response header, checked before
// a problem goes out: one bad value (CR/LF or a character above U+00FF, set
// by a route from user input) makes writeHead throw, and the problem that
// was to explain the failure would be lost with it.

// Node's own rules (lib/_http_common.js): a token for the name; tab and visible
// Latin-1 for the value.
const TOKEN = /^[\^_`a-zA-Z\-0-9!#$%&'*+.|~]+$/
const INVALID_VALUE_CHAR = /[^\t\x20-\x7e\x80-\xff]/

function validValue (value: unknown): boolean {
  if (typeof value === 'string') return !INVALID_VALUE_CHAR.test(value)
  if (typeof value === 'number') return true
  if (Array.isArray(value)) return value.every(v => typeof v === 'number' || (typeof v === 'string' && !INVALID_VALUE_CHAR.test(v)))
  return value === undefined
}

/** The names of the headers Node would refuse to write; empty (and no allocation) when all are valid. */
export function invalidHeaderNames (headers: Readonly<Record<string, unknown>>): string[] {
  let bad: string[] | undefined
  for (const name in headers) {
    if (TOKEN.test(name) && validValue(headers[name])) continue
    (bad ??= []).push(name)
  }
  return bad ?? NONE
}

const NONE: string[] = []
