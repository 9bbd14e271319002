import t from 'tap'
import { z } from 'zod'
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod'
import { ValidationError, type ValidationIssue } from '../../index.js'
import { guardProcess } from '../helpers/guard.js'
import { compatApp, isProblem } from '../helpers/compat-app.js'

guardProcess(t)

t.test('fastify-type-provider-zod: a failed schema is a ValidationError with the issues in details.errors', async t => {
  const issues: ValidationIssue[][] = []
  const { app, reports } = await compatApp(t, app => {
    app.setValidatorCompiler(validatorCompiler)
    app.setSerializerCompiler(serializerCompiler)
    app.withTypeProvider<ZodTypeProvider>().route({
      method: 'POST',
      url: '/users',
      schema: {
        querystring: z.object({ name: z.string().min(4) }),
        body: z.object({ age: z.number().int().min(0), email: z.email() }),
        response: { 200: z.object({ id: z.string() }) }
      },
      handler: async (request) => {
        const name: string = request.query.name
        const age: number = request.body.age
        return { id: `${name}-${age}` }
      }
    })
    app.withTypeProvider<ZodTypeProvider>().get('/bad-response', {
      schema: { response: { 200: z.object({ id: z.string() }) } }
    }, async () => ({ id: 42 }) as unknown as { id: string })
    app.addHook('onError', async (request, reply, error) => {
      const fault = app.faultline.report(error, { request })
      // The type says what a reporter may read: the issues, without casts.
      if (fault instanceof ValidationError) issues.push(fault.details?.errors ?? [])
    })
  })

  const ok = await app.inject({ method: 'POST', url: '/users?name=Ada%20L', payload: { age: 36, email: 'ada@example.com' } })
  t.equal(ok.statusCode, 200)
  t.same(ok.json(), { id: 'Ada L-36' })

  const query = await app.inject({ method: 'POST', url: '/users?name=Al', payload: { age: 36, email: 'ada@example.com' } })
  t.equal(query.statusCode, 400)
  t.ok(isProblem(query.headers['content-type']))
  const q = query.json()
  t.match(q, { status: 400, code: 'VALIDATION', in: 'querystring' })
  t.match(q.errors, [{ instancePath: '/name', keyword: 'too_small', message: /4/, params: { minimum: 4 } }])
  t.equal(q.errors.length, 1, 'the one zod issue')

  const body = await app.inject({ method: 'POST', url: '/users?name=Ada%20L', payload: { age: -1, email: 'nope' } })
  t.equal(body.statusCode, 400)
  const b = body.json()
  t.match(b, { code: 'VALIDATION', in: 'body' })
  t.same(b.errors.map((e: ValidationIssue) => e.instancePath).sort(), ['/age', '/email'], 'every zod issue, with its path')
  t.ok(b.errors.every((e: ValidationIssue) => typeof e.message === 'string' && typeof e.keyword === 'string'))

  t.equal(issues.length, 2)
  t.equal(issues[0]![0]!.instancePath, '/name', 'the typed details reach reporters')
  t.equal(reports.filter(r => r.fault instanceof ValidationError).length, 2, 'reported once each: the onError report and the handler\'s are one')

  const bad = await app.inject('/bad-response')
  t.equal(bad.statusCode, 500, 'a response that breaks its schema is our fault')
  t.same([bad.json().code, bad.json().detail], ['INTERNAL', 'Internal Server Error'])
  t.equal((reports.at(-1)!.fault.cause as { code: string }).code, 'FST_ERR_RESPONSE_SERIALIZATION', 'the provider\'s error is the cause, in the log')
})
