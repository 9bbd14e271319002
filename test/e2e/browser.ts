import { accessSync, constants, statSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { chromium, type Browser } from 'playwright-core'
import { MissingExternalError } from '../helpers/external.js'

/** The env var naming a Chromium or Chrome binary to use instead of the search below. */
export const CHROMIUM_ENV = 'FAULTLINE_CHROMIUM'
/** Debian's Chromium (`apt-get install -y chromium`; `.ci/run` installs it). */
export const DEBIAN_CHROMIUM = '/usr/bin/chromium'
/** Looked up on PATH, in order, when neither of the above is there (GitHub's ubuntu-latest ships google-chrome). */
export const PATH_NAMES = ['google-chrome', 'google-chrome-stable', 'chromium-browser', 'chromium']

export const HOW_TO_INSTALL = `install it with \`apt-get install -y chromium\` (as root), or set ${CHROMIUM_ENV} to a Chromium or Chrome binary`

// The flags DEVELOPERS.md gives: headless, no sandbox (CI runs as root), nothing that phones home.
const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'
]

function executable (path: string): boolean {
  try {
    accessSync(path, constants.X_OK)
    return statSync(path).isFile()
  } catch {
    return false
  }
}

/**
 * The browser binary: `$FAULTLINE_CHROMIUM`, else Debian's `/usr/bin/chromium`,
 * else the first of PATH_NAMES on PATH. Throws a MissingExternalError that
 * says how to get one.
 */
export function findChromium (env: NodeJS.ProcessEnv = process.env, debian = DEBIAN_CHROMIUM): string {
  const named = env[CHROMIUM_ENV]
  if (named !== undefined && named !== '') {
    if (executable(named)) return named
    throw new MissingExternalError(`${CHROMIUM_ENV}=${named} is not an executable file; ${HOW_TO_INSTALL}`)
  }
  if (executable(debian)) return debian
  const dirs = (env.PATH ?? '').split(delimiter).filter(dir => dir !== '')
  for (const name of PATH_NAMES) {
    for (const dir of dirs) {
      const path = join(dir, name)
      if (executable(path)) return path
    }
  }
  throw new MissingExternalError(`no Chromium found (no ${CHROMIUM_ENV}, no ${debian}, none of ${PATH_NAMES.join(', ')} on PATH); ${HOW_TO_INSTALL}`)
}

/** Chromium through playwright-core (never `npx playwright install`). */
export async function launchChromium (executablePath = findChromium()): Promise<Browser> {
  return await chromium.launch({ executablePath, args: ARGS })
}
