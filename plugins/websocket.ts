import type { Server as HttpServer } from 'node:http'
import fp from 'fastify-plugin'
import type { WebsocketPluginOptions } from '@fastify/websocket'
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions, onErrorHookHandler } from 'fastify'
import type { WebSocket } from 'ws'
import type { Fault } from '../lib/fault.js'
import type { Phase } from '../lib/report.js'
import { FaultlineInvalidOptionError, FaultlinePeerRegisteredError, FaultlineWebsocketTwiceError } from '../lib/errors.js'
import { closeCodeFor, closeCodeProblem, closeReason, SHUTDOWN_CLOSE_CODE, SHUTDOWN_REASON, type CloseCodeMap } from '../lib/close-codes.js'
import { errorRecord } from '../lib/problem.js'
import { peerGone, peerIdle, peerUnresponsive } from '../lib/websocket-faults.js'
import './http.js'

export interface FaultlineHeartbeatOptions {
  /** Milliseconds between pings. */
  interval: number
  /** Pings in a row the peer may leave unanswered before it is terminated. Default: 1. */
  maxMissed?: number
}

export interface FaultlineWebsocketOptions {
  /**
   * Options for `@fastify/websocket`, which this plugin registers itself
   * (e.g. `{ options: { maxPayload: 1024 } }`). Its `errorHandler` and
   * `preClose` belong to faultline and cannot be given here.
   */
  websocket?: Omit<WebsocketPluginOptions, 'errorHandler' | 'preClose'>
  /** Send `{"type":"error","error":<problem>}` before closing, or for a kept-open 4xx. Default: true. */
  errorFrame?: boolean
  /**
   * Close codes by fault code (`{ PAYMENT_REQUIRED: 4402 }`) or by HTTP status
   * (`{ 404: 4004 }`). Wins over a class's `closeCode` and the default map.
   */
  closeCodes?: CloseCodeMap
  /** Ping every `interval` ms; a peer that misses pongs is terminated (a client abort). A number is the interval. Default: off. */
  heartbeat?: number | FaultlineHeartbeatOptions | false
  /** No message from the peer for this many ms: close as `RequestTimeoutError` (4408). Default: off. */
  idleTimeout?: number
  /** On `fastify.close()`, how long peers get to answer the 1001 close before they are terminated, in ms. Default: 5000. */
  closeTimeout?: number
}

const PLUGIN = 'faultline-websocket'
const PEER = '@fastify/websocket'
const OPEN = 1
const ABNORMAL_CLOSURE = 1006
const kRegistered = Symbol.for('fastify-faultline.websocket')

interface Settings {
  errorFrame: boolean
  closeCodes: CloseCodeMap | undefined
  heartbeat: { interval: number, maxMissed: number } | undefined
  idleTimeout: number | undefined
  closeTimeout: number
}

function invalid (option: string, reason: string): Error {
  return new FaultlineInvalidOptionError(PLUGIN, option, reason)
}

function isPositiveMs (value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 && value <= 2 ** 31 - 1
}

function isPlainObject (value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function validate (opts: FaultlineWebsocketOptions): Settings {
  if (!isPlainObject(opts)) throw invalid('options', 'must be an object')
  const { websocket, errorFrame, closeCodes, heartbeat, idleTimeout, closeTimeout } = opts
  if (websocket !== undefined) {
    if (!isPlainObject(websocket)) throw invalid('websocket', `must be the options object for ${PEER}, e.g. { options: { maxPayload: 1024 } }`)
    for (const owned of ['errorHandler', 'preClose']) {
      if ((websocket as Record<string, unknown>)[owned] !== undefined) {
        throw invalid(`websocket.${owned}`, `faultline owns ${PEER}'s ${owned}; observe faults with faultlineHttp's onFault option instead`)
      }
    }
  }
  if (errorFrame !== undefined && typeof errorFrame !== 'boolean') throw invalid('errorFrame', 'must be a boolean')
  if (closeCodes !== undefined) {
    if (!isPlainObject(closeCodes)) throw invalid('closeCodes', 'must be an object of fault code or HTTP status -> close code, e.g. { PAYMENT_REQUIRED: 4402, 404: 4004 }')
    for (const [key, code] of Object.entries(closeCodes)) {
      if (/^\d+$/.test(key) && !(Number(key) >= 400 && Number(key) <= 599)) {
        throw invalid(`closeCodes.${key}`, 'a numeric key must be an HTTP status from 400 to 599')
      }
      const problem = closeCodeProblem(code)
      if (problem !== undefined) throw invalid(`closeCodes.${key}`, problem)
    }
  }
  let beat: Settings['heartbeat']
  if (typeof heartbeat === 'number') {
    if (!isPositiveMs(heartbeat)) throw invalid('heartbeat', 'must be a positive number of milliseconds')
    beat = { interval: heartbeat, maxMissed: 1 }
  } else if (heartbeat !== undefined && heartbeat !== false) {
    if (!isPlainObject(heartbeat) || !isPositiveMs(heartbeat.interval)) {
      throw invalid('heartbeat', 'must be false, a ping interval in milliseconds, or { interval, maxMissed? }')
    }
    const maxMissed = heartbeat.maxMissed ?? 1
    if (!Number.isInteger(maxMissed) || maxMissed < 1) throw invalid('heartbeat.maxMissed', 'must be an integer of at least 1')
    beat = { interval: heartbeat.interval, maxMissed }
  }
  if (idleTimeout !== undefined && !isPositiveMs(idleTimeout)) throw invalid('idleTimeout', 'must be a positive number of milliseconds')
  if (closeTimeout !== undefined && !isPositiveMs(closeTimeout)) throw invalid('closeTimeout', 'must be a positive number of milliseconds')
  return {
    errorFrame: errorFrame !== false,
    closeCodes,
    heartbeat: beat,
    idleTimeout,
    closeTimeout: closeTimeout ?? 5000
  }
}

type EventHandler = (this: WebSocket, event: { type: string }) => unknown
type WsHandler = (this: FastifyInstance, socket: WebSocket, request: FastifyRequest) => unknown

function isThenable (value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as PromiseLike<unknown>).then === 'function'
}

async function faultlineWebsocket_ (fastify: FastifyInstance, opts: FaultlineWebsocketOptions): Promise<void> {
  const settings = validate(opts)
  if (fastify.hasPlugin(PEER) || fastify.hasDecorator('websocketServer')) {
    throw new FaultlinePeerRegisteredError(PLUGIN, PEER, 'faultlineWebsocket', 'websocket')
  }
  const listenServer: HttpServer & { [kRegistered]?: true } = (opts.websocket?.options?.server as HttpServer | undefined) ?? fastify.server
  if (listenServer[kRegistered] === true) throw new FaultlineWebsocketTwiceError()
  listenServer[kRegistered] = true
  const faultline = fastify.faultline
  const { errorFrame, closeCodes, heartbeat, idleTimeout, closeTimeout } = settings
  const connections = new Map<WebSocket, Connection>()
  let shuttingDown = false

  /** One open socket: its timers and whether its end was already accounted for. */
  class Connection {
    readonly socket: WebSocket
    readonly request: FastifyRequest
    /** Set once the socket's end is reported or initiated by us: nothing more to report or time. */
    ended = false
    missed = 0
    heartbeatTimer: NodeJS.Timeout | undefined
    idleTimer: NodeJS.Timeout | undefined

    constructor (socket: WebSocket, request: FastifyRequest) {
      this.socket = socket
      this.request = request
      connections.set(socket, this)
      socket.on('close', this.onClose)
      if (heartbeat !== undefined) {
        socket.on('pong', this.onPong)
        this.heartbeatTimer = setInterval(this.beat, heartbeat.interval).unref()
      }
      if (idleTimeout !== undefined) {
        this.idleTimer = setTimeout(this.idle, idleTimeout).unref()
      }
      this.guardListeners()
    }

    /**
     * Every listener the handler attaches (`on`, `once`, `addEventListener`,
     * `onmessage`) runs inside a guard: a throw or a returned rejection
     * becomes a fault here instead of an uncaught exception or an unhandled
     * rejection. `error` keeps the native path (@fastify/websocket's handler).
     */
    guardListeners (): void {
      const emit = this.socket.emit as (this: WebSocket, event: string | symbol, ...args: unknown[]) => boolean
      const conn = this
      this.socket.emit = function guardedEmit (this: WebSocket, event: string | symbol, ...args: unknown[]): boolean {
        if (event === 'error') return Reflect.apply(emit, this, [event, ...args])
        if (event === 'message' && conn.idleTimer !== undefined) conn.idleTimer.refresh()
        const listeners = this.rawListeners(event)
        for (const listener of listeners) {
          try {
            const result: unknown = Reflect.apply(listener, this, args)
            if (isThenable(result)) result.then(undefined, (err: unknown) => conn.listenerFailed(err, event))
          } catch (err) {
            conn.listenerFailed(err, event)
          }
        }
        return listeners.length > 0
      }
      // ws's `addEventListener` (and so `onmessage`) drops what a handler
      // returns: wrap function handlers so a rejection is seen. A sync throw
      // is already caught by the emit guard above.
      const guards = new WeakMap<EventHandler, EventHandler>()
      const add = this.socket.addEventListener as (this: WebSocket, ...args: unknown[]) => void
      const remove = this.socket.removeEventListener as (this: WebSocket, ...args: unknown[]) => void
      function guard (handler: EventHandler): EventHandler {
        let guarded = guards.get(handler)
        if (guarded === undefined) {
          guarded = function guardedHandler (this: WebSocket, event: { type: string }) {
            const result: unknown = Reflect.apply(handler, this, [event])
            if (isThenable(result)) result.then(undefined, (err: unknown) => conn.listenerFailed(err, event.type))
          }
          guards.set(handler, guarded)
        }
        return guarded
      }
      this.socket.addEventListener = function guardedAddEventListener (this: WebSocket, type: string, handler: unknown, options?: unknown) {
        Reflect.apply(add, this, [type, typeof handler === 'function' ? guard(handler as EventHandler) : handler, options])
      } as WebSocket['addEventListener']
      this.socket.removeEventListener = function guardedRemoveEventListener (this: WebSocket, type: string, handler: unknown) {
        Reflect.apply(remove, this, [type, (typeof handler === 'function' ? guards.get(handler as EventHandler) : undefined) ?? handler])
      } as WebSocket['removeEventListener']
    }

    end (): void {
      this.ended = true
      clearInterval(this.heartbeatTimer)
      clearTimeout(this.idleTimer)
    }

    listenerFailed (err: unknown, event: string | symbol): void {
      this.fail(err, event === 'message' ? 'message' : 'mid-stream', true)
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
      const fault = faultline.report(err, { transport: 'websocket', phase, request: this.request, dedupe: phase !== 'message' })
      const socket = this.socket
      if (socket.readyState !== OPEN) {
        this.end()
        return fault
      }
      if (errorFrame) socket.send(errorRecord(faultline.problemJson(fault, this.request)))
      if (keepOpen && fault.status < 500) return fault
      this.end()
      socket.close(closeCodeFor(fault, closeCodes), closeReason(fault))
      return fault
    }

    readonly onClose = (code: number): void => {
      connections.delete(this.socket)
      // 1006: the TCP connection ended without a close frame. Unless we
      // caused it, the peer dropped: normal churn, reported at debug.
      const dropped = code === ABNORMAL_CLOSURE && !this.ended
      this.end()
      if (dropped) {
        faultline.report(peerGone(), { transport: 'websocket', phase: 'mid-stream', request: this.request })
      }
    }

    readonly onPong = (): void => { this.missed = 0 }

    readonly beat = (): void => {
      if (this.missed >= heartbeat!.maxMissed) {
        this.end()
        faultline.report(peerUnresponsive(this.missed), { transport: 'websocket', phase: 'mid-stream', request: this.request })
        this.socket.terminate()
        return
      }
      this.missed++
      this.socket.ping()
    }

    readonly idle = (): void => {
      this.fail(peerIdle(idleTimeout!), 'mid-stream', false)
    }

    /** 1001 and a reason; terminated if the peer does not finish the close in time. */
    shutdown (): Promise<void> {
      const socket = this.socket
      this.end()
      return new Promise(resolve => {
        const timer = setTimeout(() => socket.terminate(), closeTimeout)
        socket.once('close', () => {
          clearTimeout(timer)
          resolve()
        })
        if (socket.readyState === OPEN) socket.close(SHUTDOWN_CLOSE_CODE, SHUTDOWN_REASON)
      })
    }
  }

  function wrap (handler: WsHandler): WsHandler {
    return function faultlineWebsocketHandler (this: FastifyInstance, socket, request) {
      const conn = new Connection(socket, request)
      // The upgrade finished after fastify.close() began (its hooks were
      // still running): close it like the others instead of serving it.
      if (shuttingDown) {
        conn.shutdown() // resolves when closed; never rejects
        return
      }
      try {
        const result = handler.call(this, socket, request)
        if (isThenable(result)) result.then(undefined, (err: unknown) => conn.fail(err, 'mid-stream', false))
      } catch (err) {
        conn.fail(err, 'mid-stream', false)
      }
    }
  }

  // Hooks before the upgrade answer over HTTP (faultlineHttp renders the
  // problem); this reports it first as a websocket upgrade failure, and the
  // report path's per-request dedupe keeps the error handler from logging it again.
  const onUpgradeError: onErrorHookHandler = function faultlineWebsocketUpgradeError (request, _reply, error, done) {
    if (request.ws) faultline.report(error, { transport: 'websocket', phase: 'upgrade', request })
    done()
  }

  fastify.addHook('onRoute', function faultlineWebsocketRoute (routeOptions: RouteOptions & { wsHandler?: WsHandler }) {
    const methods = Array.isArray(routeOptions.method) ? routeOptions.method : [routeOptions.method]
    if (methods.every(method => method === 'HEAD')) return
    let isWebsocket = false
    if (routeOptions.websocket && typeof routeOptions.handler === 'function') {
      routeOptions.handler = wrap(routeOptions.handler as unknown as WsHandler) as unknown as RouteOptions['handler']
      isWebsocket = true
    }
    if (typeof routeOptions.wsHandler === 'function') {
      routeOptions.wsHandler = wrap(routeOptions.wsHandler) as typeof routeOptions.wsHandler
      isWebsocket = true
    }
    if (!isWebsocket) return
    const existing = routeOptions.onError
    routeOptions.onError = existing === undefined
      ? [onUpgradeError]
      : [...(Array.isArray(existing) ? existing : [existing]), onUpgradeError]
  })

  // Which `upgrade` listener is @fastify/websocket's: the one it adds. Our
  // preClose replaces its default, so removing it is our job.
  const before = new Set(listenServer.listeners('upgrade'))
  let upgradeListeners: Array<(...args: unknown[]) => void> = []

  // Loaded here, not at the top: importing the package root must not
  // require @fastify/websocket from apps that do not use WebSockets.
  const { default: fastifyWebsocket } = await import('@fastify/websocket')
  await fastify.register(fastifyWebsocket, {
    ...opts.websocket,
    errorHandler (error: Error, socket: WebSocket, request: FastifyRequest, _reply: FastifyReply) {
      const conn = connections.get(socket)
      if (conn !== undefined) {
        conn.fail(error, 'mid-stream', false)
        return
      }
      // A socket no faultline handler owns (an upgrade to a route without a
      // websocket handler, closed by @fastify/websocket itself).
      faultline.report(error, { transport: 'websocket', phase: 'mid-stream', request })
      socket.terminate()
    },
    async preClose () {
      shuttingDown = true
      delete listenServer[kRegistered]
      for (const listener of upgradeListeners) listenServer.removeListener('upgrade', listener)
      await Promise.all([...connections.values()].map(conn => conn.shutdown()))
      // Sockets no faultline handler owns (an upgrade to a route without a
      // websocket handler, already closing): wss.close() would wait for them.
      const clients = fastify.websocketServer.clients as Set<WebSocket> | undefined
      if (clients !== undefined) for (const client of clients) client.terminate()
      await new Promise<void>(resolve => { fastify.websocketServer.close(() => resolve()) })
    }
  })
  upgradeListeners = listenServer.listeners('upgrade').filter(listener => !before.has(listener)) as Array<(...args: unknown[]) => void>
}

/**
 * `@fastify/websocket` with faultline's error model: handler and listener
 * failures become an error frame and a mapped close code, never an
 * unhandled rejection; `fastify.close()` sends 1001. Registers
 * `@fastify/websocket` itself: do not register it separately.
 */
export const faultlineWebsocket = fp(faultlineWebsocket_, {
  name: PLUGIN,
  fastify: '5.x',
  dependencies: ['faultline-http']
})
