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
  private readonly sessions = new Set<WsSession<R>>()
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
    this.sessions.add(session)
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

  /** A socket error from the transport. False when no open session of these owns `socket` (the caller handles it). */
  socketError (error: unknown, socket: WsSocket): boolean {
    const session = (socket as Partial<Owned<R>>)[kSession]
    if (session === undefined || !this.sessions.has(session)) return false
    session.fail(error, 'mid-stream', false)
    return true
  }

  /** 1001 to every open socket; resolves once all closed (or were terminated after `closeTimeout`). */
  async shutdown (): Promise<void> {
    this.shuttingDown = true
    this.stopHeartbeat()
    await Promise.all([...this.sessions].map(session => session.shutdown()))
  }

  /** @internal */
  closed (session: WsSession<R>): void {
    this.sessions.delete(session)
    if (this.sessions.size === 0) this.stopHeartbeat()
  }

  private stopHeartbeat (): void {
    clearInterval(this.heartbeatTimer)
    this.heartbeatTimer = undefined
  }

  /** Each tick: every socket that answered the last ping is pinged again; one that missed too many is terminated. */
  private readonly beat = (): void => {
    for (const session of this.sessions) session.beat()
  }
}

/** The socket's own session, for the functions every session shares. */
const kSession = Symbol('faultline.websocket.session')
type Owned<R> = WsSocket & { [kSession]: WsSession<R> }

// A session's `state`: 0 or more while it is live (the pings in a row its
// peer left unanswered), below 0 once its end is reported or initiated by us.
/** Ended: nothing more to report, ping or time. */
const ENDED = -1
/** Ended by cutting off a peer that does not read its error frames: its further messages are dropped. */
const CUT = -2

/**
 * One open socket. Kept small, as there is one per idle connection: the
 * listeners, guards and timers are shared by every session, and the
 * idle timer exists only with `idleTimeout`.
 */
export class WsSession<R> {
  /** Pings unanswered (>= 0) while live; ENDED or CUT once ended. */
  private state = 0
  /** Only with `idleTimeout`. */
  private declare idleTimer: ReturnType<typeof setTimeout> | undefined

  constructor (private readonly owner: WebSocketSessions<R>, readonly socket: WsSocket, readonly request: R) {
    ;(socket as Owned<R>)[kSession] = this
    const idleTimeout = owner.settings.idleTimeout
    if (idleTimeout !== undefined) this.idleTimer = setTimeout(onIdle, idleTimeout, this).unref()
    guard(socket)
  }

  /**
   * The one way a socket fails: report, then (while it is open) the error
   * frame and the mapped close. With `keepOpen`, a fault below 500 only
   * sends the error frame: the peer sent something wrong, the connection
   * is fine.
   */
  fail (err: unknown, phase: Phase, keepOpen: boolean): Fault {
    const { host, settings } = this.owner
    // Each message is its own occurrence: a preallocated fault thrown for
    // two messages on one socket is reported twice.
    const fault = host.report(err, phase, this.request, phase !== 'message')
    const socket = this.socket
    if (socket.readyState !== OPEN) {
      this.end()
      return fault
    }
    if (settings.errorFrame) {
      // A peer that sends faulting messages and never reads would make the
      // error frames queue without bound: past the limit, no more frames.
      if (socket.bufferedAmount <= settings.maxBufferedAmount) socket.send(errorRecord(host.problemJson(fault, this.request)))
      else if (keepOpen && fault.status < 500) {
        this.cutOff()
        return fault
      }
    }
    if (keepOpen && fault.status < 500) return fault
    this.end()
    socket.close(closeCodeFor(fault, settings.closeCodes), closeReason(fault))
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
    this.end(CUT)
    const limit = this.owner.settings.maxBufferedAmount
    const fault = this.owner.host.report(peerNotReading(this.socket.bufferedAmount, limit), 'mid-stream', this.request, true)
    this.closeWithin(BACKPRESSURE_CLOSE_CODE, closeReason(fault))
  }

  /** Closes with `code`; terminated if the peer does not finish the close in `closeTimeout`. */
  private closeWithin (code: number, reason: string, onClosed?: () => void): void {
    const socket = this.socket
    const timer = setTimeout(() => socket.terminate(), this.owner.settings.closeTimeout)
    socket.once('close', () => {
      clearTimeout(timer)
      onClosed?.()
    })
    if (socket.readyState === OPEN) socket.close(code, reason)
  }

  private end (state = ENDED): void {
    if (this.state !== CUT) this.state = state
    clearTimeout(this.idleTimer)
  }

  /** @internal */
  listenerFailed (err: unknown, event: string | symbol): void {
    this.fail(err, event === 'message' ? 'message' : 'mid-stream', true)
  }

  /** @internal The socket closed. */
  closed (code: number): void {
    this.owner.closed(this)
    // 1006: the TCP connection ended without a close frame. Unless we
    // caused it, the peer dropped: normal churn, reported at debug.
    const dropped = code === ABNORMAL_CLOSURE && this.state >= 0
    this.end()
    if (dropped) this.owner.host.report(peerGone(), 'mid-stream', this.request, true)
  }

  /** @internal A pong: the peer is there. */
  ponged (): void {
    if (this.state > 0) this.state = 0
  }

  /** @internal A heartbeat tick: ping, or terminate a peer that missed too many pings. */
  beat (): void {
    const missed = this.state
    if (missed < 0) return
    if (missed >= this.owner.settings.heartbeat!.maxMissed) {
      this.end()
      this.owner.host.report(peerUnresponsive(missed), 'mid-stream', this.request, true)
      this.socket.terminate()
      return
    }
    this.state = missed + 1
    this.socket.ping()
  }

  /** @internal No message for `idleTimeout`. */
  idle (): void {
    this.fail(peerIdle(this.owner.settings.idleTimeout!), 'mid-stream', false)
  }

  /** @internal A message arrived: false when the peer was cut off (the message is dropped), else the idle timer starts again. */
  admitMessage (): boolean {
    if (this.state === CUT) return false
    this.idleTimer?.refresh()
    return true
  }
}

function onIdle (session: Pick<WsSession<unknown>, 'idle'>): void {
  session.idle()
}

// Every listener the handler attaches (`on`, `once`, `addEventListener`,
// `onmessage`) runs inside a guard (see guardEmit). The guards are shared by
// every socket (`this` is the socket; each finds its session through
// kSession): one per native method they stand in front of, one per function
// handler given to `addEventListener`. A socket gets them through a
// prototype of guards put between it and its own prototype (one per native
// prototype: for `ws`, one per process), so it carries no method of its own;
// a socket whose methods are its own already gets them in place.

const GUARDED = ['emit', 'addEventListener', 'removeEventListener'] as const
const guardedPrototypes = new WeakMap<WsSocket, WsSocket>()

function guard (socket: WsSocket): void {
  if (GUARDED.some(method => Object.hasOwn(socket, method))) {
    Object.assign(socket, guards(socket))
    return
  }
  Object.setPrototypeOf(socket, shared(guardedPrototypes, Object.getPrototypeOf(socket) as WsSocket, guardedPrototype))
}

/** A prototype of `native` with its methods guarded (not enumerable, as a class's methods). */
function guardedPrototype (native: WsSocket): WsSocket {
  const methods: PropertyDescriptorMap = {}
  for (const [name, value] of Object.entries(guards(native))) methods[name] = { value, writable: true, configurable: true }
  return Object.create(native, methods) as WsSocket
}

/** The guards of `native`'s methods. */
function guards (native: WsSocket): Pick<WsSocket, typeof GUARDED[number]> {
  return {
    emit: guardEmit(native.emit),
    addEventListener: guardAddEventListener(native.addEventListener),
    removeEventListener: guardRemoveEventListener(native.removeEventListener)
  }
}

const emitGuards = new WeakMap<WsSocket['emit'], WsSocket['emit']>()
const addGuards = new WeakMap<WsSocket['addEventListener'], WsSocket['addEventListener']>()
const removeGuards = new WeakMap<WsSocket['removeEventListener'], WsSocket['removeEventListener']>()
const handlerGuards = new WeakMap<EventHandler, EventHandler>()

/** The one value `make(key)` gives for `key`, kept in `cache`. */
function shared<K extends object, V> (cache: WeakMap<K, V>, key: K, make: (key: K) => V): V {
  let value = cache.get(key)
  if (value === undefined) {
    value = make(key)
    cache.set(key, value)
  }
  return value
}

/**
 * The socket's `emit`: every listener runs inside a guard, so a throw or a
 * returned rejection becomes a fault of the session instead of an uncaught
 * exception or an unhandled rejection. `error` keeps the native path (the
 * transport's error handler). The session sees its socket's `close` and
 * `pong` here: no listener of its own on every socket.
 */
function guardEmit (native: WsSocket['emit']): WsSocket['emit'] {
  return shared(emitGuards, native, () => function guardedEmit (this: Owned<unknown>, event: string | symbol, ...args: unknown[]): boolean {
    const session = this[kSession]
    if (event === 'error') return Reflect.apply(native, this, [event, ...args])
    if (event === 'message') {
      if (!session.admitMessage()) return false
    } else if (event === 'close') {
      session.closed(args[0] as number)
    } else if (event === 'pong') {
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
  })
}

/** `addEventListener` with function handlers guarded: ws's (and so `onmessage`) drops what a handler returns. */
function guardAddEventListener (native: WsSocket['addEventListener']): WsSocket['addEventListener'] {
  return shared(addGuards, native, () => function guardedAddEventListener (this: WsSocket, type: string, handler: unknown, options?: unknown): void {
    Reflect.apply(native, this, [type, typeof handler === 'function' ? shared(handlerGuards, handler as EventHandler, guardHandler) : handler, options])
  })
}

/** `removeEventListener` of a guarded handler removes its guard. */
function guardRemoveEventListener (native: WsSocket['removeEventListener']): WsSocket['removeEventListener'] {
  return shared(removeGuards, native, () => function guardedRemoveEventListener (this: WsSocket, type: string, handler: unknown): void {
    Reflect.apply(native, this, [type, (typeof handler === 'function' ? handlerGuards.get(handler as EventHandler) : undefined) ?? handler])
  })
}

/** `handler`, with a returned rejection failing the session of the socket it runs on (a sync throw is caught by the emit guard). */
function guardHandler (handler: EventHandler): EventHandler {
  return function guardedHandler (this: Owned<unknown>, event: { type: string }) {
    const result: unknown = Reflect.apply(handler, this, [event])
    if (isThenable(result)) {
      const session = this[kSession]
      result.then(undefined, (err: unknown) => session.listenerFailed(err, event.type))
    }
  }
}
