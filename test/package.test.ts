// The published entry points: the built package imports from ESM and loads
// with require() from CommonJS (Node >= 20.19 loads ESM synchronously).
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))

t.test('the package manifest', async t => {
  t.equal(pkg.type, 'module')
  t.equal(pkg.engines.node, '>=20.19')
  t.equal(pkg.peerDependencies.fastify, '^5.0.0')
  t.same(pkg.exports['.'], { types: './dist/index.d.ts', default: './dist/index.js' })
  t.same(pkg.exports['./client'], { types: './dist/client/index.d.ts', default: './dist/client/index.js' })
  t.same(Object.keys(pkg.dependencies).filter(d => !/^(@fastify\/|@types\/ws$|fastify-plugin|fast-json-stringify)/.test(d)), ['eventsource-parser'], 'the client needs nothing but eventsource-parser (@types/ws is for strict TypeScript apps of the server half)')
})

t.test('fastify-faultline/client: the built client, its classes the root\'s own', async t => {
  t.ok(existsSync(new URL('../dist/client/index.d.ts', import.meta.url)), 'dist/client/index.d.ts exists')
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', `
    const client = await import('fastify-faultline/client')
    const root = await import('fastify-faultline')
    const names = ['faultFromProblem', 'faultFromResponse', 'faultFromClose', 'readBody', 'readNdjson', 'readEvents', 'connectSocket', 'shouldRetry', 'retryDelay', 'StreamTruncatedError', 'ConnectionLostError', 'RangeNotSatisfiableError']
    console.log(names.filter(n => typeof client[n] !== 'function').join(',') || 'all exported')
    console.log(client.NotFoundError === root.NotFoundError, client.Fault === root.Fault, client.faultFromProblem({ code: 'NOT_FOUND' }) instanceof root.NotFoundError)
  `], { cwd: root, encoding: 'utf8' })
  t.same(out.trim().split('\n'), ['all exported', 'true true true'])
})

t.test('dist is importable with import and with require()', async t => {
  t.ok(existsSync(new URL('../dist/index.js', import.meta.url)), 'dist/index.js exists: run `npm run build` (npm test does) before tap')
  t.ok(existsSync(new URL('../dist/index.d.ts', import.meta.url)), 'dist/index.d.ts exists')
  const names = ['faultlineHttp', 'NotFoundError', 'defineFault', 'toFault', 'isFault', 'Fault', 'InternalError']
  const esm = execFileSync(process.execPath, ['--input-type=module', '-e', `
    const m = await import('fastify-faultline')
    console.log(JSON.stringify(${JSON.stringify(names)}.map(n => typeof m[n])))
    console.log(new m.NotFoundError('x').status)
  `], { cwd: root, encoding: 'utf8' })
  t.same(esm.trim().split('\n'), [JSON.stringify(names.map(() => 'function')), '404'])
  const cjs = execFileSync(process.execPath, ['--input-type=commonjs', '--no-warnings', '-e', `
    const m = require('fastify-faultline')
    console.log(typeof m.faultlineHttp, new m.NotFoundError('x').code, m.toFault(null).status)
  `], { cwd: root, encoding: 'utf8' })
  t.equal(cjs.trim(), 'function NOT_FOUND 500')
})

t.test('fastify-faultline/otel: its own subpath, with @opentelemetry/api an optional peer the root never loads', async t => {
  t.same(pkg.exports['./otel'], { types: './dist/otel/index.d.ts', default: './dist/otel/index.js' })
  t.equal(pkg.peerDependencies['@opentelemetry/api'], '^1.9.0')
  t.same(pkg.peerDependenciesMeta['@opentelemetry/api'], { optional: true })
  t.ok(existsSync(new URL('../dist/otel/index.d.ts', import.meta.url)), 'dist/otel/index.d.ts exists')
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', `
    const { otelReporter } = await import('fastify-faultline/otel')
    console.log(typeof otelReporter, typeof otelReporter())
  `], { cwd: root, encoding: 'utf8' })
  t.equal(out.trim(), 'function function')
  // The root's module graph (dist/index.js, lib/, plugins/) never names the optional peer.
  const files = ['dist/index.js', ...['lib', 'plugins'].flatMap(dir => readdirSync(new URL(`../dist/${dir}/`, import.meta.url)).filter(f => f.endsWith('.js')).map(f => `dist/${dir}/${f}`))]
  t.same(files.filter(f => readFileSync(new URL(`../${f}`, import.meta.url), 'utf8').includes('@opentelemetry')), [])
})
