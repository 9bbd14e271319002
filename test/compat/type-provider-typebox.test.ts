import t from 'tap'
import { Type, TypeBoxValidatorCompiler, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { ValidationError, type ValidationIssue } from '../../index.js'
import { guardProcess } from '../helpers/guard.js'
import { compatApp, isProblem } from '../helpers/compat-app.js'

guardProcess(t)

function routes (app: FastifyInstance): void {
  app.withTypeProvider<TypeBoxTypeProvider>().post('/users', {
    schema: {
      querystring: Type.Object({ name: Type.String({ minLength: 4 }) }),
      body: Type.Object({ age: Type.Integer({ minimum: 0 }), tags: Type.Array(Type.String(), { maxItems: 2 }) })
    }
  }, async (request) => {
    const name: string = request.query.name
    const age: number = request.body.age
    return { id: `${name}-${age}` }
  })
}

for (const compiler of ['Ajv (Fastify\'s default)', 'TypeBoxValidatorCompiler']) {
  t.test(`@fastify/type-provider-typebox with ${compiler}: a failed schema is a ValidationError with the issues in details.errors`, async t => {
    const { app, reports } = await compatApp(t, app => {
      if (compiler === 'TypeBoxValidatorCompiler') app.setValidatorCompiler(TypeBoxValidatorCompiler)
      routes(app)
    })

    const ok = await app.inject({ method: 'POST', url: '/users?name=Grace', payload: { age: 85, tags: [] } })
    t.equal(ok.statusCode, 200)
    t.same(ok.json(), { id: 'Grace-85' })

    const query = await app.inject({ method: 'POST', url: '/users?name=Al', payload: { age: 1, tags: [] } })
    t.equal(query.statusCode, 400)
    t.ok(isProblem(query.headers['content-type']))
    const q = query.json()
    t.match(q, { status: 400, code: 'VALIDATION', in: 'querystring', errors: [{ instancePath: '/name', keyword: 'minLength', message: /4/ }] })
    t.equal(q.errors.length, 1, 'the one issue')

    const body = await app.inject({ method: 'POST', url: '/users?name=Grace', payload: { age: 'old', tags: ['a', 'b', 'c'] } })
    t.equal(body.statusCode, 400)
    const errors = body.json().errors as ValidationIssue[]
    t.match(body.json(), { code: 'VALIDATION', in: 'body' })
    t.ok(errors.some(e => e.instancePath === '/age'), 'the bad age is named')
    t.ok(errors.every(e => typeof e.message === 'string' && e.message !== ''))

    const fault = reports.at(-1)!.fault
    t.ok(fault instanceof ValidationError)
    // Typed: a reporter reads the issues without a cast.
    const issues: ValidationIssue[] | undefined = fault instanceof ValidationError ? fault.details?.errors : undefined
    t.same(issues, errors, 'reporters get the same issues as the client')
    t.equal(reports.length, 2)
  })
}
