import type { FastifyInstance } from 'fastify'
import type { Harness } from './harness.js'

export type Variant = 'baseline' | 'faultline'
export const VARIANTS: readonly Variant[] = ['baseline', 'faultline']

/** Knobs shared by the parent (load) and the children (servers). */
export interface Settings {
  quick: boolean
  /** Logger for both variants: pino at `info` into /dev/null, or none. */
  logger: 'info' | 'off'
  /** Alternating rounds per case (each round runs baseline, then faultline). */
  rounds: number
  /** Seconds per autocannon run. */
  duration: number
  /** Bytes per raw stream run. */
  streamBytes: number
  /** Records per ndjson run. */
  records: number
  /** Events per SSE run. */
  events: number
  /** Echo messages per WebSocket run. */
  messages: number
  /** Aborting clients per churn scenario. */
  churnClients: number
}

/** One line of the result table: a metric measured on both variants. */
export interface Row {
  /** Case number and metric, e.g. `1 happy path req/s`. */
  name: string
  unit: string
  better: 'higher' | 'lower'
  /** Minimum faultline/baseline ratio (for `higher`), or maximum (for `lower`); none: reported only. */
  target?: number | undefined
  baseline: number[]
  faultline: number[]
  /**
   * Each round ran both variants at once (`Harness.together`): the ratio is
   * the median of the rounds' own ratios, not of the two medians.
   */
  paired?: boolean
  /** Secondary metrics go to the detail table. */
  detail?: boolean
  /** Overrides the ratio-based verdict (churn rows). */
  verdict?: { target: string, pass: boolean } | undefined
  /** Overrides the printed values (churn rows). */
  text?: { baseline: string, faultline: string } | undefined
}

/** What a child server can tell the parent. */
export interface CpuSample { user: number, system: number }
export interface MemorySample {
  heapUsed: number
  rss: number
  /** `process.getActiveResourcesInfo()` grouped by kind. */
  resources: Record<string, number>
  /** Open server-side connections. */
  connections: number
}

/** The faultline plugins found by import at run time. */
export type PluginName = 'http' | 'stream' | 'sse' | 'websocket' | 'background'

export interface ServerContext {
  variant: Variant
  settings: Settings
  /** Fastify options both variants share (logger, etc.). */
  fastifyOptions: Record<string, unknown>
}

export interface Case {
  id: string
  title: string
  /** Only in full runs (a diagnostic, not a target). */
  fullOnly?: boolean
  /** Faultline plugins this case needs; it is skipped when one is missing. */
  requires: readonly PluginName[]
  /** Builds the app under test in the child process (not listening yet). */
  build: (ctx: ServerContext) => Promise<FastifyInstance>
  /** Drives the load from the parent and returns the table rows. */
  bench: (h: Harness) => Promise<Row[]>
}
