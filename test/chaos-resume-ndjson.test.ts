// Chaos for resumable ndjson: 200 streams with record ids whose source breaks
// 1-5 times each at random records (a retryable error record), read with the
// client's readNdjson: every record arrives once, in order, none lost, and
// every resumed request carries Last-Event-ID = the last record received.
import t from 'tap'
import { guardProcess } from './helpers/guard.js'
import { breakPoints, resumeApp } from './helpers/resume-app.js'
import { prng, runAll } from './helpers/chaos-client.js'
import { readNdjson } from '../client/index.js'

guardProcess(t)

const DOWNLOADS = Math.max(200, Number(process.env.FAULTLINE_RESUME_CHAOS ?? 200) || 200)
const RECORDS = 600
const POLICY = { attempts: 5, baseDelay: 1, maxDelay: 10 }
const seed = Number(process.env.FAULTLINE_CHAOS_SEED ?? Date.now() % 1_000_000)
const random = prng(seed)
t.comment(`seed ${seed} (FAULTLINE_CHAOS_SEED to replay)`)

t.test(`${DOWNLOADS} ndjson streams with ids, each broken 1-5 times`, async t => {
  const s = await resumeApp(t, new Uint8Array(0), RECORDS)
  const plans = new Map<string, number[]>()
  for (let i = 0; i < DOWNLOADS; i++) {
    const plan = breakPoints(random, RECORDS)
    plans.set(`n${i}`, plan)
    s.plan(`n${i}`, { breaks: plan })
  }
  let wrongRecords = 0
  let wrongRequests = 0
  await runAll(DOWNLOADS, 8, async i => {
    let next = 0
    let ok = true
    for await (const record of readNdjson<{ i: number }>(`${s.base}/ndjson/n${i}`, { retry: POLICY })) {
      if (record.i !== next) ok = false
      next++
    }
    if (!ok || next !== RECORDS) wrongRecords++
  })
  for (const [key, plan] of plans) {
    const ids = s.seen.filter(r => r.url === `/ndjson/${key}`).map(r => r.lastEventId)
    if (JSON.stringify(ids) !== JSON.stringify([undefined, ...plan.map(at => String(at - 1))])) wrongRequests++
  }
  t.equal(wrongRecords, 0, 'every stream gave each record once, in order, none lost')
  t.equal(wrongRequests, 0, 'one request per break, each resumed one with Last-Event-ID = the last record received')
})
