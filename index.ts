// The taxonomy and the wire -> fault functions, shared with fastify-faultline/client.
export * from './lib/core-exports.js'
export { isSendableCloseCode, faultForStatus } from './lib/fault.js'
export type { CatalogEntry, DetailsSchema, StatusFaultOptions } from './lib/fault.js'
export { toFault } from './lib/normalize.js'
export { toProblem } from './lib/problem.js'
export { stringifyProblem } from './lib/problem-json.js'
export { PROBLEM_SCHEMA_ID, PROBLEM_MEDIA_TYPE } from './lib/openapi.js'
export type { RouteFaults } from './lib/openapi.js'
export type { CatalogDocEntry } from './lib/catalog-doc.js'
export type { ProblemOptions, DebugCause } from './lib/problem.js'
export type { Transport, Phase, LogLevel, LogLevels, FaultContext, FaultReporter } from './lib/report.js'
export { faultlineHttp } from './plugins/http.js'
export { faultlineFrameworkErrors } from './plugins/framework-errors.js'
export { faultlineClientErrors } from './plugins/client-errors.js'
export type { FaultlineClientError } from './plugins/client-errors.js'
export type { FaultlineHttpOptions, Faultline, FaultlineReportContext, FaultlineSendContext } from './plugins/http.js'
export { faultlineStream } from './plugins/stream.js'
export type {
  FaultlineStreamOptions, StreamSafeRawOptions, StreamSafeResumableOptions, StreamSafeNdjsonOptions, StreamSafeNdjsonIdOptions
} from './plugins/stream.js'
export type {
  StreamSource, StreamSourceFunction, StreamSourceValue, StreamSafeOptions, StreamFraming, StreamChunk, StreamResume, RecordId
} from './lib/stream-source.js'
export { faultlineBackground } from './plugins/background.js'
export type {
  FaultlineBackgroundOptions, FaultlineBackground, BackgroundTask, BackgroundTaskOptions,
  BackgroundScheduleOptions, BackgroundStats, FaultlineBackgroundQueueOptions,
  BackgroundDefineOptions, BackgroundTaskHandler, BackgroundTaskContext, BackgroundBackoff
} from './plugins/background.js'
export { faultlineSse } from './plugins/sse.js'
export type { FaultlineSseOptions, SseFaultOptions, FaultlineSse } from './plugins/sse.js'
export { sseFaultEvent, sseJsonEvent, isTerminalFault, isTerminalEventId, terminalEventId, DEFAULT_TERMINAL_ID_PREFIX } from './lib/sse-event.js'
export type { SseFaultEventOptions, SseEventFields } from './lib/sse-event.js'
export { faultlineWebsocket } from './plugins/websocket.js'
export type { FaultlineWebsocketOptions, FaultlineHeartbeatOptions } from './plugins/websocket.js'
export { closeCodeFor, closeReason, truncateUtf8, defaultCloseCode, SHUTDOWN_CLOSE_CODE, SHUTDOWN_REASON, MAX_CLOSE_REASON_BYTES } from './lib/close-codes.js'
export type { CloseCodeMap } from './lib/close-codes.js'
