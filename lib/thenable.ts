/** Whether `value` has a callable `then`. A hostile `then` getter may throw: callers that take untrusted values catch. */
export function isThenable (value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as PromiseLike<unknown>).then === 'function'
}
