import type { Test } from 'tap'
import { inCI } from './externals.js'

export { inCI }

// Tests that need something npm cannot install (a browser, a Redis server)
// follow one rule: outside CI a missing one skips the file with ONE line that
// says what was skipped and how to install it; under CI=true it is a failure
// (CI installs everything: see .ci/run). Any other failed setup is one
// failure, and the tests that needed it skip with its reason instead of
// crashing on a missing fixture.

/** Thrown by a setup when something outside npm is missing; the message says how to get it. */
export class MissingExternalError extends Error {
  override name = 'MissingExternalError'
}

export interface Fixture<T> {
  /** The setup's result, or undefined when it failed or was skipped. */
  readonly value: T | undefined
  /** Why the tests that need the fixture do not run, or false. */
  readonly skip: string | false
  /** A subtest that gets the fixture, or skips with the setup's reason. */
  test: (name: string, fn: (t: Test, value: T) => Promise<void>) => void
}

/**
 * Runs a test file's shared setup once, before its tests are declared.
 * `name` says what the fixture is for ("the browser tests"). When `setup`
 * throws a `MissingExternalError` outside CI, the whole file is skipped with
 * one line; under CI it fails. Any other error is one failure with its
 * reason. Either way, `fixture.test(...)` then skips instead of running.
 */
export async function external<T> (t: Test, name: string, setup: () => Promise<T>, env: NodeJS.ProcessEnv = process.env): Promise<Fixture<T>> {
  try {
    const value = await setup()
    return { value, skip: false, test: (title, fn) => { t.test(title, t => fn(t, value)) } }
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err)
    if (err instanceof MissingExternalError && !inCI(env)) {
      const skip = `${name} skipped: ${message}`
      t.plan(0, skip)
      return { value: undefined, skip, test: () => {} }
    }
    const skip = err instanceof MissingExternalError
      ? `${name}: ${message} (required under CI=true)`
      : `${name}: setup failed: ${message}`
    t.fail(skip, err instanceof Error && !(err instanceof MissingExternalError) ? { stack: err.stack } : {})
    return { value: undefined, skip, test: (title) => { t.test(title, { skip }, async () => {}) } }
  }
}
