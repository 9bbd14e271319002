import type { ServerResponse } from 'node:http'

/** How long a truncated response may wait, without progress, for a client that stopped reading. */
export const TRUNCATE_GRACE_MS = 3000

/**
 * Ends a response whose headers already went out so that the client sees an
 * incomplete body: every byte written so far is flushed, then the connection
 * closes without HTTP/1.1's terminating chunk. Destroying at once would drop
 * bytes still queued in the socket; a client that stopped reading is cut off
 * once the socket idles for `graceMs` (Node may extend it once while a write
 * is still queued).
 */
export function truncateResponse (res: ServerResponse, graceMs = TRUNCATE_GRACE_MS): void {
  const socket = res.socket
  if (socket === null || socket.destroyed) {
    res.destroy()
    return
  }
  socket.setTimeout(graceMs, () => socket.destroy())
  socket.once('finish', () => socket.destroy())
  socket.end()
}
