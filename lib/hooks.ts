/** A route-level hook appended to whatever the route declared (one hook or a list). */
export function appendHook<H> (existing: H | H[] | undefined, hook: H): H[] {
  return existing === undefined ? [hook] : [...(Array.isArray(existing) ? existing : [existing]), hook]
}
