import type { FastifyRequest } from 'fastify'
import type { Fault, FaultContext, FaultReporter } from '../../index.js'

/** One reported fault as the demo page shows it: what an `onFault` reporter (Sentry, say) receives. */
export interface RecentFault {
  seq: number
  at: string
  code: string
  status: number
  /** The server-side message: reporters see it even when the client got only the title. */
  message: string
  exposedToClient: boolean
  transport: string
  phase: string
  requestId: string | undefined
  /** The background task's name, for transport `background`. */
  task?: string
}

export interface RecentFaults {
  /** Give this to `faultlineHttp({ onFault })`. */
  reporter: FaultReporter<FastifyRequest>
  /** Newest last; only those with `seq > after` when given. */
  list: (after?: number) => RecentFault[]
}

/** A bounded in-memory reporter, so the page can show what the server reported (e.g. work after the response). */
export function createRecentFaults (limit = 50): RecentFaults {
  const kept: RecentFault[] = []
  let seq = 0
  function reporter (fault: Fault, context: FaultContext<FastifyRequest>): void {
    kept.push({
      seq: ++seq,
      at: new Date().toISOString(),
      code: fault.code,
      status: fault.status,
      message: fault.message,
      exposedToClient: fault.expose,
      transport: context.transport,
      phase: context.phase,
      requestId: context.request?.id,
      ...(typeof context.task === 'string' ? { task: context.task } : {})
    })
    if (kept.length > limit) kept.shift()
  }
  return {
    reporter,
    list: (after = 0) => kept.filter(f => f.seq > after)
  }
}
