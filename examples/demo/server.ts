import { buildDemo } from './app.js'

// `npm run demo`: the demo on loopback only, port from PORT (default 3000);
// FAULTLINE_TRACE=1 traces it with OpenTelemetry and prints each span.
const port = Number(process.env.PORT ?? 3000)
const app = await buildDemo({ tracing: process.env.FAULTLINE_TRACE === '1' })
await app.listen({ port, host: '127.0.0.1' })
console.log(`fastify-faultline demo: http://127.0.0.1:${(app.server.address() as { port: number }).port}/`)

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
}
