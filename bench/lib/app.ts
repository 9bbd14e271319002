import Fastify, { type FastifyInstance } from 'fastify'
import { loadPlugins, PLUGIN_ORDER } from './plugins.js'
import type { PluginName, ServerContext } from './types.js'

/** Bare Fastify with the shared options. */
export function bareApp (ctx: ServerContext): FastifyInstance {
  return Fastify(ctx.fastifyOptions)
}

/**
 * Fastify with faultline plugins registered in dependency order: `all` is
 * every plugin found, otherwise the named ones (missing ones are skipped;
 * cases declare what they require).
 */
export async function faultlineApp (ctx: ServerContext, which: 'all' | readonly PluginName[]): Promise<FastifyInstance> {
  const app = Fastify(ctx.fastifyOptions)
  const plugins = await loadPlugins()
  for (const name of PLUGIN_ORDER) {
    const plugin = plugins[name]
    if (plugin === undefined || (which !== 'all' && !which.includes(name))) continue
    await app.register(plugin)
  }
  return app
}

export type Logger = 'info' | 'off'

/**
 * `ctx` with its logger set to `logger`, whatever `--logger` says: pino at
 * info into /dev/null (as bench/server.ts sets it), or none.
 */
export function withLogger (ctx: ServerContext, logger: Logger): ServerContext {
  return { ...ctx, fastifyOptions: { ...ctx.fastifyOptions, logger: logger === 'info' ? { level: 'info', file: '/dev/null' } : false } }
}
