// What Node's http module would refuse in a response header, checked before
// a problem goes out: one bad value (CR/LF or a character above U+00FF, set
// by a route from user input) makes writeHead throw, and the problem that
// was to explain the failure would be lost with it.

import { REPLY_HEADERS, replySymbol } from './fastify-private.js'

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

/** The part of a Fastify reply `headersToWrite` reads. */
export interface HeaderSource {
  getHeaders: () => Record<string, unknown>
}

/**
 * The headers a problem response would write that Node has not checked yet:
 * those set with `reply.header()`, which Fastify hands to `writeHead`
 * (a header set on the raw response was checked by Node's `setHeader`).
 * Read where Fastify keeps them (a private reply symbol, found by
 * lib/fastify-private.ts), without a copy: `reply.getHeaders()` builds
 * two objects per call, about 1 µs on every error. Falls back to
 * `reply.getHeaders()` when a Fastify keeps them elsewhere. Never throws.
 */
export function headersToWrite (reply: HeaderSource): Readonly<Record<string, unknown>> {
  const key = replySymbol(reply, REPLY_HEADERS)
  const headers = key === undefined ? undefined : (reply as unknown as Record<symbol, unknown>)[key]
  return typeof headers === 'object' && headers !== null ? headers as Record<string, unknown> : reply.getHeaders()
}
