// The package as an npm user gets it: `npm pack`, installed into a fresh
// project, then a strict TypeScript app and every ```ts sample of the README
// and docs/*.md compiled against it with `tsc --strict` (library types
// checked too: what `tsc --strict app.ts` does). The install is offline: the
// consumer's lockfile is derived from this repo's, so `npm ci --offline` takes
// every package from the npm cache that this repo's `npm ci` filled.
import t from 'tap'
import { execFile } from 'node:child_process'
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { external } from './helpers/external.js'

const run = promisify(execFile)
const root = fileURLToPath(new URL('..', import.meta.url))
const fixture = join(root, 'test', 'fixtures', 'consumer')
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')

// npm ci and tsc over Fastify's and Node's types take a while on a shared machine.
t.setTimeout(600_000)

interface LockEntry {
  version: string
  resolved?: string
  integrity?: string
  license?: string
  dependencies?: Record<string, string>
  optionalDependencies?: Record<string, string>
  peerDependencies?: Record<string, string>
  peerDependenciesMeta?: Record<string, { optional?: boolean }>
  [key: string]: unknown
}

interface Manifest {
  name: string
  version: string
  license: string
  engines: Record<string, string>
  files: string[]
  dependencies: Record<string, string>
  peerDependencies: Record<string, string>
  devDependencies: Record<string, string>
}

const pkg: Manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const lock: { packages: Record<string, LockEntry> } = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'))

/** Where Node (and npm's layout) finds `name` from the package at `path`. */
function resolveFrom (path: string, name: string): string | undefined {
  let base = path
  for (;;) {
    const candidate = `${base === '' ? '' : base + '/'}node_modules/${name}`
    if (lock.packages[candidate] !== undefined) return candidate
    if (base === '') return undefined
    const up = base.lastIndexOf('/node_modules/')
    base = up === -1 ? '' : base.slice(0, up)
  }
}

/**
 * The lockfile entries of everything `names` need, at the paths this repo's
 * lockfile puts them, with their registry tarball URLs (this repo's lockfile
 * may omit them), so `npm ci --offline` resolves nothing new.
 */
function closure (names: string[], registry: string): Record<string, LockEntry> {
  const out: Record<string, LockEntry> = {}
  const todo = names.map(name => {
    const found = resolveFrom('', name)
    if (found === undefined) throw new Error(`${name} is not in package-lock.json`)
    return found
  })
  for (let path = todo.pop(); path !== undefined; path = todo.pop()) {
    if (out[path] !== undefined) continue
    const { dev, peer, optional, devOptional, ...entry } = lock.packages[path]!
    const name = path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length)
    entry.resolved ??= `${registry}${name}/-/${name.split('/').pop()}-${entry.version}.tgz`
    out[path] = entry
    const optionalNames = new Set([
      ...Object.keys(entry.optionalDependencies ?? {}),
      ...Object.entries(entry.peerDependenciesMeta ?? {}).filter(([, meta]) => meta.optional === true).map(([dep]) => dep)
    ])
    for (const dep of Object.keys({ ...entry.dependencies, ...entry.optionalDependencies, ...entry.peerDependencies })) {
      const found = resolveFrom(path, dep)
      if (found !== undefined) todo.push(found)
      else if (!optionalNames.has(dep)) throw new Error(`${path} needs ${dep}, which is not in package-lock.json`)
    }
  }
  return out
}

/** Every ```ts block of a markdown file, with the line it starts on. */
function tsBlocks (markdown: string): Array<{ line: number, code: string }> {
  const blocks: Array<{ line: number, code: string }> = []
  const lines = markdown.split('\n')
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.trim() !== '```ts') continue
    const end = lines.indexOf('```', i + 1)
    blocks.push({ line: i + 2, code: lines.slice(i + 1, end).join('\n') })
    i = end
  }
  return blocks
}

function filesUnder (dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter(d => d.isFile()).map(d => join(d.parentPath, d.name))
}

const consumer = await external(t, 'the packed package in a fresh project', async () => {
  if (!existsSync(join(root, 'dist', 'index.js'))) throw new Error('dist/ is missing: run `npm run build` (npm test does) before tap')
  const dir = mkdtempSync(join(tmpdir(), 'faultline-consumer-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  // --ignore-scripts: no `prepack` rebuild of dist/ while other test files read it.
  const packed = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: root })
  const [{ filename, files }] = JSON.parse(packed.stdout) as [{ filename: string, files: Array<{ path: string }> }]
  const app = join(dir, 'app')
  const tarball = `file:../${filename}`
  const registry = (await run('npm', ['config', 'get', 'registry'], { cwd: root })).stdout.trim().replace(/\/?$/, '/')
  const manifest = {
    name: 'consumer',
    version: '1.0.0',
    private: true,
    type: 'module',
    dependencies: { 'fastify-faultline': tarball, fastify: pkg.devDependencies.fastify },
    devDependencies: { '@types/node': pkg.devDependencies['@types/node'] }
  }
  const packages = {
    '': { name: manifest.name, version: manifest.version, dependencies: manifest.dependencies, devDependencies: manifest.devDependencies },
    'node_modules/fastify-faultline': {
      version: pkg.version,
      resolved: tarball,
      license: pkg.license,
      dependencies: pkg.dependencies,
      peerDependencies: pkg.peerDependencies,
      engines: pkg.engines
    },
    ...closure([...Object.keys(pkg.dependencies), ...Object.keys(pkg.peerDependencies), '@types/node'], registry)
  }
  mkdirSync(join(app, 'samples'), { recursive: true })
  writeFileSync(join(app, 'package.json'), JSON.stringify(manifest, null, 2))
  writeFileSync(join(app, 'package-lock.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', lockfileVersion: 3, requires: true, packages }, null, 2))
  await run('npm', ['ci', '--offline', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: app })
  return { app, files: files.map(f => f.path), installed: join(app, 'node_modules', 'fastify-faultline') }
})

consumer.test('the tarball ships the built code, its sources (in the maps) and the docs, no images', async (t, { files }) => {
  const unexpected = files.filter(path => !/^(dist\/.+\.(js|d\.ts|js\.map)|docs\/[\w-]+\.md|README\.md|package\.json)$/.test(path))
  t.same(unexpected, [], 'nothing but dist/, docs/*.md, README.md and package.json')
  t.ok(files.includes('dist/index.js') && files.includes('dist/index.d.ts'))
  t.notOk(files.some(path => /\.(png|jpe?g|gif|svg|webp)$/.test(path)), 'no images (docs/demo.png stays in the repository)')
  const docs = readdirSync(join(root, 'docs')).filter(name => name.endsWith('.md')).map(name => `docs/${name}`)
  t.same(files.filter(path => path.startsWith('docs/')).sort(), docs.sort(), 'every docs page')
})

consumer.test('every stack frame can be opened: each source map carries its TypeScript source', async (t, { installed }) => {
  const scripts = filesUnder(join(installed, 'dist')).filter(path => path.endsWith('.js'))
  t.ok(scripts.length > 10)
  for (const script of scripts) {
    const name = relative(installed, script)
    t.match(readFileSync(script, 'utf8'), /\/\/# sourceMappingURL=[\w.-]+\.js\.map\n?$/, `${name} points at its map`)
    const map = JSON.parse(readFileSync(`${script}.map`, 'utf8')) as { sources: string[], sourcesContent?: string[] }
    t.equal(map.sources.length, 1, name)
    const source = resolve(join(root, relative(installed, join(script, '..'))), map.sources[0]!)
    t.equal(map.sourcesContent?.[0], readFileSync(source, 'utf8'), `${name}: the map holds ${relative(root, source)} as it is in the repository`)
  }
})

consumer.test('a strict TypeScript app and every README and docs sample compile against it', async (t, { app, installed }) => {
  for (const name of ['app.ts', 'tsconfig.json']) copyFileSync(join(fixture, name), join(app, name))
  // What the samples use without declaring it (globals.d.ts, augment.d.ts) and the modules they import (shared/).
  cpSync(join(fixture, 'samples'), join(app, 'samples'), { recursive: true })
  const pages = ['README.md', ...readdirSync(join(installed, 'docs')).filter(name => name.endsWith('.md')).map(name => `docs/${name}`)]
  let count = 0
  for (const page of pages) {
    for (const { line, code } of tsBlocks(readFileSync(join(installed, page), 'utf8'))) {
      // One module per sample: a sample may declare `app` itself or import what another does not.
      writeFileSync(join(app, 'samples', `${page.replace(/\W/g, '-')}-${line}.ts`), `${code}\nexport {}\n`)
      count++
    }
  }
  t.ok(count >= 20, `${count} samples from ${pages.length} pages`)
  const result = await run(process.execPath, [tsc, '-p', app], { cwd: app }).then(
    () => ({ ok: true, output: '' }),
    (err: { stdout: string, stderr: string }) => ({ ok: false, output: err.stdout + err.stderr })
  )
  t.ok(result.ok, result.ok ? 'tsc --strict passes' : `tsc --strict fails (samples are named <page>-<line of the sample>.ts):\n${result.output}`)
})
