// Child process: builds one case's app (baseline or faultline), listens on
// loopback and answers the parent over IPC. See lib/child.ts.
import type { FastifyInstance } from 'fastify'
import { setTimeout as sleep } from 'node:timers/promises'
import { CASES } from './cases/index.js'
import { loadPlugins } from './lib/plugins.js'
import type { PluginName, Settings, Variant } from './lib/types.js'

const [caseId, variant, settingsJson] = process.argv.slice(2) as [string, Variant, string]
const settings = JSON.parse(settingsJson) as Settings
const benchCase = CASES.find(c => c.id === caseId)
if (benchCase === undefined) throw new Error(`unknown case ${caseId}`)

const app: FastifyInstance = await benchCase.build({
  variant,
  settings,
  fastifyOptions: {
    // The same logger for both variants: pino at info into /dev/null, as in
    // production minus the disk.
    logger: settings.logger === 'info' ? { level: 'info', file: '/dev/null' } : false,
    forceCloseConnections: true
  }
})
await app.ready()
// tsx turns source maps on, which makes every `error.stack` read map each
// frame: several times the cost of a plain stack. Production runs compiled
// JavaScript without them (Node's default), so measure that.
process.setSourceMapsEnabled(false)
await app.listen({ port: 0, host: '127.0.0.1' })
const address = app.server.address()
const plugins = Object.keys(await loadPlugins()) as PluginName[]
process.send!({ type: 'ready', port: typeof address === 'object' && address !== null ? address.port : 0, plugins: variant === 'faultline' ? plugins : [] })

function connections (): Promise<number> {
  return new Promise(resolve => app.server.getConnections((err, n) => resolve(err == null ? n : -1)))
}

async function memory (): Promise<unknown> {
  // Let aborted connections finish closing (bounded), then collect twice so
  // finalizers and weak maps settle.
  for (let i = 0; i < 200 && await connections() > 0; i++) await sleep(50)
  return await heap()
}

/** Heap and timers now, after a full GC, with connections left open (for per-connection memory). */
async function heap (): Promise<unknown> {
  for (let i = 0; i < 4; i++) {
    globalThis.gc!()
    await sleep(50)
  }
  const resources: Record<string, number> = {}
  for (const kind of process.getActiveResourcesInfo()) resources[kind] = (resources[kind] ?? 0) + 1
  const mem = process.memoryUsage()
  return { heapUsed: mem.heapUsed, rss: mem.rss, resources, connections: await connections() }
}

process.on('message', (msg: { id: number, op: string }) => {
  const reply = (result: unknown): void => { process.send!({ id: msg.id, result }) }
  const fail = (err: unknown): void => { process.send!({ id: msg.id, error: String((err as Error)?.stack ?? err) }) }
  try {
    switch (msg.op) {
      case 'cpu': {
        const { user, system } = process.cpuUsage()
        reply({ user, system })
        break
      }
      case 'memory':
        memory().then(reply, fail)
        break
      case 'heap':
        heap().then(reply, fail)
        break
      case 'close':
        reply(true)
        app.close().finally(() => process.exit(0))
        break
      default:
        fail(new Error(`unknown op ${msg.op}`))
    }
  } catch (err) {
    fail(err)
  }
})
// The parent going away (Ctrl-C, crash) must not leave servers behind.
process.on('disconnect', () => process.exit(0))
