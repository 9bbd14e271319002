import { existsSync } from 'node:fs'
import { chromium, type Browser } from 'playwright-core'

export const CHROMIUM = '/usr/bin/chromium'

// The flags DEVELOPERS.md gives: headless, no sandbox (CI runs as root), nothing that phones home.
const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'
]

export const MISSING_CHROMIUM = `The browser tests need Debian's Chromium at ${CHROMIUM}, and it is missing. ` +
  'Install it with `apt-get install -y chromium` (as root; `.ci/run` does this), then run the tests again. ' +
  'These tests never skip: a missing browser is a failure.'

/** Debian's Chromium through playwright-core; throws a how-to-install message when it is missing. */
export async function launchChromium (executablePath = CHROMIUM): Promise<Browser> {
  if (!existsSync(executablePath)) throw new Error(MISSING_CHROMIUM)
  return await chromium.launch({ executablePath, args: ARGS })
}
