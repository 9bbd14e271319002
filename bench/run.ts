// npm run bench [-- --quick] [--only=1,2] [--rounds=N] [--duration=S]
//                [--logger=info|off] [--profile[=dir]] [--json=file] [--strict] [--no-pin]
//
// Runs each case side by side against its bare baseline, in rounds (both
// variants at once for the plain HTTP cases, one at a time in alternating
// order for the others), and prints one table of medians and ratios.
// Ratios never fail the run unless --strict is given: shared machines are
// noisy.
import os from 'node:os'
import { mkdirSync, writeFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { CASES } from './cases/index.js'
import { Harness } from './lib/harness.js'
import { faultlineRoot, loadPlugins } from './lib/plugins.js'
import { renderTable, verdictOf } from './lib/table.js'
import { MiB } from './lib/stats.js'
import { pinLoad } from './lib/pin.js'
import type { Row, Settings } from './lib/types.js'

const USAGE = `usage: npm run bench [-- --quick] [--only=1,1b,2,...] [--rounds=N] [--duration=S]
  [--stream-mib=N] [--records=N] [--events=N] [--messages=N] [--churn=N]
  [--logger=info|off] [--profile[=dir]] [--json=file] [--strict] [--no-pin]
See docs/benchmarks.md.`

function parseArgs (argv: readonly string[]): Map<string, string> {
  const args = new Map<string, string>()
  for (const arg of argv) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg)
    if (m === null) throw new Error(`bench: unknown argument ${arg}\n${USAGE}`)
    args.set(m[1]!, m[2] ?? 'true')
  }
  return args
}

function positive (args: Map<string, string>, key: string, fallback: number): number {
  const raw = args.get(key)
  if (raw === undefined) return fallback
  const n = Number(raw)
  if (!Number.isFinite(n) || n <= 0) throw new Error(`bench: --${key} must be a positive number`)
  return n
}

const args = parseArgs(process.argv.slice(2))
if (args.has('help')) {
  process.stdout.write(USAGE + '\n')
  process.exit(0)
}
const quick = args.has('quick')
const logger = args.get('logger') ?? 'info'
if (logger !== 'info' && logger !== 'off') throw new Error('bench: --logger must be info or off')

const settings: Settings = {
  quick,
  logger,
  rounds: positive(args, 'rounds', quick ? 2 : 7),
  duration: positive(args, 'duration', quick ? 1 : 3),
  streamBytes: positive(args, 'stream-mib', quick ? 64 : 1024) * MiB,
  records: positive(args, 'records', quick ? 50_000 : 500_000),
  events: positive(args, 'events', quick ? 20_000 : 400_000),
  messages: positive(args, 'messages', quick ? 20_000 : 200_000),
  churnClients: positive(args, 'churn', quick ? 300 : 10_000)
}

const only = args.get('only')?.split(',')
const profile = args.get('profile')
const profileDir = profile === undefined ? undefined : resolve(profile === 'true' ? 'bench/.profiles' : profile)
if (profileDir !== undefined) mkdirSync(profileDir, { recursive: true })

const plugins = Object.keys(await loadPlugins())
const pinning = pinLoad(!args.has('no-pin'))
const started = Date.now()
const cpus = os.cpus()
const machine = `${cpus.length} x ${cpus[0]?.model ?? 'unknown CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}, Node ${process.version}`
const load = (): string => os.loadavg().map(l => l.toFixed(2)).join(' ')

process.stderr.write(`fastify-faultline benchmarks (${quick ? 'quick' : 'full'}): ${machine}\n`)
process.stderr.write(`faultline plugins found: ${plugins.join(', ') || 'none'}; logger: ${logger}; rounds: ${settings.rounds}; ${pinning}; load average at start: ${load()}\n`)

process.stderr.write(`faultline code under test: ${faultlineRoot}\n`)

const rows: Row[] = []
const skipped: string[] = []
let failures = 0
for (const benchCase of CASES) {
  if (only !== undefined ? !only.includes(benchCase.id) : quick && benchCase.fullOnly === true) continue
  const missing = benchCase.requires.filter(p => !plugins.includes(p))
  if (missing.length > 0) {
    skipped.push(`${benchCase.id} (${benchCase.title}): needs ${missing.join(', ')}`)
    continue
  }
  process.stderr.write(`case ${benchCase.id}: ${benchCase.title}\n`)
  const harness = new Harness(benchCase.id, settings, profileDir)
  const t0 = Date.now()
  try {
    rows.push(...await benchCase.bench(harness))
  } catch (err) {
    failures++
    process.stderr.write(`  case ${benchCase.id} FAILED: ${(err as Error).stack ?? String(err)}\n`)
  } finally {
    await harness.closeAll()
  }
  process.stderr.write(`  (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`)
}

const seconds = (Date.now() - started) / 1000
const out = [
  `fastify-faultline benchmarks, ${quick ? 'quick' : 'full'} run, ${new Date().toISOString()}`,
  `machine: ${machine}; ${pinning}; load average at end: ${load()}`,
  `faultline plugins registered in case 1: ${plugins.join(', ') || 'none'}; logger: ${logger === 'info' ? 'pino at info into /dev/null' : 'off'} (both variants)`,
  `faultline code under test: ${faultlineRoot}`,
  `${settings.rounds} rounds per case: plain HTTP cases (0-3) run both variants at once each round and give the median of the rounds' ratios; the others run one variant at a time, in alternating order (baseline first, then faultline first, ...), and give faultline median / baseline median. Above 1 is better for rates, worse for latency and CPU; ${seconds.toFixed(0)} s in all`,
  '',
  renderTable(rows.filter(r => r.detail !== true)),
  ''
]
const details = rows.filter(r => r.detail === true)
if (details.length > 0) out.push('Detail (server CPU time per unit of work, lower is better):', '', renderTable(details, true), '')
for (const s of skipped) out.push(`skipped: case ${s}`)
process.stdout.write(out.join('\n') + '\n')

const json = args.get('json')
if (json !== undefined) writeFileSync(json, JSON.stringify({ machine, settings, plugins, seconds, rows }, null, 2))

const missed = rows.filter(r => verdictOf(r).pass === false).length
if (failures > 0) process.exitCode = 1
else if (args.has('strict') && missed > 0) process.exitCode = 1
