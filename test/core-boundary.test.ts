// The isomorphic core (and, once it exists, the client) must load in a
// browser unbundled: no Node built-in, no Fastify, anywhere in its import
// graph. Three guards: this walk over the real import graph, the lint rule
// (checked here to fire), and tsconfig.core.json (no Node types; `npm run typecheck`).
import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { builtinModules } from 'node:module'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ESLint } from 'eslint'

const root = fileURLToPath(new URL('..', import.meta.url))
const { ISOMORPHIC } = await import(new URL('../eslint.config.js', import.meta.url).href) as { ISOMORPHIC: string[] }
const CORE = ['lib/fault.ts', 'lib/status-titles.ts', 'lib/errors.ts', 'lib/problem.ts', 'lib/close-codes.ts', 'lib/range.ts', 'lib/core-exports.ts']
const ENTRIES = [...CORE, 'client/index.ts'].filter(f => existsSync(join(root, f)))
const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|(?:^|\n)\s*import\s*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/g

/** Every specifier the graph reaches from `entries`, with the file that imports it. */
function importGraph (entries: string[]): Map<string, string> {
  const bare = new Map<string, string>()
  const seen = new Set<string>()
  const queue = entries.map(f => resolve(root, f))
  while (queue.length > 0) {
    const file = queue.pop()!
    if (seen.has(file)) continue
    seen.add(file)
    const source = readFileSync(file, 'utf8')
    for (const m of source.matchAll(IMPORT)) {
      const spec = m[1] ?? m[2] ?? m[3]!
      if (spec.startsWith('.')) queue.push(resolve(dirname(file), spec.replace(/\.js$/, '.ts')))
      else bare.set(spec, relative(root, file))
    }
  }
  return bare
}

t.test('the core and the client import no Node built-in and no Fastify', async t => {
  const imports = importGraph(ENTRIES)
  for (const [spec, from] of imports) {
    const name = spec.replace(/^node:/, '').split('/')[0]!
    t.notOk(spec.startsWith('node:') || builtinModules.includes(name), `${from} imports the Node built-in ${spec}`)
    t.notOk(/^(fastify|fastify-plugin|fast-json-stringify|@fastify\/)/.test(spec), `${from} imports the server-only ${spec}`)
  }
  t.ok(ENTRIES.length >= CORE.length, 'the core files exist')
})

t.test('the graph walk sees a Node import where there is one', async t => {
  // The server's normalizer imports node:util: the walk must find it, or the test above proves nothing.
  const imports = importGraph(['lib/normalize.ts'])
  t.ok([...imports.keys()].some(s => s.startsWith('node:')))
})

t.test('the lint rule rejects Node built-ins and Fastify in the core and the client', async t => {
  const eslint = new ESLint({ cwd: root })
  for (const [filePath, code] of [
    ['lib/fault.ts', "import { STATUS_CODES } from 'node:http'\nexport const x = STATUS_CODES\n"],
    ['lib/problem.ts', "import { inspect } from 'util'\nexport const x = inspect\n"],
    ['client/index.ts', "import fastify from 'fastify'\nexport const x = fastify\n"]
  ] as const) {
    const [result] = await eslint.lintText(code, { filePath: join(root, filePath) })
    t.ok(result!.messages.some(m => m.ruleId === 'no-restricted-imports'), `${filePath}: ${code.split('\n')[0]}`)
  }
  const [server] = await eslint.lintText("import { types } from 'node:util'\nexport const x = types\n", { filePath: join(root, 'lib/normalize.ts') })
  t.notOk(server!.messages.some(m => m.ruleId === 'no-restricted-imports'), 'server-only modules may import Node built-ins')
  t.ok(CORE.every(f => ISOMORPHIC.includes(f)), 'every core file is under the lint rule')
})

t.test('tsconfig.core.json checks exactly the core, without Node types', async t => {
  const config = JSON.parse(readFileSync(join(root, 'tsconfig.core.json'), 'utf8'))
  t.same(config.compilerOptions.types, [])
  t.notOk(config.compilerOptions.lib.includes('DOM'))
  t.same(config.files, CORE)
})
