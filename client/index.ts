// `fastify-faultline/client`: every wire signal the plugins emit, back into
// the same fault classes. Runs unbundled in browsers and in Node >= 20: no
// Node built-in, no Fastify. The taxonomy is re-exported from the very
// module the server's entry point re-exports (lib/core-exports.ts), so the
// classes are the root export's own.
export * from '../lib/core-exports.js'
export { faultFromResponse } from './response.js'
export { shouldRetry, retryDelay } from './retry.js'
export type { RetryPolicy, RetryOption } from './retry.js'
export { readBody } from './read-body.js'
export { readNdjson } from './read-ndjson.js'
export { readEvents } from './read-events.js'
export type { SseMessage, ReadEventsOptions } from './read-events.js'
export type { ReadSource, ReadOptions } from './source.js'
export { connectSocket } from './socket.js'
export type { SocketOptions, FaultlineSocket, WebSocketLike, WebSocketConstructor } from './socket.js'
