import { execFile } from 'node:child_process'
import { existsSync, mkdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import type { Harness } from '../lib/harness.js'
import { faultlineRoot } from '../lib/plugins.js'
import type { Case, Row, Variant } from '../lib/types.js'

// Case i: what `import 'fastify-faultline'` costs, in a fresh `node` per
// sample, against the compiled package, since that is what apps load: the
// code under test when it is compiled (dist/, the default), else built here
// from those sources with tsc, as `npm run build` does, into
// node_modules/.cache. Two pairs: import only (fastify + the package root vs fastify with
// the peers faultline registers), and import + register every plugin + ready
// (the peer plugins and the problem serializer now load at register time).
// Figures are the process's CPU time for that step, in ms.

const run = promisify(execFile)
// The repository (its node_modules resolve fastify and the peers).
const root = fileURLToPath(new URL('../../', import.meta.url))
const underTest = fileURLToPath(faultlineRoot)
const compiled = existsSync(`${underTest}index.js`)
const outDir = compiled ? underTest.replace(/\/$/, '') : `${root}node_modules/.cache/faultline-bench-dist`

const PEERS = "await import('fastify'); await import('fastify-plugin'); await import('@fastify/sse'); await import('@fastify/websocket')"

function scripts (): Record<'import' | 'ready', Record<Variant, string>> {
  const index = JSON.stringify(`${outDir}/index.js`)
  return {
    import: {
      baseline: PEERS,
      faultline: `await import('fastify'); await import(${index})`
    },
    ready: {
      baseline: `${PEERS}
        const app = (await import('fastify')).default()
        await app.register((await import('@fastify/sse')).default)
        await app.register((await import('@fastify/websocket')).default)
        await app.ready()`,
      faultline: `const f = await import(${index})
        const app = (await import('fastify')).default()
        for (const p of [f.faultlineHttp, f.faultlineStream, f.faultlineSse, f.faultlineWebsocket, f.faultlineBackground]) await app.register(p)
        await app.ready()`
    }
  }
}

/** CPU ms a fresh node process spends on `body`. */
async function sample (body: string): Promise<number> {
  const code = `const c0 = process.cpuUsage(); ${body}; const c = process.cpuUsage(c0); console.log((c.user + c.system) / 1000)`
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', code], { cwd: root })
  return Number(stdout.trim())
}

export const importTime: Case = {
  id: 'i',
  title: 'import time: fastify + the package root vs fastify + its peers, fresh node per sample',
  requires: ['http'],
  build () { throw new Error('case i runs no server') },
  async bench (h: Harness): Promise<Row[]> {
    if (!compiled) {
      mkdirSync(outDir, { recursive: true })
      h.log(`building the package into ${outDir}`)
      await run(process.execPath, [`${root}node_modules/typescript/bin/tsc`, '-p', `${underTest}tsconfig.build.json`, '--outDir', outDir, '--declaration', 'false', '--declarationMap', 'false'], { cwd: underTest })
    }
    const all = scripts()
    const samples = h.settings.quick ? 5 : 15
    const rows: Row[] = []
    for (const step of ['import', 'ready'] as const) {
      const out: Record<Variant, number[]> = { baseline: [], faultline: [] }
      await sample(all[step].baseline)
      await sample(all[step].faultline)
      for (let i = 0; i < samples; i++) {
        for (const variant of ['baseline', 'faultline'] as const) out[variant].push(await sample(all[step][variant]))
      }
      rows.push(step === 'import'
        ? { name: 'i import: fastify + fastify-faultline vs fastify + fastify-plugin, @fastify/sse, @fastify/websocket', unit: 'ms', better: 'lower', baseline: out.baseline, faultline: out.faultline }
        : { name: 'i import + register every plugin + ready vs the same with @fastify/sse and @fastify/websocket', unit: 'ms', better: 'lower', detail: true, baseline: out.baseline, faultline: out.faultline })
    }
    return rows
  }
}
