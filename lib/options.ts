import { describe } from './fault.js'
import { FaultlineInvalidOptionError } from './errors.js'

// The one option validator of every plugin: milliseconds with one bound,
// counts, names, booleans, functions, objects; unknown option names are
// refused with the closest known one. Each check is also a pure `whyInvalid…`
// function (a reason, or undefined when valid) for per-call options, which
// throw their own misuse errors.

/** The largest delay a Node timer honours: a larger one fires at once (after 1 ms). */
export const MAX_TIMER_MS = 2 ** 31 - 1

// Fastify reads these from every plugin's register options and passes them on.
const FASTIFY_REGISTER_OPTIONS: ReadonlySet<string> = new Set(['prefix', 'logLevel', 'logSerializers'])

/** Why `value` is not a timer delay from `min` (0 or 1) to MAX_TIMER_MS ms; undefined when it is one. */
export function whyInvalidMs (value: unknown, min: 0 | 1, zero = ''): string | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= MAX_TIMER_MS
    ? undefined
    : `must be an integer number of milliseconds from ${min}${zero} to ${MAX_TIMER_MS}, got ${describe(value)}`
}

/** Why `value` is not a positive safe integer; undefined when it is one. */
export function whyInvalidCount (value: unknown, hint?: string): string | undefined {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1
    ? undefined
    : `must be a positive integer${hint === undefined ? '' : ` (${hint})`}, got ${describe(value)}`
}

/** Whether `value` is an object that is not null and not an array. */
export function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** The known name closest to `name` (edit distance, case-insensitive), if one is close enough to be a typo. */
export function closestName (name: string, known: readonly string[]): string | undefined {
  let best: string | undefined
  let bestDistance = Infinity
  for (const candidate of known) {
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase())
    if (distance < bestDistance) {
      best = candidate
      bestDistance = distance
    }
  }
  return bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined
}

function editDistance (a: string, b: string): number {
  if (a.length > 64 || b.length > 64) return Infinity
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    previous = current
  }
  return previous[b.length]!
}

/** A plugin's register options, read one by one; every mistake is a FaultlineInvalidOptionError. */
export class PluginOptions {
  private readonly values: Record<string, unknown>

  /**
   * Checks that `opts` is an object whose option names are all in `known`
   * (or Fastify's own register options): an unknown name is an error that
   * names the closest known option.
   */
  constructor (readonly plugin: string, opts: unknown, known: readonly string[]) {
    if (opts === null || typeof opts !== 'object') throw this.invalid('options', 'must be an object')
    this.values = opts as Record<string, unknown>
    for (const name of Object.keys(opts)) {
      if (known.includes(name) || FASTIFY_REGISTER_OPTIONS.has(name)) continue
      const near = closestName(name, known)
      throw this.invalid(name, `unknown option${near === undefined ? '' : `: did you mean ${near}?`} Known options: ${known.join(', ')}`)
    }
  }

  invalid (option: string, reason: string): Error {
    return new FaultlineInvalidOptionError(this.plugin, option, reason)
  }

  /** The raw value, for options with a shape of their own. */
  get (option: string): unknown {
    return this.values[option]
  }

  /** A timer delay in ms, from `min` to MAX_TIMER_MS. */
  ms (option: string, min: 0 | 1, fallback: number): number
  ms (option: string, min: 0 | 1): number | undefined
  ms (option: string, min: 0 | 1, fallback?: number): number | undefined {
    return this.check(option, fallback, value => whyInvalidMs(value, min, min === 0 && fallback === 0 ? ' (off)' : ''))
  }

  /** A positive integer. */
  count (option: string, fallback: number, hint?: string): number {
    return this.check(option, fallback, value => whyInvalidCount(value, hint))!
  }

  boolean (option: string, fallback: boolean): boolean {
    return this.check(option, fallback, value => typeof value === 'boolean' ? undefined : `must be a boolean, got ${describe(value)}`)!
  }

  /** A string matching `pattern`; `what` says what is expected. */
  string (option: string, pattern: RegExp, what: string): string | undefined {
    return this.check(option, undefined, value => typeof value === 'string' && pattern.test(value) ? undefined : `must be ${what}, got ${describe(value)}`)
  }

  /** An object (not null, not an array); `what` says what is expected. */
  object (option: string, what: string): Record<string, unknown> | undefined {
    return this.check(option, undefined, value => isPlainObject(value) ? undefined : `must be ${what}`)
  }

  /** One function or an array of functions. */
  functions (option: string): Array<(...args: never[]) => unknown> {
    const value = this.values[option]
    if (value === undefined) return []
    const list = Array.isArray(value) ? [...value] : [value]
    if (!list.every(f => typeof f === 'function')) throw this.invalid(option, 'must be a function or an array of functions')
    return list
  }

  private check<T> (option: string, fallback: T | undefined, why: (value: unknown) => string | undefined): T | undefined {
    const value = this.values[option]
    if (value === undefined) return fallback
    const reason = why(value)
    if (reason !== undefined) throw this.invalid(option, reason)
    return value as T
  }
}
