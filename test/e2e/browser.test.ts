// How the browser tests find a browser, and what they do without one: skip
// with one line outside CI, fail under CI=true, and never crash later tests
// on a failed setup. The last three run the real demo test file as a user
// would, with a browser that is missing or broken.
import t from 'tap'
import { spawn } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { inCI, MissingExternalError } from '../helpers/external.js'
import { CHROMIUM_ENV, findChromium } from './browser.js'

// Three runs of the demo test file in child processes: a bound, not a timing assertion.
t.setTimeout(300_000)

const root = fileURLToPath(new URL('../../', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'faultline-browser-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

function fakeBinary (path: string, script = '#!/bin/sh\nexit 1\n'): string {
  mkdirSync(join(path, '..'), { recursive: true })
  writeFileSync(path, script)
  chmodSync(path, 0o755)
  return path
}

t.test('CI is on for any value but empty, 0 and false', async t => {
  t.equal(inCI({}), false)
  for (const off of ['', '0', 'false', 'FALSE']) t.equal(inCI({ CI: off }), false, `CI=${off}`)
  for (const on of ['true', '1', 'yes']) t.equal(inCI({ CI: on }), true, `CI=${on}`)
})

t.test('the env var wins, and a wrong one is named with how to fix it', async t => {
  const named = fakeBinary(join(dir, 'named', 'my-chrome'))
  t.equal(findChromium({ [CHROMIUM_ENV]: named, PATH: '' }, '/nonexistent/chromium'), named)
  const missing = join(dir, 'no-such-chrome')
  t.throws(() => findChromium({ [CHROMIUM_ENV]: missing }), MissingExternalError)
  t.throws(() => findChromium({ [CHROMIUM_ENV]: missing }), {
    message: `${CHROMIUM_ENV}=${missing} is not an executable file; install it with \`apt-get install -y chromium\` (as root), or set ${CHROMIUM_ENV} to a Chromium or Chrome binary`
  })
  t.throws(() => findChromium({ [CHROMIUM_ENV]: dir }), { message: /is not an executable file/ }, 'a directory is not a browser')
})

t.test('then Debian\'s chromium, then google-chrome before chromium-browser on PATH', async t => {
  const debian = fakeBinary(join(dir, 'debian', 'chromium'))
  const snapStub = fakeBinary(join(dir, 'first', 'chromium-browser'))
  const chrome = fakeBinary(join(dir, 'second', 'google-chrome'))
  const PATH = [join(dir, 'first'), join(dir, 'second')].join(delimiter)
  t.equal(findChromium({ PATH }, debian), debian)
  t.equal(findChromium({ PATH, [CHROMIUM_ENV]: '' }, '/nonexistent/chromium'), chrome, 'an empty env var counts as unset')
  t.equal(findChromium({ PATH: join(dir, 'first') }, '/nonexistent/chromium'), snapStub)
  t.throws(() => findChromium({ PATH: join(dir, 'nothing-here') }, '/nonexistent/chromium'), {
    name: 'MissingExternalError',
    message: /^no Chromium found \(no FAULTLINE_CHROMIUM, no \/nonexistent\/chromium, none of google-chrome, .* on PATH\); install it with `apt-get install -y chromium`/
  })
  t.throws(() => findChromium({}, '/nonexistent/chromium'), { name: 'MissingExternalError' }, 'no PATH at all')
})

/**
 * Runs test/e2e/demo.test.ts on its own, as `node` would, with this
 * process's TypeScript loader (tap's: coverage from the child then maps as
 * the rest does) and without the tap runner's variables.
 */
async function runDemoTest (env: Record<string, string>): Promise<{ code: number | null, out: string }> {
  const clean: Record<string, string> = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !/^(TAP|CI$)/.test(key)) clean[key] = value
  }
  const child = spawn(process.execPath, [...process.execArgv, 'test/e2e/demo.test.ts'], { cwd: root, env: { ...clean, _TAPJS_PROCESSINFO_COVERAGE_: '0', ...env } })
  let out = ''
  child.stdout.setEncoding('utf8').on('data', chunk => { out += chunk })
  child.stderr.setEncoding('utf8').on('data', chunk => { out += chunk })
  const code = await new Promise<number | null>(resolve => child.on('close', resolve))
  return { code, out }
}

t.test('outside CI, a missing browser skips the browser tests with one line', async t => {
  const { code, out } = await runDemoTest({ [CHROMIUM_ENV]: '/nonexistent/chromium' })
  t.equal(code, 0, out)
  const skips = out.split('\n').filter(line => /skip/i.test(line))
  t.same(skips, [
    `1..0 # the browser tests (test/e2e/demo.test.ts) skipped: ${CHROMIUM_ENV}=/nonexistent/chromium is not an executable file; ` +
    `install it with \`apt-get install -y chromium\` (as root), or set ${CHROMIUM_ENV} to a Chromium or Chrome binary`
  ])
  t.notMatch(out, /not ok|TypeError/)
})

t.test('under CI=true, a missing browser fails', async t => {
  const { code, out } = await runDemoTest({ [CHROMIUM_ENV]: '/nonexistent/chromium', CI: 'true' })
  t.not(code, 0)
  t.match(out, /not ok 1 - the browser tests \(test\/e2e\/demo\.test\.ts\): FAULTLINE_CHROMIUM=\/nonexistent\/chromium is not an executable file; .* \(required under CI=true\)/)
  t.notMatch(out, /TypeError/, 'the tests that needed the browser skip instead of crashing')
  t.match(out, /ok \d+ - the page loads with its script and style # SKIP/)
})

t.test('a browser that fails to start is one failure; the tests that needed it skip with its reason', async t => {
  const broken = fakeBinary(join(dir, 'broken', 'chrome'), '#!/bin/sh\necho "this is not a browser" >&2\nexit 3\n')
  const { code, out } = await runDemoTest({ [CHROMIUM_ENV]: broken })
  t.not(code, 0)
  const failures = out.split('\n').filter(line => /^not ok/.test(line))
  t.equal(failures.length, 1, out)
  t.match(failures[0], /^not ok 1 - the browser tests \(test\/e2e\/demo\.test\.ts\): setup failed: /)
  t.notMatch(out, /TypeError: Cannot read/)
  const skipped = out.split('\n').filter(line => /^ok \d+ - .* # SKIP the browser tests \(test\/e2e\/demo\.test\.ts\): setup failed: /.test(line))
  const declared = readFileSync(join(root, 'test', 'e2e', 'demo.test.ts'), 'utf8').match(/^demo\.test\(/gm)?.length
  t.equal(skipped.length, declared, `all ${declared} browser tests skip with the setup's reason`)
})
