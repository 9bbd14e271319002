import { request as undiciRequest } from 'undici'
import type { FastifyInstance } from 'fastify'
import { createParser, type EventSourceMessage } from 'eventsource-parser'

/** Listens on a loopback port and returns the base URL. */
export async function listen (app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no address')
  return `http://127.0.0.1:${address.port}`
}

export interface RawResponse {
  status: number
  headers: Record<string, string | string[] | undefined>
  /** The whole body as text, read until the server ended it. */
  body: string
}

/** A raw GET over undici, read to the end: the exact bytes the server wrote. */
export async function rawGet (url: string, headers: Record<string, string> = {}): Promise<RawResponse> {
  const res = await undiciRequest(url, { headers: { accept: 'text/event-stream', ...headers } })
  const body = await res.body.text()
  return { status: res.statusCode, headers: res.headers, body }
}

/** SSE text -> events, with a spec-compliant parser (the one `eventsource` uses). */
export function parseEvents (text: string): { events: EventSourceMessage[], retry: number[], comments: string[] } {
  const events: EventSourceMessage[] = []
  const retry: number[] = []
  const comments: string[] = []
  const parser = createParser({
    onEvent: e => events.push(e),
    onRetry: r => retry.push(r),
    onComment: c => comments.push(c)
  })
  parser.feed(text)
  return { events, retry, comments }
}

/** Resolves when `check()` is true, polling; rejects after `ms` (a bound, not a timed assert). */
export async function until (check: () => boolean, ms = 10_000, what = 'condition'): Promise<void> {
  const start = Date.now()
  while (!check()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}

/** Resolves with the first event of `type` the target emits; rejects after `ms`. */
export async function nextEvent<T = Event> (target: EventTarget, type: string, ms = 10_000): Promise<T> {
  return await new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => { target.removeEventListener(type, on); reject(new Error(`timed out waiting for ${type}`)) }, ms)
    const on = (event: Event): void => {
      clearTimeout(timer)
      target.removeEventListener(type, on)
      resolve(event as T)
    }
    target.addEventListener(type, on)
  })
}
