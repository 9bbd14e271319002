import { readFileSync } from 'node:fs'
import ts from 'typescript'

// The page imports `fastify-faultline/client` as plain ES modules, no
// bundler: the client's TypeScript sources (and the isomorphic core they
// import) are transpiled once, file by file, and served as they are; the
// import map in index.html points `eventsource-parser` at its own ESM build.
const ROOT = new URL('../../', import.meta.url)
const CORE = (JSON.parse(readFileSync(new URL('tsconfig.core.json', ROOT), 'utf8')) as { files: string[] }).files

export interface Module { type: string, body: string }

const cache = new Map<string, Module>()

/** `/client/index.js`, `/lib/fault.js`, … or `/vendor/eventsource-parser.js`; undefined for anything else. */
export function clientModule (path: string): Module | undefined {
  const hit = cache.get(path)
  if (hit !== undefined) return hit
  let body: string | undefined
  if (path === '/vendor/eventsource-parser.js') {
    body = readFileSync(new URL('node_modules/eventsource-parser/dist/index.js', ROOT), 'utf8')
  } else {
    const source = /^\/(client\/[a-z-]+|lib\/[a-z-]+)\.js$/.exec(path)?.[1]
    const file = source === undefined ? undefined : `${source}.ts`
    if (file === undefined || !(file.startsWith('client/') || CORE.includes(file))) return undefined
    let text: string
    try {
      text = readFileSync(new URL(file, ROOT), 'utf8')
    } catch {
      return undefined
    }
    body = ts.transpileModule(text, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText
  }
  const module = { type: 'text/javascript; charset=utf-8', body }
  cache.set(path, module)
  return module
}
