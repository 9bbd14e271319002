import type { Fault } from './fault.js'
import type { Phase } from './report.js'
import { BACKPRESSURE_CLOSE_CODE, closeCodeFor, closeReason, SHUTDOWN_CLOSE_CODE, SHUTDOWN_REASON, type CloseCodeMap } from './close-codes.js'
import { errorRecord } from './problem.js'
import { isThenable } from './thenable.js'
import { peerGone, peerIdle, peerNotReading, peerUnresponsive } from './websocket-faults.js'

// The lifecycle of the WebSocket connections of one app, behind a small
// socket interface (the part of a `ws` WebSocket it drives) and a host for
// reports and renderings, so it is unit-tested with fakes (as graphql-ws's
// makeServer is); plugins/websocket.ts is the Fastify adapter.

type Listener = (...args: any[]) => unknown
type EventHandler = (event: { type: string }) => unknown

/** The part of a `ws` WebSocket a session drives. */
export interface WsSocket {
  readonly readyState: number
  /** Bytes queued to the peer and not yet handed to the OS. */
  readonly bufferedAmount: number
  send: (data: string) => void
  close: (code: number, reason: string) => void
  terminate: () => void
  ping: () => void
  on: (event: 'close' | 'pong', listener: Listener) => unknown
  once: (event: 'close', listener: Listener) => unknown
  emit: (event: string | symbol, ...args: any[]) => boolean
  rawListeners: (event: string | symbol) => Function[]
  addEventListener: (type: string, handler: any, options?: any) => void
  removeEventListener: (type: string, handler: any) => void
}

/** What the sessions ask of their host (the plugin): the central report path and the problem renderer. */
export interface WsHost<R> {
  /** Reports `err` (transport `websocket`) for `request`; `dedupe: false` for per-message occurrences. */
  report: (err: unknown, phase: Phase, request: R, dedupe: boolean) => Fault
  /** A fault as one line of problem JSON, for the error frame. */
  problemJson: (fault: Fault, request: R) => string
}

export interface WsSettings {
  /** Send `{"type":"error","error":<problem>}` before closing, or for a kept-open 4xx. */
  errorFrame: boolean
  /**
   * Past this many bytes queued to the peer, no error frame is sent: a kept-open
   * fault cuts the peer off instead (1008, reported once).
   */
  maxBufferedAmount: number
  closeCodes: CloseCodeMap | undefined
  heartbeat: { interval: number, maxMissed: number } | undefined
  idleTimeout: number | undefined
  /** On shutdown, how long peers get to answer the 1001 close before they are terminated (ms). */
  closeTimeout: number
}

const OPEN = 1
const ABNORMAL_CLOSURE = 1006

/** Every open connection of one app: runs handlers, fails sockets, shuts them down. */
export class WebSocketSessions<R> {
  private readonly sessions = new Map<WsSocket, WsSession<R>>()
  private shuttingDown = false
  /** One heartbeat timer for every socket (as `ws`'s keep-alive example): runs only while a socket is open. */
  private heartbeatTimer: ReturnType<typeof setInterval> | undefined = undefined

  constructor (readonly host: WsHost<R>, readonly settings: WsSettings) {}

  /** Open connections right now. */
  get size (): number {
    return this.sessions.size
  }

  /** Whether the shared heartbeat timer is running (for tests). */
  get beating (): boolean {
    return this.heartbeatTimer !== undefined
  }

  /**
   * A new socket: guards its listeners, then runs the route's handler. A
   * throw or rejection of the handler fails the socket (error frame, mapped
   * close). A socket that arrives after shutdown began is closed like the others.
   */
  run (socket: WsSocket, request: R, handler: () => unknown): void {
    const session = new WsSession(this, socket, request)
    this.sessions.set(socket, session)
    // The upgrade finished after shutdown began (its hooks were still
    // running): close it like the others instead of serving it.
    if (this.shuttingDown) {
      session.shutdown() // resolves when closed; never rejects
      return
    }
    const heartbeat = this.settings.heartbeat
    if (heartbeat !== undefined && this.heartbeatTimer === undefined) {
      this.heartbeatTimer = setInterval(this.beat, heartbeat.interval).unref()
    }
    try {
      const result = handler()
      if (isThenable(result)) result.then(undefined, (err: unknown) => session.fail(err, 'mid-stream', false))
    } catch (err) {
      session.fail(err, 'mid-stream', false)
    }
  }

  /** A socket error from the transport. False when no session owns `socket` (the caller handles it). */
  socketError (error: unknown, socket: WsSocket): boolean {
    const session = this.sessions.get(socket)
    if (session === undefined) return false
    session.fail(error, 'mid-stream', false)
    return true
  }

  /** 1001 to every open socket; resolves once all closed (or were terminated after `closeTimeout`). */
  async shutdown (): Promise<void> {
    this.shuttingDown = true
    this.stopHeartbeat()
    await Promise.all([...this.sessions.values()].map(session => session.shutdown()))
  }

  /** @internal */
  closed (socket: WsSocket): void {
    this.sessions.delete(socket)
    if (this.sessions.size === 0) this.stopHeartbeat()
  }

  private stopHeartbeat (): void {
    clearInterval(this.heartbeatTimer)
    this.heartbeatTimer = undefined
  }

  /** Each tick: every socket that answered the last ping is pinged again; one that missed too many is terminated. */
  private readonly beat = (): void => {
    for (const session of this.sessions.values()) session.beat()
  }
}

/** The socket's own session, for the listeners every session shares. */
const kSession = Symbol('faultline.websocket.session')
type Owned<R> = WsSocket & { [kSession]: WsSession<R> }

/** One open socket: its idle timer, its guarded listeners, and whether its end was already accounted for. */
export class WsSession<R> {
  /** Set once the socket's end is reported or initiated by us: nothing more to report or time. */
  private ended = false
  /** Cut off for not reading its error frames: its further messages are dropped. */
  private cut = false
  private missed = 0
  private idleTimer: ReturnType<typeof setTimeout> | undefined = undefined
  /** Handler -> its guard, made on the first function handler given to `addEventListener`. */
  private guards: WeakMap<EventHandler, EventHandler> | undefined = undefined
  private readonly emit: WsSocket['emit']
  private readonly add: WsSocket['addEventListener']
  private readonly remove: WsSocket['removeEventListener']
  private readonly host: WsHost<R>
  private readonly settings: WsSettings

  constructor (private readonly owner: WebSocketSessions<R>, readonly socket: WsSocket, readonly request: R) {
    this.host = owner.host
    this.settings = owner.settings
    ;(socket as Owned<R>)[kSession] = this
    socket.on('close', onClose)
    const idleTimeout = this.settings.idleTimeout
    if (idleTimeout !== undefined) {
      this.idleTimer = setTimeout(onIdle, idleTimeout, this).unref()
    }
    // Every listener the handler attaches (`on`, `once`, `addEventListener`,
    // `onmessage`) runs inside a guard: see guardedEmit. The functions are
    // shared by every socket; each finds its session through kSession.
    this.emit = socket.emit
    this.add = socket.addEventListener
    this.remove = socket.removeEventListener
    socket.emit = guardedEmit
    socket.addEventListener = guardedAddEventListener
    socket.removeEventListener = guardedRemoveEventListener
  }

  /**
   * The one way a socket fails: report, then (while it is open) the error
   * frame and the mapped close. With `keepOpen`, a fault below 500 only
   * sends the error frame: the peer sent something wrong, the connection
   * is fine.
   */
  fail (err: unknown, phase: Phase, keepOpen: boolean): Fault {
    // Each message is its own occurrence: a preallocated fault thrown for
    // two messages on one socket is reported twice.
    const fault = this.host.report(err, phase, this.request, phase !== 'message')
    const socket = this.socket
    if (socket.readyState !== OPEN) {
      this.end()
      return fault
    }
    if (this.settings.errorFrame) {
      // A peer that sends faulting messages and never reads would make the
      // error frames queue without bound: past the limit, no more frames.
      if (socket.bufferedAmount <= this.settings.maxBufferedAmount) socket.send(errorRecord(this.host.problemJson(fault, this.request)))
      else if (keepOpen && fault.status < 500) {
        this.cutOff()
        return fault
      }
    }
    if (keepOpen && fault.status < 500) return fault
    this.end()
    socket.close(closeCodeFor(fault, this.settings.closeCodes), closeReason(fault))
    return fault
  }

  /** 1001 and a reason; terminated if the peer does not finish the close in time. */
  shutdown (): Promise<void> {
    this.end()
    return new Promise(resolve => { this.closeWithin(SHUTDOWN_CLOSE_CODE, SHUTDOWN_REASON, resolve) })
  }

  /**
   * The peer does not read what it is sent: report that once, drop its
   * further messages, close with 1008 (queued behind the frames it has not
   * read) and terminate it if it does not finish the close within `closeTimeout`.
   */
  private cutOff (): void {
    this.end()
    this.cut = true
    const fault = this.host.report(peerNotReading(this.socket.bufferedAmount, this.settings.maxBufferedAmount), 'mid-stream', this.request, true)
    this.closeWithin(BACKPRESSURE_CLOSE_CODE, closeReason(fault))
  }

  /** Closes with `code`; terminated if the peer does not finish the close in `closeTimeout`. */
  private closeWithin (code: number, reason: string, onClosed?: () => void): void {
    const socket = this.socket
    const timer = setTimeout(() => socket.terminate(), this.settings.closeTimeout)
    socket.once('close', () => {
      clearTimeout(timer)
      onClosed?.()
    })
    if (socket.readyState === OPEN) socket.close(code, reason)
  }

  private end (): void {
    this.ended = true
    clearTimeout(this.idleTimer)
  }

  /** @internal */
  listenerFailed (err: unknown, event: string | symbol): void {
    this.fail(err, event === 'message' ? 'message' : 'mid-stream', true)
  }

  /** @internal The socket closed. */
  closed (code: number): void {
    this.owner.closed(this.socket)
    // 1006: the TCP connection ended without a close frame. Unless we
    // caused it, the peer dropped: normal churn, reported at debug.
    const dropped = code === ABNORMAL_CLOSURE && !this.ended
    this.end()
    if (dropped) this.host.report(peerGone(), 'mid-stream', this.request, true)
  }

  /** @internal A pong: the peer is there. */
  ponged (): void {
    this.missed = 0
  }

  /** @internal A heartbeat tick: ping, or terminate a peer that missed too many pings. */
  beat (): void {
    if (this.ended) return
    if (this.missed >= this.settings.heartbeat!.maxMissed) {
      this.end()
      this.host.report(peerUnresponsive(this.missed), 'mid-stream', this.request, true)
      this.socket.terminate()
      return
    }
    this.missed++
    this.socket.ping()
  }

  /** @internal No message for `idleTimeout`. */
  idle (): void {
    this.fail(peerIdle(this.settings.idleTimeout!), 'mid-stream', false)
  }

  /** @internal A message arrived: false when the peer was cut off (the message is dropped), else the idle timer starts again. */
  admitMessage (): boolean {
    if (this.cut) return false
    this.idleTimer?.refresh()
    return true
  }

  /** @internal */
  nativeEmit (socket: WsSocket, event: string | symbol, args: unknown[]): boolean {
    return Reflect.apply(this.emit, socket, [event, ...args])
  }

  /** @internal `addEventListener` with function handlers guarded, so a rejection is seen. */
  addListener (socket: WsSocket, type: string, handler: unknown, options: unknown): void {
    Reflect.apply(this.add, socket, [type, typeof handler === 'function' ? this.guard(handler as EventHandler) : handler, options])
  }

  /** @internal `removeEventListener` of a guarded handler removes its guard. */
  removeListener (socket: WsSocket, type: string, handler: unknown): void {
    Reflect.apply(this.remove, socket, [type, (typeof handler === 'function' ? this.guards?.get(handler as EventHandler) : undefined) ?? handler])
  }

  // ws's `addEventListener` (and so `onmessage`) drops what a handler
  // returns: wrap function handlers so a rejection is seen. A sync throw is
  // already caught by the emit guard.
  private guard (handler: EventHandler): EventHandler {
    const guards = this.guards ??= new WeakMap()
    let guarded = guards.get(handler)
    if (guarded === undefined) {
      const session = this
      guarded = function guardedHandler (this: WsSocket, event: { type: string }) {
        const result: unknown = Reflect.apply(handler, this, [event])
        if (isThenable(result)) result.then(undefined, (err: unknown) => session.listenerFailed(err, event.type))
      }
      guards.set(handler, guarded)
    }
    return guarded
  }
}

// The listeners and guards every session shares: `this` is the socket.

function onClose (this: Owned<unknown>, code: number): void {
  this[kSession].closed(code)
}

function onIdle (session: Pick<WsSession<unknown>, 'idle'>): void {
  session.idle()
}

/**
 * The socket's `emit`: every listener runs inside a guard, so a throw or a
 * returned rejection becomes a fault of the session instead of an uncaught
 * exception or an unhandled rejection. `error` keeps the native path (the
 * transport's error handler).
 */
function guardedEmit (this: Owned<unknown>, event: string | symbol, ...args: unknown[]): boolean {
  const session = this[kSession]
  if (event === 'error') return session.nativeEmit(this, event, args)
  if (event === 'message') {
    if (!session.admitMessage()) return false
  } else if (event === 'pong') {
    // The heartbeat's pong, seen here: no listener of its own on every socket.
    session.ponged()
  }
  const listeners = this.rawListeners(event)
  for (const listener of listeners) {
    try {
      const result: unknown = Reflect.apply(listener, this, args)
      if (isThenable(result)) result.then(undefined, (err: unknown) => session.listenerFailed(err, event))
    } catch (err) {
      session.listenerFailed(err, event)
    }
  }
  return listeners.length > 0
}

function guardedAddEventListener (this: Owned<unknown>, type: string, handler: unknown, options?: unknown): void {
  this[kSession].addListener(this, type, handler, options)
}

function guardedRemoveEventListener (this: Owned<unknown>, type: string, handler: unknown): void {
  this[kSession].removeListener(this, type, handler)
}
