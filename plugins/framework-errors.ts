import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify'

/**
 * For Fastify's `frameworkErrors` option: errors Fastify raises before a
 * route is found (a malformed URL such as `/%ZZ`, a failing async
 * constraint) never reach an error handler, so they would go out as
 * Fastify's plain JSON. With this, they are problem+json and reported once,
 * like every other fault.
 *
 * ```ts
 * const app = Fastify({ frameworkErrors: faultlineFrameworkErrors })
 * await app.register(faultlineHttp)
 * ```
 */
export function faultlineFrameworkErrors (error: FastifyError, _request: unknown, reply: FastifyReply<any, any, any, any, any, any, any, any>): void {
  // `reply.server` is the root instance: faultlineHttp decorates it when registered at the root.
  const faultline = (reply.server as Partial<FastifyInstance>).faultline
  if (faultline === undefined) {
    reply.send(error)
    return
  }
  faultline.sendProblem(reply as FastifyReply, error)
}
