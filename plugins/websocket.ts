import type { Server as HttpServer } from 'node:http'
import fp from 'fastify-plugin'
import type { WebsocketPluginOptions } from '@fastify/websocket'
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions, onErrorHookHandler } from 'fastify'
import type { WebSocket } from 'ws'
import { FaultlinePeerRegisteredError, FaultlineWebsocketTwiceError } from '../lib/errors.js'
import { whyUnsendableCloseCode, type CloseCodeMap } from '../lib/close-codes.js'
import { PluginOptions, isPlainObject, whyInvalidCount, whyInvalidMs } from '../lib/options.js'
import { WebSocketSessions, type WsSettings, type WsSocket } from '../lib/websocket-session.js'
import { appendHook } from '../lib/hooks.js'
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
  /**
   * Bytes queued to a peer (`socket.bufferedAmount`) past which no error frame
   * is sent: a peer whose messages keep faulting but who does not read the
   * frames is closed with 1008 (`TOO_MANY_REQUESTS`, reported once) and its
   * further messages are dropped. Default: 1048576 (1 MiB).
   */
  maxBufferedAmount?: number
}

const PLUGIN = 'faultline-websocket'
/** The companion plugin this one registers. */
const COMPANION = '@fastify/websocket'
const kRegistered = Symbol.for('fastify-faultline.websocket')
const KNOWN = ['websocket', 'errorFrame', 'closeCodes', 'heartbeat', 'idleTimeout', 'closeTimeout', 'maxBufferedAmount']
/** Default `maxBufferedAmount`: 1 MiB of frames queued to one peer. */
const DEFAULT_MAX_BUFFERED = 1024 * 1024

function validate (opts: FaultlineWebsocketOptions): WsSettings {
  const options = new PluginOptions(PLUGIN, opts, KNOWN)
  const websocket = options.object('websocket', `the options object for ${COMPANION}, e.g. { options: { maxPayload: 1024 } }`)
  for (const owned of ['errorHandler', 'preClose']) {
    if (websocket?.[owned] !== undefined) {
      throw options.invalid(`websocket.${owned}`, `faultline owns ${COMPANION}'s ${owned}; observe faults with faultlineHttp's onFault option instead`)
    }
  }
  const closeCodes = options.object('closeCodes', 'an object of fault code or HTTP status -> close code, e.g. { PAYMENT_REQUIRED: 4402, 404: 4004 }')
  for (const [key, code] of Object.entries(closeCodes ?? {})) {
    if (/^\d+$/.test(key) && !(Number(key) >= 400 && Number(key) <= 599)) {
      throw options.invalid(`closeCodes.${key}`, 'a numeric key must be an HTTP status from 400 to 599')
    }
    const reason = whyUnsendableCloseCode(code)
    if (reason !== undefined) throw options.invalid(`closeCodes.${key}`, reason)
  }
  return {
    errorFrame: options.boolean('errorFrame', true),
    maxBufferedAmount: options.count('maxBufferedAmount', DEFAULT_MAX_BUFFERED, 'bytes queued to a peer'),
    closeCodes: closeCodes as CloseCodeMap | undefined,
    heartbeat: heartbeatOption(options),
    idleTimeout: options.ms('idleTimeout', 1),
    closeTimeout: options.ms('closeTimeout', 1, 5000)
  }
}

/** `heartbeat`: false, an interval in ms, or `{ interval, maxMissed? }`. */
function heartbeatOption (options: PluginOptions): WsSettings['heartbeat'] {
  const heartbeat = options.get('heartbeat')
  if (heartbeat === undefined || heartbeat === false) return undefined
  if (typeof heartbeat === 'number') return { interval: options.ms('heartbeat', 1)!, maxMissed: 1 }
  if (!isPlainObject(heartbeat)) throw options.invalid('heartbeat', 'must be false, a ping interval in milliseconds, or { interval, maxMissed? }')
  const badInterval = whyInvalidMs(heartbeat.interval, 1)
  if (badInterval !== undefined) throw options.invalid('heartbeat.interval', badInterval)
  const maxMissed = heartbeat.maxMissed ?? 1
  const badMissed = whyInvalidCount(maxMissed)
  if (badMissed !== undefined) throw options.invalid('heartbeat.maxMissed', badMissed)
  return { interval: heartbeat.interval as number, maxMissed: maxMissed as number }
}

type WsHandler = (this: FastifyInstance, socket: WebSocket, request: FastifyRequest) => unknown

async function faultlineWebsocket_ (fastify: FastifyInstance, opts: FaultlineWebsocketOptions): Promise<void> {
  const settings = validate(opts)
  if (fastify.hasPlugin(COMPANION) || fastify.hasDecorator('websocketServer')) {
    throw new FaultlinePeerRegisteredError(PLUGIN, COMPANION, 'faultlineWebsocket', 'websocket')
  }
  const listenServer: HttpServer & { [kRegistered]?: true } = (opts.websocket?.options?.server as HttpServer | undefined) ?? fastify.server
  if (listenServer[kRegistered] === true) throw new FaultlineWebsocketTwiceError()
  listenServer[kRegistered] = true
  const faultline = fastify.faultline
  const sessions = new WebSocketSessions<FastifyRequest>({
    report: (err, phase, request, dedupe) => faultline.report(err, { transport: 'websocket', phase, request, dedupe }),
    problemJson: (fault, request) => faultline.problemJson(fault, request)
  }, settings)

  function wrap (handler: WsHandler): WsHandler {
    return function faultlineWebsocketHandler (this: FastifyInstance, socket, request) {
      sessions.run(socket as unknown as WsSocket, request, () => handler.call(this, socket, request))
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
    if (isWebsocket) routeOptions.onError = appendHook(routeOptions.onError, onUpgradeError)
  })

  // Which `upgrade` listener is @fastify/websocket's: the one it adds while it
  // registers (test/dependency-internals.test.ts checks that it still does). Our
  // preClose replaces its default, so removing it is our job.
  const before = new Set(listenServer.listeners('upgrade'))
  let upgradeListeners: Array<(...args: unknown[]) => void> = []

  // Loaded here, not at the top: importing the package root must not
  // require @fastify/websocket from apps that do not use WebSockets.
  const { default: fastifyWebsocket } = await import('@fastify/websocket')
  await fastify.register(fastifyWebsocket, {
    ...opts.websocket,
    errorHandler (error: Error, socket: WebSocket, request: FastifyRequest, _reply: FastifyReply) {
      if (sessions.socketError(error, socket as unknown as WsSocket)) return
      // A socket no faultline handler owns (an upgrade to a route without a
      // websocket handler, closed by @fastify/websocket itself).
      faultline.report(error, { transport: 'websocket', phase: 'mid-stream', request })
      socket.terminate()
    },
    async preClose () {
      delete listenServer[kRegistered]
      for (const listener of upgradeListeners) listenServer.removeListener('upgrade', listener)
      await sessions.shutdown()
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
