import t from 'tap'
import Fastify, { type FastifyReply } from 'fastify'
import {
  faultlineHttp, faultlineBackground,
  type BackgroundTask, type BackgroundTaskOptions, type BackgroundScheduleOptions, type BackgroundStats,
  type FaultlineBackground, type FaultlineBackgroundOptions
} from '../index.js'
import { guardProcess } from './helpers/guard.js'

guardProcess(t)

// Type-level checks: `npx tsc --noEmit` fails if the public types drift.
// The runtime part only proves the file loads and the checked values work.

t.test('public types of faultline-background', async t => {
  const options: FaultlineBackgroundOptions = { concurrency: 2, maxQueued: 10, shutdownTimeout: 100, timeout: 50 }
  // @ts-expect-error concurrency is a number
  const badOptions: FaultlineBackgroundOptions = { concurrency: '2' }

  const task: BackgroundTask = async (signal: AbortSignal) => { signal.throwIfAborted() }
  const syncTask: BackgroundTask = () => 42
  // @ts-expect-error a task receives an AbortSignal, not a string
  const wrongTask: BackgroundTask = (name: string) => name

  const taskOptions: BackgroundTaskOptions = { name: 'job', timeout: 10 }
  // @ts-expect-error name is a string
  const badTaskOptions: BackgroundTaskOptions = { name: 1 }
  t.ok([badOptions, wrongTask, badTaskOptions].length, 'ill-typed values are still values')

  const app = Fastify()
  await app.register(faultlineHttp)
  await app.register(faultlineBackground, options)
  t.teardown(() => app.close())

  app.get('/', async (request, reply) => {
    const accepted: boolean = reply.background(task, taskOptions)
    reply.background(syncTask)
    const neverCalled = (): void => {
      // @ts-expect-error the task is required
      reply.background()
    }
    t.type(neverCalled, 'function')
    const scheduleOptions: BackgroundScheduleOptions = { request, name: 'x' }
    app.faultline.background.schedule(task, scheduleOptions)
    return { accepted }
  })

  const background: FaultlineBackground | undefined = app.faultline.background
  const idle: Promise<void> = background!.idle()
  const stats: BackgroundStats = background!.stats()
  const pending: number = stats.pending + stats.queued + stats.running
  // @ts-expect-error stats are numbers
  const notString: string = stats.pending
  t.equal(notString, 0)

  type Background = FastifyReply['background']
  const fn: Background = (t2: BackgroundTask | string, o?: BackgroundTaskOptions | unknown) => typeof t2 === 'function' && o === undefined
  t.equal(fn(task), true)
  t.equal(fn('named', { any: 'json' }), false, 'the named form: a name and a payload')

  const res = await app.inject('/')
  t.same(res.json(), { accepted: true })
  await idle
  await app.faultline.background.idle()
  t.equal(pending, 0)
})
