import type { Test } from 'tap'

/**
 * Fails the test if the process sees an unhandled rejection or an uncaught
 * exception while it runs: the suite promises neither ever happens.
 */
export function guardProcess (t: Test): void {
  const onRejection = (reason: unknown): void => { t.fail(`unhandledRejection: ${String((reason as Error)?.stack ?? reason)}`) }
  const onException = (err: unknown): void => { t.fail(`uncaughtException: ${String((err as Error)?.stack ?? err)}`) }
  process.on('unhandledRejection', onRejection)
  process.on('uncaughtException', onException)
  t.teardown(() => {
    process.off('unhandledRejection', onRejection)
    process.off('uncaughtException', onException)
  })
}
