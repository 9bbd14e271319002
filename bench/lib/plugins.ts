import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { FastifyPluginAsync } from 'fastify'
import type * as FaultLib from '../../lib/fault.js'
import type { PluginName } from './types.js'

// The code under test is the compiled package (dist/, which `npm run bench`
// builds first): what users run. The TypeScript sources through tsx are not:
// tsx wraps every function it creates in a naming call (`keepNames`), a cost
// per closure made (per request, per connection) that plain JavaScript, the
// baselines' plugins included, never pays. FAULTLINE_ROOT=. measures the
// sources; FAULTLINE_ROOT=/path/to/a/patched/copy that copy's lib/ and
// plugins/ (how a fix to the foundation is measured before it lands).
const REPO = new URL('../../', import.meta.url)
const ROOT = process.env.FAULTLINE_ROOT === undefined || process.env.FAULTLINE_ROOT === ''
  ? compiled()
  : pathToFileURL(resolve(process.env.FAULTLINE_ROOT) + '/')

function compiled (): URL {
  const dist = new URL('dist/', REPO)
  if (!existsSync(new URL('index.js', dist))) throw new Error('bench: dist/ is missing; run `npm run build` first (npm run bench does), or set FAULTLINE_ROOT=. to measure the sources')
  return dist
}

/** Where the faultline code under test lives. */
export const faultlineRoot = ROOT.href

/** lib/fault.js of the code under test (so thrown faults are its own classes). */
export function loadFaultLib (): Promise<typeof FaultLib> {
  return import(new URL('lib/fault.js', ROOT).href)
}

// The suite grows plugin by plugin: find what exists by importing it, so the
// benchmarks run (and say what they covered) at any stage.
const EXPORTS: Record<PluginName, string> = {
  http: 'faultlineHttp',
  stream: 'faultlineStream',
  sse: 'faultlineSse',
  websocket: 'faultlineWebsocket',
  background: 'faultlineBackground'
}

export type Plugins = Partial<Record<PluginName, FastifyPluginAsync<any>>>

let cache: Promise<Plugins> | undefined

export function loadPlugins (): Promise<Plugins> {
  cache ??= (async () => {
    const found: Plugins = {}
    for (const name of Object.keys(EXPORTS) as PluginName[]) {
      // A computed specifier: the files may not exist yet when this compiles.
      const specifier = new URL(`plugins/${name}.js`, ROOT).href
      try {
        const mod = await import(specifier) as Record<string, unknown>
        const plugin = mod[EXPORTS[name]]
        if (typeof plugin === 'function') found[name] = plugin as FastifyPluginAsync<any>
      } catch (err) {
        if ((err as { code?: string }).code !== 'ERR_MODULE_NOT_FOUND') {
          process.emitWarning(`bench: plugins/${name}.ts failed to load, skipped: ${(err as Error).message}`)
        }
      }
    }
    return found
  })()
  return cache
}

/** Registration order: the http plugin first, the others depend on it. */
export const PLUGIN_ORDER: readonly PluginName[] = ['http', 'stream', 'sse', 'websocket', 'background']
