import t from 'tap'
import Fastify from 'fastify'
import { faultlineHttp, defineFault, NotFoundError, ConflictError } from '../index.js'
import { catalogDocument, catalogMarkdown } from '../lib/catalog-doc.js'
import { faultCatalog } from '../lib/fault.js'

const LockedError = defineFault({ code: 'CAT_LOCKED', status: 423, title: 'Locked', retryable: true, closeCode: 4999 })
defineFault({ code: 'CAT_QUOTA', status: 507, expose: true })

t.test('fastify.faultline.catalogJson: every code with its defaults, close code and declaring routes', async t => {
  const app = Fastify()
  await app.register(faultlineHttp)
  app.get('/users/:id', { faults: [NotFoundError, LockedError] }, async () => 'x')
  app.post('/users', { faults: [ConflictError, LockedError] }, async () => 'x')
  app.route({ method: ['PUT', 'PATCH'], url: '/users/:id', faults: [NotFoundError], handler: async () => 'x' })
  app.register(async child => { child.get('/', { faults: [NotFoundError] }, async () => 'x') }, { prefix: '/v2' })
  await app.ready()
  const doc = app.faultline.catalogJson()
  const by = (code: string): unknown => doc.find(e => e.code === code)
  t.same(by('NOT_FOUND'), {
    code: 'NOT_FOUND',
    status: 404,
    title: 'Not Found',
    name: 'NotFoundError',
    exposed: true,
    retryable: false,
    closeCode: 4404,
    routes: ['GET /users/:id', 'PUT,PATCH /users/:id', 'GET /v2']
  }, 'a GET once (its HEAD route is not listed again)')
  t.same(by('CAT_LOCKED'), { code: 'CAT_LOCKED', status: 423, title: 'Locked', name: 'CatLockedError', exposed: true, retryable: true, closeCode: 4999, routes: ['GET /users/:id', 'POST /users'] })
  t.match(by('SERVICE_UNAVAILABLE'), { exposed: false, retryable: true, closeCode: 1013 })
  t.same(doc.find(e => e.code === 'SERVICE_UNAVAILABLE')?.routes, [], 'declared by no route (t.match of [] would pass any list)')
  t.match(by('PAYLOAD_TOO_LARGE'), { closeCode: 1009 })
  t.match(by('CAT_QUOTA'), { exposed: true, retryable: false, closeCode: 1011 })
  t.same(doc.map(e => e.code), faultCatalog().map(e => e.code), 'the catalog\'s order: by status, then code')
  t.same(JSON.parse(JSON.stringify(doc)), doc, 'plain JSON')
  const md = app.faultline.catalogMarkdown()
  t.match(md, /^# Fault catalog\n\n\| code \| status \| title \| exposed \| retryable \| close code \| routes \|\n\|---\|/)
  t.match(md, '| `NOT_FOUND` | 404 | Not Found | yes | no | 4404 | `GET /users/:id`<br>`PUT,PATCH /users/:id`<br>`GET /v2` |\n')
  t.match(md, '| `SERVICE_UNAVAILABLE` | 503 | Service Unavailable | no | yes | 1013 |  |\n')
  t.equal(md.split('\n').filter(l => l.startsWith('| `')).length, doc.length, 'one row per code')
  await app.close()
})

t.test('the Markdown table cannot be broken or injected by codes, titles or routes', async t => {
  const Hostile = defineFault({ code: 'CAT_|`<b>x</b>\\', status: 418, title: 'Tea|pot\nrow\u2028<script>' })
  const doc = catalogDocument([{ code: Hostile.code, status: 418, title: Hostile.title, name: Hostile.name }], new Map([[Hostile.code, ['GET /a|b`c']]]))
  const md = catalogMarkdown(doc)
  const rows = md.split('\n').filter(l => l.startsWith('| `'))
  t.equal(rows.length, 1, 'still one row')
  t.equal(rows[0], "| `CAT_\\|'&lt;b&gt;x&lt;/b&gt;\\\\` | 418 | Tea\\|pot row &lt;script&gt; | yes | no | 4418 | `GET /a\\|b'c` |")
  t.notMatch(md, /<script>|<b>/)
})
