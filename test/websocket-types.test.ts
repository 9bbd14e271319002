// Type-level tests, checked by `npx tsc --noEmit`; the runtime part only makes tap count the file.
import t from 'tap'
import Fastify from 'fastify'
import type { WebSocket } from 'ws'
import {
  faultlineHttp, faultlineWebsocket, closeCodeFor, closeReason, truncateUtf8, defineFault, NotFoundError,
  type FaultlineWebsocketOptions, type FaultlineHeartbeatOptions, type CloseCodeMap
} from '../index.js'
import { guardProcess } from './helpers/guard.js'

guardProcess(t)

t.test('public types', async t => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(faultlineHttp)
  await app.register(faultlineWebsocket, {
    websocket: { options: { maxPayload: 1024 } },
    errorFrame: false,
    closeCodes: { NOT_FOUND: 4004, 503: 1013 },
    heartbeat: { interval: 30_000, maxMissed: 2 },
    idleTimeout: 60_000,
    closeTimeout: 1000
  })

  // A websocket route's handler gets the socket and the request.
  app.get('/ws', { websocket: true }, (socket, request) => {
    const s: WebSocket = socket
    const id: string = request.id
    s.on('message', async () => { await Promise.resolve(id) })
  })

  const code: number = closeCodeFor(new NotFoundError(), { NOT_FOUND: 4004 })
  const reason: string = closeReason(new NotFoundError())
  const cut: string = truncateUtf8('abc', 2)
  const map: CloseCodeMap = { 404: 4004, CONFLICT: 4009 }
  const beat: FaultlineHeartbeatOptions = { interval: 1000 }
  const heartbeats: Array<FaultlineWebsocketOptions['heartbeat']> = [1000, false, beat, undefined]
  const Quota = defineFault({ code: 'TYPES_QUOTA', status: 429, closeCode: 4029 })

  // @ts-expect-error errorHandler belongs to faultline
  const noErrorHandler: FaultlineWebsocketOptions = { websocket: { errorHandler: () => {} } }
  // @ts-expect-error preClose belongs to faultline
  const noPreClose: FaultlineWebsocketOptions = { websocket: { preClose: () => {} } }
  // @ts-expect-error close codes are numbers
  const badMap: CloseCodeMap = { NOT_FOUND: '4004' }
  // @ts-expect-error heartbeat needs an interval
  const badBeat: FaultlineWebsocketOptions = { heartbeat: { maxMissed: 2 } }
  // @ts-expect-error errorFrame is a boolean
  const badFrame: FaultlineWebsocketOptions = { errorFrame: 'yes' }
  // @ts-expect-error closeCodeFor takes a fault
  closeCodeFor(new Error('x'))

  t.ok([code, reason, cut, map, heartbeats, Quota, noErrorHandler, noPreClose, badMap, badBeat, badFrame].length > 0)
  t.equal(code, 4004)
})
