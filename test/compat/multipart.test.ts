import t from 'tap'
import multipart from '@fastify/multipart'
import { UnsupportedMediaTypeError } from '../../index.js'
import { guardProcess } from '../helpers/guard.js'
import { compatApp, isProblem } from '../helpers/compat-app.js'

guardProcess(t)

const BOUNDARY = '----faultline-compat'

/** A multipart/form-data body with one file part per entry. */
function form (...files: Array<{ field: string, name: string, type: string, data: string | Buffer }>): { payload: Buffer, headers: Record<string, string> } {
  const parts: Buffer[] = []
  for (const f of files) {
    parts.push(Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="${f.field}"; filename="${f.name}"\r\nContent-Type: ${f.type}\r\n\r\n`))
    parts.push(Buffer.from(f.data))
    parts.push(Buffer.from('\r\n'))
  }
  parts.push(Buffer.from(`--${BOUNDARY}--\r\n`))
  return { payload: Buffer.concat(parts), headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` } }
}

t.test('@fastify/multipart: size limits are 413, a wrong type 406 or 415, all problems', async t => {
  const { app, reports } = await compatApp(t, async app => {
    await app.register(multipart, { limits: { fileSize: 1024, files: 1 } })
    app.post('/upload', async (request) => {
      const data = await request.file()
      if (data === undefined) return { files: 0 }
      if (data.mimetype !== 'image/png') {
        // A route that refuses a type says so with the 415 fault.
        data.file.resume()
        throw new UnsupportedMediaTypeError(`Only image/png is accepted, got ${data.mimetype}`)
      }
      const buffer = await data.toBuffer()
      return { name: data.filename, bytes: buffer.length }
    })
    app.post('/uploads', async (request) => {
      let n = 0
      for await (const part of request.files()) {
        await part.toBuffer()
        n++
      }
      return { files: n }
    })
  })

  const ok = await app.inject({ method: 'POST', url: '/upload', ...form({ field: 'f', name: 'a.png', type: 'image/png', data: 'x'.repeat(100) }) })
  t.equal(ok.statusCode, 200)
  t.same(ok.json(), { name: 'a.png', bytes: 100 })

  const big = await app.inject({ method: 'POST', url: '/upload', ...form({ field: 'f', name: 'a.png', type: 'image/png', data: 'x'.repeat(5000) }) })
  t.equal(big.statusCode, 413, 'a file over limits.fileSize')
  t.ok(isProblem(big.headers['content-type']))
  t.match(big.json(), { code: 'PAYLOAD_TOO_LARGE', title: 'Payload Too Large', detail: 'request file too large' })

  const many = await app.inject({
    method: 'POST',
    url: '/uploads',
    ...form({ field: 'a', name: 'a.png', type: 'image/png', data: 'a' }, { field: 'b', name: 'b.png', type: 'image/png', data: 'b' })
  })
  t.equal(many.statusCode, 413, 'more files than limits.files')
  t.match(many.json(), { code: 'PAYLOAD_TOO_LARGE', detail: 'reach files limit' })

  const gif = await app.inject({ method: 'POST', url: '/upload', ...form({ field: 'f', name: 'a.gif', type: 'image/gif', data: 'GIF89a' }) })
  t.equal(gif.statusCode, 415, 'a file type the route refuses')
  t.match(gif.json(), { code: 'UNSUPPORTED_MEDIA_TYPE', detail: 'Only image/png is accepted, got image/gif' })

  const notMultipart = await app.inject({ method: 'POST', url: '/upload', payload: { a: 1 } })
  t.equal(notMultipart.statusCode, 406, 'request.file() on a JSON body: multipart\'s own 406')
  t.ok(isProblem(notMultipart.headers['content-type']))
  t.match(notMultipart.json(), { code: 'NOT_ACCEPTABLE', detail: 'the request is not multipart' })

  const unknownType = await app.inject({ method: 'POST', url: '/upload', payload: '<a/>', headers: { 'content-type': 'application/xml' } })
  t.equal(unknownType.statusCode, 415, 'a body no parser accepts: Fastify\'s 415')
  t.match(unknownType.json(), { code: 'UNSUPPORTED_MEDIA_TYPE' })

  t.same(reports.map(r => r.fault.status), [413, 413, 415, 406, 415], 'each reported once')
  t.same(reports.map(r => (r.fault.cause as { code?: string } | undefined)?.code), ['FST_REQ_FILE_TOO_LARGE', 'FST_FILES_LIMIT', undefined, 'FST_INVALID_MULTIPART_CONTENT_TYPE', 'FST_ERR_CTP_INVALID_MEDIA_TYPE'], 'the plugin\'s code is kept as the cause')
})
