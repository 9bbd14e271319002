import type { Test } from 'tap'

/** Waits for `promise`, failing the test (not hanging) if it takes absurdly long. */
export async function within<T> (t: Test, promise: Promise<T>, what: string, ms = 15_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const limit = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms) })
  try {
    return await Promise.race([promise, limit])
  } catch (err) {
    t.fail(String(err))
    throw err
  } finally {
    clearTimeout(timer)
  }
}
