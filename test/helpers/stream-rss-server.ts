// A server in its own process, so its RSS is measured without the test's
// client in it. Spawned by test/stream-backpressure.test.ts over IPC.
import Fastify from 'fastify'
import { Readable } from 'node:stream'
import { faultlineHttp, faultlineStream } from '../../index.js'

const CHUNK = 64 * 1024
let baseline = process.memoryUsage.rss()
let peak = baseline
let produced = 0

function sample (): void {
  const rss = process.memoryUsage.rss()
  if (rss > peak) peak = rss
}

function readable (total: number): Readable {
  return new Readable({
    read () {
      sample()
      if (produced >= total) {
        this.push(null)
        return
      }
      produced += CHUNK
      this.push(Buffer.alloc(CHUNK, 97))
    }
  })
}

async function * generator (total: number): AsyncGenerator<Buffer> {
  while (produced < total) {
    sample()
    produced += CHUNK
    yield Buffer.alloc(CHUNK, 98)
  }
}

const app = Fastify()
await app.register(faultlineHttp)
await app.register(faultlineStream)
app.get('/stream', async (request, reply) => {
  const { mb, kind } = request.query as { mb: string, kind: string }
  const total = Number(mb) * 1024 * 1024
  produced = 0
  return reply.streamSafe(kind === 'generator' ? generator(total) : readable(total))
})
app.get('/mark', async () => {
  baseline = process.memoryUsage.rss()
  peak = baseline
  return { baseline }
})
app.get('/stats', async () => ({ baseline, peak, produced }))
const address = await app.listen({ port: 0, host: '127.0.0.1' })
process.send!({ address })
process.on('disconnect', () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
