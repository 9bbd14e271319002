import { Server } from './child.js'
import { VARIANTS, type CpuSample, type Settings, type Variant } from './types.js'

// The order of the two runs of a round, alternated round by round
// (baseline first, then faultline first, ...): what one run leaves behind
// for the next (the load generator's garbage, a warm or throttled core)
// falls on both variants alike, not always on faultline's.
const BASELINE_FIRST = ['baseline', 'faultline'] as const
const FAULTLINE_FIRST = ['faultline', 'baseline'] as const

/** CPU time (user + system) a server spent between two samples, in microseconds. */
function cpuSpent (before: CpuSample, after: CpuSample): number {
  return after.user - before.user + after.system - before.system
}

export interface Measured<T> {
  value: T
  /** Server CPU time (user + system) spent during the run, in microseconds. */
  cpu: number
}

/** Starts servers for a case and runs its load in alternating rounds. */
export class Harness {
  readonly caseId: string
  readonly settings: Settings
  readonly profileDir: string | undefined
  private readonly open = new Set<Server>()

  constructor (caseId: string, settings: Settings, profileDir?: string) {
    this.caseId = caseId
    this.settings = settings
    this.profileDir = profileDir
  }

  log (message: string): void {
    process.stderr.write(`  ${message}\n`)
  }

  /** One child server per variant, started together. */
  async pair (): Promise<Record<Variant, Server>> {
    const [baseline, faultline] = await Promise.all([this.server('baseline'), this.server('faultline')])
    return { baseline, faultline }
  }

  async server (variant: Variant): Promise<Server> {
    const server = await Server.start({ caseId: this.caseId, variant, settings: this.settings, profileDir: this.profileDir })
    this.open.add(server)
    return server
  }

  async close (server: Server): Promise<void> {
    this.open.delete(server)
    await server.close()
  }

  async closeAll (): Promise<void> {
    await Promise.all([...this.open].map(s => this.close(s)))
  }

  /**
   * One untimed warm-up run per variant (JIT, lazy requires, socket pools),
   * then `rounds` rounds (default: the settings') of one run each, in
   * alternating order (baseline first in even rounds, faultline first in
   * odd ones): the machine's drift hits both sides alike. Each run also samples the
   * server's CPU time, a steadier figure than wall-clock rates.
   */
  async alternate<T> (servers: Record<Variant, Server>, once: (server: Server) => Promise<T>, rounds = this.settings.rounds): Promise<Record<Variant, Array<Measured<T>>>> {
    await once(servers.baseline)
    await once(servers.faultline)
    const out: Record<Variant, Array<Measured<T>>> = { baseline: [], faultline: [] }
    for (let round = 0; round < rounds; round++) {
      for (const variant of round % 2 === 0 ? BASELINE_FIRST : FAULTLINE_FIRST) {
        const server = servers[variant]
        const before = await server.cpu()
        const value = await once(server)
        const after = await server.cpu()
        out[variant].push({ value, cpu: cpuSpent(before, after) })
      }
    }
    return out
  }

  /**
   * One untimed warm-up, then `rounds` rounds in which both variants run at
   * the same time, sharing the servers' core. What the machine does to one
   * run (steal time, a throttled or cache-cold core) it does to the other in
   * the same seconds, so each round's pair is alike and their ratio holds
   * where runs in turn do not: an A/A pair of one app read within 2% of
   * 1.00x CPU per request this way, against 0.88x-1.14x in turn, on the
   * same host.
   * Rates are each variant's under an equal share of the core: their ratio
   * is the inverse of the CPU ratio, and latencies include the wait for the
   * other server's turn.
   */
  async together<T> (servers: Record<Variant, Server>, once: (server: Server) => Promise<T>, rounds = this.settings.rounds): Promise<Record<Variant, Array<Measured<T>>>> {
    const both = <R>(f: (server: Server) => Promise<R>): Promise<[R, R]> => Promise.all([f(servers.baseline), f(servers.faultline)])
    await both(once)
    const out: Record<Variant, Array<Measured<T>>> = { baseline: [], faultline: [] }
    for (let round = 0; round < rounds; round++) {
      const before = await both(server => server.cpu())
      const values = await both(once)
      const after = await both(server => server.cpu())
      VARIANTS.forEach((variant, i) => {
        out[variant].push({ value: values[i]!, cpu: cpuSpent(before[i]!, after[i]!) })
      })
    }
    return out
  }
}
