import t, { type Test } from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import fastifyStatic from '@fastify/static'
import { guardProcess } from '../helpers/guard.js'
import { compatApp, isProblem } from '../helpers/compat-app.js'
import { readBody } from '../helpers/stream-app.js'

guardProcess(t)

const SIZE = 300_000

async function publicDir (t: Test): Promise<string> {
  const root = t.testdir({ 'hello.txt': 'hello', 'big.bin': Buffer.alloc(SIZE, 7) })
  return path.resolve(root)
}

t.test('@fastify/static: a missing file is a 404 problem; its 403 and 416 are problems with their headers', async t => {
  const root = await publicDir(t)
  const { app, reports } = await compatApp(t, async app => {
    await app.register(fastifyStatic, { root, prefix: '/public/' })
  })

  const ok = await app.inject('/public/hello.txt')
  t.equal(ok.statusCode, 200)
  t.equal(ok.body, 'hello')

  const missing = await app.inject('/public/nope.txt')
  t.equal(missing.statusCode, 404)
  t.ok(isProblem(missing.headers['content-type']))
  t.match(missing.json(), { code: 'NOT_FOUND', instance: '/public/nope.txt' })

  const nul = await app.inject('/public/%00')
  t.equal(nul.statusCode, 403, 'a malicious path')
  t.match(nul.json(), { code: 'FORBIDDEN', detail: 'Forbidden' })

  const range = await app.inject({ url: '/public/hello.txt', headers: { range: 'bytes=100-200' } })
  t.equal(range.statusCode, 416)
  t.ok(isProblem(range.headers['content-type']))
  t.equal(range.headers['content-range'], 'bytes */5', 'the error\'s Content-Range is kept, as Fastify\'s own handler would')
  t.match(range.json(), { code: 'RANGE_NOT_SATISFIABLE' })
  t.same(reports.map(r => r.fault.status), [404, 403, 416])
})

t.test('@fastify/static: a file read that fails mid-body is truncation, never a clean end', async t => {
  const root = await publicDir(t)
  const { url, lines } = await compatApp(t, async app => {
    await app.register(fastifyStatic, { root, prefix: '/public/' })
  }, { listen: true })

  // A disk error after the first 64 KiB: every later read of the file fails with EIO.
  const realRead = fs.read
  let failed = 0
  const patched = function (this: unknown, ...args: unknown[]): void {
    const position = args[4]
    const callback = args.at(-1) as (err: Error | null) => void
    if (typeof position === 'number' && position >= 65536) {
      failed++
      process.nextTick(callback, Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO', errno: -5, syscall: 'read' }))
      return
    }
    (realRead as (...a: unknown[]) => void).apply(this, args)
  }
  fs.read = patched as unknown as typeof fs.read
  t.teardown(() => { fs.read = realRead })

  const res = await fetch(`${url}/public/big.bin`)
  t.equal(res.status, 200, 'the headers went out before the read failed')
  t.equal(res.headers.get('content-length'), String(SIZE))
  const { text, error } = await readBody(res)
  fs.read = realRead
  t.ok(failed > 0, 'the read failed')
  t.ok(error instanceof TypeError, 'the client sees an incomplete body (fetch: terminated)')
  t.ok(text.length < SIZE, `got ${text.length} of ${SIZE} bytes`)
  t.ok(lines.some(l => l.level >= 40 && /response terminated with an error/.test(String(l.msg))), 'Fastify logs it itself (faultline never sees an error @fastify/static streams)')
})
