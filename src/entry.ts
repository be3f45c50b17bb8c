/**
 * The cache entry: a value with what judging it takes (expiry, compute time, data versions, size), and the checks
 * every value passes before it is stored (JSON-safe, copied, deeply frozen).
 */
import { InvalidArgumentError, describeValue } from './errors.ts'

/** The data versions an entry was computed against: tag → version. */
export type Deps = Readonly<Record<string, number>>

/**
 * One cached value with what it takes to judge it: when it expires, how long it took to compute
 * (for early refresh), which data versions it depends on, and its size in bytes (for the L1 bound).
 * `value` is deeply frozen: every reader shares it, so no reader may change it.
 */
export interface Entry {
  readonly value: unknown
  /** Epoch milliseconds, or null for no expiry. */
  readonly expiresAt: number | null
  readonly computeMs: number
  readonly deps: Deps | null
  readonly size: number
}

/**
 * Checks that `value` survives JSON exactly (no functions, symbols, `undefined` properties, non-finite numbers,
 * dates, maps, class instances) and returns its JSON text.
 * @throws InvalidArgumentError naming the key and the offending property.
 */
export function serializeValue(key: string, value: unknown): string {
  if (value === undefined) {
    throw new InvalidArgumentError(`fragcache: cannot store undefined under "${key}"; store null to cache "nothing"`)
  }
  if (typeof value === 'string') return JSON.stringify(value)
  const path: string[] = []
  try {
    return JSON.stringify(value, function check(this: unknown, prop: string, converted: unknown) {
      const original = prop === '' ? value : (this as Record<string, unknown>)[prop]
      const problem = jsonProblem(original)
      if (problem) {
        path.push(prop)
        throw new InvalidArgumentError(problem)
      }
      return converted
    })
  } catch (err) {
    if (err instanceof InvalidArgumentError) {
      const where = path[0] ? ` at property "${path[0]}"` : ''
      throw new InvalidArgumentError(`fragcache: the value for "${key}" is not JSON-serializable${where}: ${err.message}`)
    }
    throw new InvalidArgumentError(`fragcache: the value for "${key}" is not JSON-serializable: ${(err as Error).message}`)
  }
}

function jsonProblem(value: unknown): string | undefined {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return undefined
    case 'number':
      return Number.isFinite(value) ? undefined : `${value} has no JSON form`
    case 'object': {
      if (value === null || Array.isArray(value)) return undefined
      const proto = Object.getPrototypeOf(value)
      if (proto === Object.prototype || proto === null) return undefined
      return `${describeValue(value)} would not come back as the same thing; store plain objects, arrays and primitives`
    }
    default:
      return `${describeValue(value)} has no JSON form`
  }
}

/** Makes a value parsed from JSON immutable, all the way down. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const child of Object.values(value)) deepFreeze(child)
  }
  return value
}

/**
 * Builds the entry for a value: validates it, and keeps a frozen copy (never the caller's own object, which they
 * may go on changing). `payload` is what Redis stores: a string as it is, anything else as JSON.
 */
export function makeEntry(
  key: string,
  value: unknown,
  expiresAt: number | null,
  computeMs = 0,
  deps: Deps | null = null,
): { entry: Entry; payload: string } {
  if (typeof value === 'string') {
    return { entry: { value, expiresAt, computeMs, deps, size: value.length + ENTRY_OVERHEAD }, payload: value }
  }
  const json = serializeValue(key, value)
  const stored = typeof value === 'object' && value !== null ? deepFreeze(JSON.parse(json)) : value
  return { entry: { value: stored, expiresAt, computeMs, deps, size: json.length + ENTRY_OVERHEAD }, payload: json }
}

/** Bytes counted for an entry beside its value (its fields and the LRU's bookkeeping), for the L1 bound. */
export const ENTRY_OVERHEAD = 64

/**
 * True when the entry has expired at `now`.
 * @example
 * ```ts
 * isExpired({ ...entry, expiresAt: 1000 }, 1000) // true
 * ```
 */
export function isExpired(entry: Entry, now: number): boolean {
  return entry.expiresAt !== null && entry.expiresAt <= now
}
