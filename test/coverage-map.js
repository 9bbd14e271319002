// Coverage is measured on the package's own code only: lib/, plugins/,
// client/, otel/ and index.ts. Examples, benchmarks and test helpers are not
// held to the bar.
import { readdirSync } from 'node:fs'
import { inCI, redisAtHand } from './helpers/externals.js'

// Lines only the BullMQ tests reach. Those tests need a Redis, which npm
// cannot install: outside CI without one they skip with one line
// (helpers/redis.ts), and these files are then left out of the bar, so a
// fresh clone still passes `npm test`. Under CI=true, or with a Redis at
// hand, they are held to it like every other file.
const REDIS_ONLY = new Set(['lib/background-bullmq.ts', 'plugins/background.ts'])

const held = inCI() || redisAtHand()
const files = ['index.ts']
for (const dir of ['lib', 'plugins', 'client', 'otel']) {
  for (const name of readdirSync(new URL(`../${dir}/`, import.meta.url))) {
    const file = `${dir}/${name}`
    if (name.endsWith('.ts') && (held || !REDIS_ONLY.has(file))) files.push(file)
  }
}

export default function coverageMap () {
  return files
}
