import type { Case } from '../lib/types.js'
import { sameAppCase, happyPath, happyPathPeers, errorPaths, typedFaultCost, answerCosts, websocketPeerCost, pluginsCost } from './http.js'
import { happyPathOtel, happyPathOtelAll } from './otel.js'
import { streams } from './stream.js'
import { streamCompress } from './stream-compress.js'
import { sse } from './sse.js'
import { websocket } from './websocket.js'
import { clientChurn } from './churn.js'
import { enqueue } from './enqueue.js'
import { idleWebsocket, idleWebsocketHeartbeat, idleSse } from './connections.js'
import { detailsSweep } from './details.js'
import { importTime } from './import.js'

/** Every case, in table order. */
export const CASES: readonly Case[] = [sameAppCase, happyPath, happyPathPeers, happyPathOtel, happyPathOtelAll, ...errorPaths, typedFaultCost, ...answerCosts, websocketPeerCost, pluginsCost, streams, streamCompress, sse, websocket, clientChurn, enqueue]

// Cost as the work grows (issue 16): details size, per-connection memory, import time, after the others.
;(CASES as Case[]).push(detailsSweep, idleWebsocket, idleWebsocketHeartbeat, idleSse, importTime)
