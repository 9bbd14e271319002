import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { pinServer } from './pin.js'
import type { CpuSample, MemorySample, PluginName, Settings, Variant } from './types.js'

const SERVER = fileURLToPath(new URL('../server.ts', import.meta.url))
const READY_TIMEOUT = 60_000
const CALL_TIMEOUT = 60_000

export interface ServerOptions {
  caseId: string
  variant: Variant
  settings: Settings
  /** Directory for `--cpu-prof` output; no profiling when absent. */
  profileDir?: string | undefined
}

/**
 * The app under test, in its own process: the load generator in the parent
 * then competes with it only for the second core, the same for both variants.
 */
export class Server {
  readonly variant: Variant
  port = 0
  plugins: PluginName[] = []
  private readonly child: ChildProcess
  private nextId = 0
  private readonly pending = new Map<number, { resolve: (v: any) => void, reject: (e: Error) => void }>()

  private constructor (child: ChildProcess, variant: Variant) {
    this.child = child
    this.variant = variant
    child.on('message', (msg: { id?: number, result?: unknown, error?: string }) => {
      if (msg.id === undefined) return
      const call = this.pending.get(msg.id)
      this.pending.delete(msg.id)
      if (msg.error !== undefined) call?.reject(new Error(msg.error))
      else call?.resolve(msg.result)
    })
    child.on('exit', (code) => {
      for (const call of this.pending.values()) call.reject(new Error(`bench server exited (${code})`))
      this.pending.clear()
    })
  }

  static async start (opts: ServerOptions): Promise<Server> {
    const execArgv = ['--import', 'tsx', '--expose-gc']
    // One directory per case and variant: every thread (tsx's loader runs in
    // a worker) writes its own profile there; the largest is the server's.
    if (opts.profileDir !== undefined) execArgv.push('--cpu-prof', `--cpu-prof-dir=${opts.profileDir}/case${opts.caseId}-${opts.variant}`)
    const child = fork(SERVER, [opts.caseId, opts.variant, JSON.stringify(opts.settings)], {
      execArgv,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc']
    })
    pinServer(child.pid)
    const server = new Server(child, opts.variant)
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { child.kill(); reject(new Error(`bench server for case ${opts.caseId} (${opts.variant}) did not start`)) }, READY_TIMEOUT)
      const onExit = (code: number | null): void => { clearTimeout(timer); reject(new Error(`bench server for case ${opts.caseId} (${opts.variant}) exited with ${code}`)) }
      child.once('exit', onExit)
      child.on('message', function ready (msg: { type?: string, port?: number, plugins?: PluginName[] }) {
        if (msg.type !== 'ready') return
        clearTimeout(timer)
        child.off('exit', onExit)
        child.off('message', ready)
        server.port = msg.port!
        server.plugins = msg.plugins!
        resolve()
      })
    })
    return server
  }

  get url (): string {
    return `http://127.0.0.1:${this.port}`
  }

  private call<T> (op: string): Promise<T> {
    const id = this.nextId++
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => { this.pending.delete(id); reject(new Error(`bench server: ${op} timed out`)) }, CALL_TIMEOUT)
      this.pending.set(id, {
        resolve: (v) => { clearTimeout(timer); resolve(v) },
        reject: (e) => { clearTimeout(timer); reject(e) }
      })
      this.child.send({ id, op })
    })
  }

  /** CPU time the server process has used so far, in microseconds. */
  cpu (): Promise<CpuSample> {
    return this.call('cpu')
  }

  /** Heap, RSS and open handles after the connections drained and a full GC. */
  memory (): Promise<MemorySample> {
    return this.call('memory')
  }

  /** Heap, RSS and open handles after a full GC, connections left as they are. */
  heap (): Promise<MemorySample> {
    return this.call('heap')
  }

  /** Closes the app and waits for the process to exit (so a CPU profile is written). */
  async close (): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    const exited = new Promise<void>(resolve => this.child.once('exit', () => resolve()))
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 15_000)
    this.call('close').catch(() => {})
    await exited
    clearTimeout(timer)
  }
}
