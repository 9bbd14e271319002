// The isomorphic core (and, once it exists, the client) must load in a
// browser unbundled: no Node built-in, no Fastify, anywhere in its import
// graph. Three guards: this walk over the real import graph, the lint rule
// (checked here to fire), and tsconfig.core.json (no Node types; `npm run typecheck`).
import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { builtinModules } from 'node:module'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ESLint } from 'eslint'
import { importGraph } from './helpers/import-graph.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const { ISOMORPHIC } = await import(new URL('../eslint.config.js', import.meta.url).href) as { ISOMORPHIC: string[] }
const CORE = ['lib/fault.ts', 'lib/status-titles.ts', 'lib/errors.ts', 'lib/problem.ts', 'lib/close-codes.ts', 'lib/range.ts', 'lib/core-exports.ts']
const ENTRIES = [...CORE, 'client/index.ts'].filter(f => existsSync(join(root, f)))

/** What the core and the client may not import: a Node built-in or a server-only package. */
function forbidden (spec: string): string | undefined {
  const name = spec.replace(/^node:/, '').split('/')[0]!
  if (spec.startsWith('node:') || builtinModules.includes(name)) return 'the Node built-in'
  if (/^(fastify|fastify-plugin|fast-json-stringify|@fastify\/)/.test(spec)) return 'the server-only'
  return undefined
}

t.test('the core and the client import no Node built-in and no Fastify', async t => {
  const { bare, computed, files } = importGraph(root, ENTRIES)
  for (const [spec, from] of bare) {
    const what = forbidden(spec)
    t.equal(what, undefined, `${from} imports ${what ?? 'only'} ${spec}`)
  }
  t.same(computed, [], 'no import() or require() with a computed specifier (the walk could not check where it leads)')
  t.ok(ENTRIES.length >= CORE.length, 'the core files exist')
  t.ok(files.includes('client/read-events.ts') && files.includes('lib/fault.ts'), `the walk reached the whole graph (${files.length} files)`)
})

t.test('the graph walk sees a Node import where there is one', async t => {
  // The server's normalizer imports node:util: the walk must find it, or the test above proves nothing.
  const { bare } = importGraph(root, ['lib/normalize.ts'])
  t.ok([...bare.keys()].some(s => s.startsWith('node:')))
})

t.test('the graph walk sees every way of reaching a module (test/fixtures/import-graph/)', async t => {
  const fixture = (name: string) => importGraph(root, [`test/fixtures/import-graph/${name}.ts`])
  for (const [name, spec] of [
    ['static', 'node:fs'], // a multi-line import
    ['side-effect', 'node:os'],
    ['reexport', 'node:path'],
    ['require', 'node:util'],
    ['require-resolve', 'worker_threads'],
    ['import-equals', 'events'],
    ['dynamic', 'node:crypto'],
    ['dynamic-template', 'node:zlib'],
    ['dynamic-relative', 'node:crypto'] // via a relative dynamic import
  ] as const) {
    const { bare, computed } = fixture(name)
    t.same([...bare.keys()], [spec], `${name}.ts reaches ${spec}`)
    t.ok(forbidden(spec), `${spec} is refused in the core`)
    t.same(computed, [], `${name}.ts: nothing computed`)
  }
  for (const [name, text] of [
    ['computed-import', 'import(name)'],
    ['computed-require', "require(prefix + 'tls')"]
  ] as const) {
    const { bare, computed } = fixture(name)
    t.same([...bare.keys()], [], `${name}.ts: no literal specifier`)
    t.same(computed, [`test/fixtures/import-graph/${name}.ts:2: ${text}`], `${name}.ts: the computed specifier is reported`)
  }
  const clean = fixture('clean')
  t.same([...clean.bare.keys(), ...clean.computed], [], 'strings and comments that look like imports are not imports')
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
