import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import swagger from '@fastify/swagger'
import SwaggerParser from '@apidevtools/swagger-parser'
import {
  faultlineHttp, defineFault, NotFoundError, ConflictError, InternalError, ServiceUnavailableError,
  type FaultlineHttpOptions
} from '../index.js'
import { PROBLEM_SCHEMA_ID, isFaultClass } from '../lib/openapi.js'
import { guardProcess } from './helpers/guard.js'

guardProcess(t)

const OutOfStockError = defineFault<{ sku: string, available: number }>({
  code: 'OAS_OUT_OF_STOCK',
  status: 409,
  title: 'Out of stock',
  detailsSchema: {
    type: 'object',
    description: 'The item and what is left',
    properties: { sku: { type: 'string' }, available: { type: 'integer', minimum: 0 } },
    required: ['sku', 'available']
  }
})
const DbDownError = defineFault<{ shard: string }>({
  code: 'OAS_DB_DOWN',
  status: 503,
  detailsSchema: { type: 'object', properties: { shard: { type: 'string' } }, required: ['shard'] }
})

// @fastify/swagger names shared schemas def-N unless told to use their $id.
const byId = { buildLocalReference: (json: { $id?: string }, _base: unknown, _fragment: unknown, i: number) => json.$id ?? `def-${i}` }

async function build (opts: FaultlineHttpOptions = {}, withSwagger = true, refResolver: typeof byId | undefined = byId): Promise<FastifyInstance> {
  const app = Fastify()
  if (withSwagger) await app.register(swagger, { openapi: { info: { title: 'shop', version: '1.0.0' } }, ...(refResolver === undefined ? {} : { refResolver }) })
  await app.register(faultlineHttp, opts)
  return app
}

type Doc = Record<string, any>

async function documentOf (app: FastifyInstance): Promise<Doc> {
  await app.ready()
  const doc = app.swagger() as Doc
  // The validator dereferences in place: give it a copy.
  await SwaggerParser.validate(structuredClone(doc) as never)
  return doc
}

function problem (doc: Doc, path: string, status: number, method = 'get'): Doc {
  return doc.paths[path][method].responses[String(status)]
}

t.test('a route declaring faults: a valid OpenAPI 3 document with each problem response and its code enum', async t => {
  const app = await build()
  app.get('/items/:sku', {
    faults: [NotFoundError, OutOfStockError],
    schema: { response: { 200: { type: 'object', properties: { ok: { type: 'boolean' } } } } }
  }, async () => ({ ok: true }))
  const doc = await documentOf(app)
  t.equal(doc.openapi, '3.0.3')
  t.match(doc.components.schemas[PROBLEM_SCHEMA_ID], {
    type: 'object',
    additionalProperties: true,
    properties: { type: { type: 'string' }, code: { type: 'string' }, requestId: { type: 'string' } }
  })
  t.same(doc.components.schemas[PROBLEM_SCHEMA_ID].required, ['type', 'title', 'status', 'detail', 'code'], 'exactly these are required')
  t.notOk('$id' in doc.components.schemas[PROBLEM_SCHEMA_ID], 'swagger turns $id into the component name')
  const responses = doc.paths['/items/{sku}'].get.responses
  t.same(Object.keys(responses).sort(), ['200', '404', '409', '500'])
  const notFound = problem(doc, '/items/{sku}', 404)
  t.equal(notFound.description, 'Not Found')
  const schema = notFound.content['application/problem+json'].schema
  t.same(schema.allOf[0], { $ref: `#/components/schemas/${PROBLEM_SCHEMA_ID}` })
  t.same(schema.allOf[1].properties.code, { type: 'string', enum: ['NOT_FOUND'] })
  t.same(schema.allOf[1].properties.status, { type: 'integer', enum: [404] })
  const conflict = problem(doc, '/items/{sku}', 409).content['application/problem+json'].schema
  t.same(conflict.allOf[1].properties.code.enum, ['OAS_OUT_OF_STOCK'])
  t.same(conflict.allOf[2], {
    anyOf: [{
      type: 'object',
      description: 'The item and what is left',
      properties: { code: { type: 'string', enum: ['OAS_OUT_OF_STOCK'] }, sku: { type: 'string' }, available: { type: 'integer', minimum: 0 } },
      required: ['sku', 'available']
    }]
  }, 'detailsSchema members appear, required since 4xx details are exposed')
  const internal = problem(doc, '/items/{sku}', 500).content['application/problem+json'].schema
  t.same(internal.allOf[1].properties.code.enum, ['INTERNAL'])
  t.equal(problem(doc, '/items/{sku}', 500).description, 'Internal Server Error')
  t.notOk(doc.paths['/items/{sku}'].head, 'the HEAD route is not documented (swagger default)')
})

t.test('several faults with one status share a response; the implicit 500 joins a declared 5xx', async t => {
  const app = await build()
  app.post('/orders', { faults: [ConflictError, OutOfStockError, OutOfStockError, DbDownError, InternalError] }, async () => ({}))
  const doc = await documentOf(app)
  const conflict = problem(doc, '/orders', 409, 'post')
  t.equal(conflict.description, 'Conflict / Out of stock')
  const schema = conflict.content['application/problem+json'].schema
  t.same(schema.allOf[1].properties.code.enum, ['CONFLICT', 'OAS_OUT_OF_STOCK'], 'each code once')
  t.same(schema.allOf[2].anyOf.map((v: Doc) => v.properties.code.enum[0]), ['CONFLICT', 'OAS_OUT_OF_STOCK'])
  t.notOk(schema.allOf[2].anyOf[0].required, 'a class without detailsSchema adds only its code')
  const unavailable = problem(doc, '/orders', 503, 'post').content['application/problem+json'].schema
  t.same(unavailable.allOf[2].anyOf[0].properties.shard, { type: 'string' })
  t.notOk(unavailable.allOf[2].anyOf[0].required, 'unexposed details may be absent: never required')
  t.same(problem(doc, '/orders', 500, 'post').content['application/problem+json'].schema.allOf[1].properties.code.enum, ['INTERNAL'])
})

t.test('every documented route gets the 500 INTERNAL response; faults: false opts out; a route describing 5xx keeps its own', async t => {
  const app = await build()
  app.get('/plain', async () => 'x')
  app.get('/described', { schema: { response: { 200: { type: 'string' } } } }, async () => 'x')
  app.get('/health', { faults: false }, async () => 'ok')
  app.get('/own500', { schema: { response: { 500: { type: 'object', properties: { oops: { type: 'string' } } } } } }, async () => 'x')
  app.get('/own5xx', { schema: { response: { '5xx': { type: 'object', properties: { oops: { type: 'string' } } } } } }, async () => 'x')
  app.get('/default', { schema: { response: { default: { type: 'object', properties: { oops: { type: 'string' } } } } } }, async () => 'x')
  app.get('/range', { faults: [NotFoundError], schema: { response: { '4xx': { type: 'object', properties: { legacy: { type: 'string' } } } } } }, async () => 'x')
  app.register(async child => {
    child.get('/deep', { faults: [NotFoundError] }, async () => 'x')
  }, { prefix: '/v1' })
  const doc = await documentOf(app)
  t.same(doc.paths['/plain'].get.responses, { 200: { description: 'Default Response' } }, 'an undescribed route keeps swagger\'s default response')
  t.ok(problem(doc, '/described', 500).content['application/problem+json'], 'a route with a response schema gets the 500')
  t.ok(problem(doc, '/described', 200).content['application/json'])
  t.same(Object.keys(doc.paths['/health'].get.responses), ['200'])
  t.ok(problem(doc, '/own500', 500).content['application/json'], 'the route\'s own 500 stays')
  t.notOk(problem(doc, '/own500', 500).content['application/problem+json'])
  t.notOk(doc.paths['/own5xx'].get.responses['500'])
  t.notOk(doc.paths['/default'].get.responses['500'])
  t.ok(problem(doc, '/range', 404).content['application/problem+json'], 'an exact status next to a 4xx range')
  t.ok(doc.paths['/range'].get.responses['4XX'] ?? doc.paths['/range'].get.responses['4xx'])
  t.same(problem(doc, '/v1/deep', 404).content['application/problem+json'].schema.allOf[1].properties.code.enum, ['NOT_FOUND'], 'routes in encapsulated plugins')
})

t.test('without a refResolver the shared schema keeps its title and the document stays valid', async t => {
  const app = await build({}, true, undefined)
  app.get('/a', { faults: [NotFoundError] }, async () => 'x')
  const doc = await documentOf(app)
  const [name] = Object.keys(doc.components.schemas)
  t.equal(doc.components.schemas[name!].title, 'Problem details (RFC 9457)')
  t.same(problem(doc, '/a', 404).content['application/problem+json'].schema.allOf[0], { $ref: `#/components/schemas/${name!}` })
})

t.test('a non-fault entry in faults is a register-time error naming the route and the entry', async t => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['a string', ['NotFoundError'], /faults\[0\] of route GET \/bad: must be a fault class .*got "NotFoundError"/],
    ['an Error class', [NotFoundError, TypeError], /faults\[1\] of route GET \/bad: must be a fault class .*got a function/],
    ['a fault instance', [new NotFoundError()], /faults\[0\].*got an object \(a fault instance: list its class instead\)/],
    ['null', [null], /faults\[0\].*got null/],
    ['not an array', NotFoundError, /faults of route GET \/bad: must be an array of fault classes .* or false, got a function/],
    ['true', true, /must be an array of fault classes/],
    ['a hostile proxy', [new Proxy(function () {}, { get () { throw new Error('trap') } })], /faults\[0\].*got a function/]
  ]
  for (const [name, faults, message] of cases) {
    const app = await build()
    t.throws(() => app.get('/bad', { faults } as never, async () => 'x'), { code: 'FST_FAULTLINE_INVALID_OPTION', message }, name)
  }
  const app = await build({}, false)
  t.throws(() => app.get('/bad', { faults: ['x'] } as never, async () => 'x'), { code: 'FST_FAULTLINE_INVALID_OPTION' }, 'checked without swagger too')
})

t.test('a declared status the route already describes is a register-time error (no silent merge)', async t => {
  const app = await build()
  t.throws(() => app.get('/dup', {
    faults: [NotFoundError],
    schema: { response: { 404: { type: 'object', properties: { mine: { type: 'string' } } } } }
  }, async () => 'x'), {
    code: 'FST_FAULTLINE_INVALID_OPTION',
    message: /faults of route GET \/dup: the route's schema.response already describes status 404, which NotFoundError would add.*\$ref: 'faultline-problem#'/
  })
})

t.test('a detailsSchema describing a reserved problem member is a register-time error', async t => {
  const Sneaky = defineFault({ code: 'OAS_SNEAKY', status: 422, detailsSchema: { type: 'object', properties: { status: { type: 'string' } } } })
  const app = await build()
  t.throws(() => app.get('/s', { faults: [Sneaky] }, async () => 'x'), { code: 'FST_FAULTLINE_INVALID_OPTION', message: /detailsSchema of OasSneakyError describes the member 'status'/ })
})

t.test('the openapi option: on without swagger, off with it; auto leaves undocumented apps untouched', async t => {
  const seen: Record<string, unknown> = {}
  const spy = (app: FastifyInstance): void => { app.addHook('onRoute', r => { if (r.method === 'GET') seen[r.url] = r.schema }) }

  const forced = await build({ openapi: true }, false)
  spy(forced)
  forced.get('/forced', { faults: [NotFoundError] }, async () => 'x')
  await forced.ready()
  t.ok((seen['/forced'] as { response: Record<string, unknown> }).response['404'], 'openapi: true adds responses without swagger')

  const auto = await build({}, false)
  spy(auto)
  auto.get('/auto', { faults: [NotFoundError] }, async () => 'x')
  auto.get('/auto-plain', async () => 'x')
  await auto.ready()
  t.equal(seen['/auto'], undefined, 'no swagger: no schema added, no serializer compiled')
  t.equal(seen['/auto-plain'], undefined)
  t.same(auto.faultline.catalogJson().find(e => e.code === 'NOT_FOUND')?.routes, ['GET /auto'], 'declarations still reach the catalog')

  const off = await build({ openapi: false })
  off.get('/off', { faults: [NotFoundError] }, async () => 'x')
  const doc = await documentOf(off)
  t.same(Object.keys(doc.paths['/off'].get.responses), ['200'])

  await t.rejects(async () => { await Fastify().register(faultlineHttp, { openapi: 'yes' as never }) }, { code: 'FST_FAULTLINE_INVALID_OPTION', message: /openapi: must be a boolean/ })
})

t.test('a schema the user already added under the problem $id is kept', async t => {
  const app = Fastify()
  app.addSchema({ $id: PROBLEM_SCHEMA_ID, type: 'object', properties: { code: { type: 'string' } }, additionalProperties: true })
  await app.register(faultlineHttp, { openapi: true })
  app.get('/a', { faults: [NotFoundError] }, async () => { throw new NotFoundError('gone') })
  await app.ready()
  t.same(Object.keys((app.getSchema(PROBLEM_SCHEMA_ID) as { properties: object }).properties), ['code'])
  t.equal((await app.inject('/a')).json().detail, 'gone')
})

t.test('response schemas do not change how problem bodies serialize: every member, byte for byte', async t => {
  const app = await build()
  const fault = (): InstanceType<typeof OutOfStockError> => new OutOfStockError('sold out', {
    details: { sku: 'A-1', available: 0, warehouse: 'north', nested: { a: [1, 'two'] }, note: null } as never,
    retryAfter: 7
  })
  app.get('/declared', { faults: [OutOfStockError] }, async () => { throw fault() })
  app.get('/plain', { faults: false }, async () => { throw fault() })
  app.get('/unexposed', { faults: [DbDownError] }, async () => { throw new DbDownError('shard 3 down', { details: { shard: 's3' } }) })
  // A user's own body with status 500 and application/json is not a problem: the problem schema must not touch it.
  app.get('/own', async (_req, reply) => reply.code(500).send({ anything: 'goes', count: 2 }))
  await documentOf(app)
  const declared = await app.inject('/declared')
  const plain = await app.inject('/plain')
  t.equal(declared.statusCode, 409)
  t.equal(declared.headers['content-type'], 'application/problem+json; charset=utf-8')
  t.equal(declared.body.replace('/declared', '/x').replace('req-1', 'req-n'), plain.body.replace('/plain', '/x').replace('req-2', 'req-n'), 'identical bytes with and without the response schema')
  t.same(declared.json(), {
    type: 'about:blank',
    title: 'Out of stock',
    status: 409,
    detail: 'sold out',
    instance: '/declared',
    code: 'OAS_OUT_OF_STOCK',
    requestId: 'req-1',
    retryAfter: 7,
    sku: 'A-1',
    available: 0,
    warehouse: 'north',
    nested: { a: [1, 'two'] },
    note: null
  }, 'members outside the detailsSchema are kept too')
  t.same((await app.inject('/unexposed')).json(), {
    type: 'about:blank', title: 'Service Unavailable', status: 503, detail: 'Service Unavailable', instance: '/unexposed', code: 'OAS_DB_DOWN', requestId: 'req-3'
  }, 'redaction unchanged: unexposed details stay out')
  const own = await app.inject('/own')
  t.same(own.json(), { anything: 'goes', count: 2 })
})

t.test('isFaultClass', async t => {
  t.ok(isFaultClass(NotFoundError))
  t.ok(isFaultClass(class extends ServiceUnavailableError {}))
  t.notOk(isFaultClass(Error))
  t.notOk(isFaultClass(() => {}))
  t.notOk(isFaultClass(class { static code = 'X'; static status = 404 }))
  t.notOk(isFaultClass(class extends NotFoundError { static override status = 200 }), 'a subclass with a status no fault may carry')
})

t.test('defineFault checks detailsSchema at definition time', async t => {
  const cyclic: Record<string, unknown> = { type: 'object' }
  cyclic.self = cyclic
  const bad: Array<[unknown, RegExp]> = [
    [null, /detailsSchema must be an object JSON schema .*got null/],
    [[], /got an array/],
    ['object', /got "object"/],
    [{ type: 'string' }, /detailsSchema must be an object JSON schema/],
    [cyclic, /detailsSchema must be plain JSON \(no cycles, no BigInt\)/],
    [{ type: 'object', properties: { n: { default: 1n } } }, /plain JSON/]
  ]
  for (const [detailsSchema, message] of bad) {
    t.throws(() => defineFault({ code: 'OAS_BAD_SCHEMA', status: 400, detailsSchema: detailsSchema as never }), { code: 'FST_FAULTLINE_INVALID_FAULT', message })
  }
  t.equal(defineFault({ code: 'OAS_NO_TYPE', status: 400, detailsSchema: { properties: {} } }).detailsSchema?.properties !== undefined, true, 'type may be left out')
  t.equal(NotFoundError.detailsSchema, undefined)
})
