// A WebSocket that speaks faultline: error frames go to `onFault` (the
// socket stays open), a close is turned back into its fault, a retryable one
// reconnects as the retry policy says, and `closed` says how it ended.
import { ConnectionLostError, type Fault } from '../lib/fault.js'
import { faultFromClose } from '../lib/close-codes.js'
import { faultFromProblem } from '../lib/problem.js'
import { FaultlineInvalidOptionError } from '../lib/errors.js'
import { malformed } from './response.js'
import { resolveRetry, retryDelay, shouldRetry, wait, type RetryOption } from './retry.js'

/** What `connectSocket` needs of a WebSocket: the browser's, or the `ws` package's in Node. */
export interface WebSocketLike {
  readonly readyState: number
  send: (data: any) => void
  close: (code?: number, reason?: string) => void
  addEventListener: (type: any, listener: (event: any) => void) => void
}

export type WebSocketConstructor = new (url: string | URL, protocols?: string | string[]) => WebSocketLike

export interface SocketOptions {
  /** The WebSocket implementation. Default: the global one (browsers, Node >= 22); in Node 20 pass `ws`'s. */
  WebSocket?: WebSocketConstructor
  /** Subprotocols, as for `new WebSocket(url, protocols)`. */
  protocols?: string | string[]
  /** The retry policy for reconnects; `false` turns them off. */
  retry?: RetryOption
  /** Closes the socket (1000) and stops reconnecting when it aborts. */
  signal?: AbortSignal
  /** Each time a connection opens (again, after a reconnect), with that WebSocket. */
  onOpen?: (socket: WebSocketLike) => void
  /** Each message that is not a faultline error frame, with the event's `data` as received. */
  onMessage?: (data: unknown, event: MessageEvent) => void
  /** Each error frame's fault (the socket stays open), and the fault of each close that is retried. */
  onFault?: (fault: Fault) => void
}

export interface FaultlineSocket {
  /** Sends now when open; while (re)connecting, queues the message for the next open. Throws once the socket closed for good. */
  send: (data: any) => void
  /** Closes the socket and stops reconnecting; `closed` resolves with `undefined`. */
  close: (code?: number, reason?: string) => void
  /** Resolves (never rejects): `undefined` after a normal or user close, else the final fault (not retryable, or retries ran out). */
  readonly closed: Promise<Fault | undefined>
}

const WHERE = 'connectSocket'
const CONNECTING = 0
const OPEN = 1
// Every error frame faultline sends starts so: no JSON.parse for other messages.
const ERROR_FRAME = '{"type":"error"'

function frameFault (data: string): Fault {
  try {
    return faultFromProblem((JSON.parse(data) as { error?: unknown }).error)
  } catch (err) {
    return malformed('A WebSocket error frame is not JSON', err)
  }
}

/**
 * Opens a WebSocket to `url` and keeps it open across retryable closes
 * (1001 server shutdown, 1006 connection lost, 1013 try again later, …).
 */
export function connectSocket (url: string | URL, options: SocketOptions = {}): FaultlineSocket {
  if (options === null || typeof options !== 'object') throw new FaultlineInvalidOptionError(WHERE, 'options', 'must be an object')
  const Found = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket
  if (typeof Found !== 'function') {
    throw new FaultlineInvalidOptionError(WHERE, 'WebSocket', 'there is no global WebSocket here (Node 20): pass one, e.g. `import { WebSocket } from \'ws\'`')
  }
  const Impl: WebSocketConstructor = Found
  const { protocols, retry, signal, onOpen, onMessage, onFault } = options
  resolveRetry(retry)
  for (const [name, fn] of [['onOpen', onOpen], ['onMessage', onMessage], ['onFault', onFault]] as const) {
    if (fn !== undefined && typeof fn !== 'function') throw new FaultlineInvalidOptionError(WHERE, name, 'must be a function')
  }

  let socket: WebSocketLike | undefined
  let attempt = 0
  let stopped = false
  let frameFaultSeen: Fault | undefined
  const pending: unknown[] = []
  const waiting = new AbortController()
  let settle!: (fault: Fault | undefined) => void
  const closed = new Promise<Fault | undefined>(resolve => { settle = resolve })

  function finish (fault: Fault | undefined): void {
    stopped = true
    socket = undefined
    pending.length = 0
    signal?.removeEventListener('abort', onAbort)
    settle(fault)
  }

  function connect (): void {
    frameFaultSeen = undefined
    const ws = new Impl(url, protocols)
    socket = ws
    ws.addEventListener('open', () => {
      if (ws !== socket) return
      attempt = 0
      for (const data of pending.splice(0)) ws.send(data)
      onOpen?.(ws)
    })
    ws.addEventListener('message', (event: MessageEvent) => {
      const data: unknown = event.data
      if (typeof data === 'string' && data.startsWith(ERROR_FRAME)) {
        frameFaultSeen = frameFault(data)
        onFault?.(frameFaultSeen)
        return
      }
      onMessage?.(data, event)
    })
    // The close event that follows an error says what happened.
    ws.addEventListener('error', () => {})
    ws.addEventListener('close', (event: { code: number, reason: string }) => { closedWith(ws, event.code, event.reason) })
  }

  function closedWith (ws: WebSocketLike, code: number, reason: string): void {
    if (ws !== socket) return
    socket = undefined
    if (stopped) {
      finish(undefined)
      return
    }
    const fromClose = faultFromClose(code, reason)
    if (fromClose === undefined) {
      finish(undefined)
      return
    }
    // The error frame before the close says more (its message, its details).
    const fault = frameFaultSeen?.code === fromClose.code ? frameFaultSeen : fromClose
    if (!shouldRetry(fault, attempt, retry)) {
      finish(fault)
      return
    }
    if (fault !== frameFaultSeen) onFault?.(fault)
    wait(retryDelay(fault, attempt, retry), waiting.signal).then(() => {
      attempt++
      connect()
    }, () => { finish(undefined) })
  }

  function onAbort (): void {
    close()
  }

  function close (code = 1000, reason?: string): void {
    if (stopped) return
    stopped = true
    waiting.abort()
    const ws = socket
    if (ws !== undefined && (ws.readyState === CONNECTING || ws.readyState === OPEN)) ws.close(code, reason)
    else finish(undefined)
  }

  function send (data: unknown): void {
    if (stopped) throw new ConnectionLostError('The socket is closed')
    if (socket !== undefined && socket.readyState === OPEN) socket.send(data)
    else pending.push(data)
  }

  if (signal?.aborted === true) {
    finish(undefined)
  } else {
    signal?.addEventListener('abort', onAbort, { once: true })
    connect()
  }
  return { send, close, closed }
}
