/**
 * The cache entry: a value with what judging it takes (expiry, compute time, data versions, size), and the checks
 * every value passes before it is stored (JSON-safe, copied, deeply frozen).
 */
import { InvalidArgumentError, describeValue } from './errors.ts'

/** The data versions an entry was computed against: tag → version. */
export type Deps = Readonly<Record<string, number>>

/** `s` a string, `j` any other JSON value, `r` a variation redirect (its value lists the contexts to vary by). */
export type EntryKind = 's' | 'j' | 'r'

/**
 * One cached value with what it takes to judge it: until when it is fresh and until when it is kept (grace), how long it
 * took to compute (for early refresh), which data versions it depends on, which request contexts it varies by, and its
 * size in bytes (for the L1 bound). `value` is deeply frozen: every reader shares it, so no reader may change it.
 */
export interface Entry {
  readonly value: unknown
  readonly kind: EntryKind
  /** Epoch ms until which it is fresh, or null for no expiry. */
  readonly expiresAt: number | null
  /** Epoch ms until which it is kept, stale, to be served when its recompute fails or is slow (≥ expiresAt); null with no expiry. */
  readonly graceUntil: number | null
  readonly computeMs: number
  readonly deps: Deps | null
  /** Request contexts the value varies by (for a redirect: those its variations are keyed by). */
  readonly varies: readonly string[] | null
  readonly size: number
}

/** When an entry stops being fresh, and stops being kept. */
export interface Lifetime {
  readonly expiresAt: number | null
  /** Default: `expiresAt` (no grace). */
  readonly graceUntil?: number | null
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
 * @throws InvalidArgumentError for a value JSON cannot carry back unchanged.
 * @example
 * ```ts
 * const { entry, payload } = makeEntry('site:1:c:k', { a: 1 }, { expiresAt: Date.now() + 60_000 })
 * ```
 */
export function makeEntry(
  key: string,
  value: unknown,
  lifetime: Lifetime,
  computeMs = 0,
  deps: Deps | null = null,
  varies: readonly string[] | null = null,
): { entry: Entry; payload: string } {
  const { expiresAt } = lifetime
  const graceUntil = lifetime.graceUntil === undefined ? expiresAt : lifetime.graceUntil
  if (typeof value === 'string') {
    return { entry: { value, kind: 's', expiresAt, graceUntil, computeMs, deps, varies, size: value.length + ENTRY_OVERHEAD }, payload: value }
  }
  const json = serializeValue(key, value)
  const stored = typeof value === 'object' && value !== null ? deepFreeze(JSON.parse(json)) : value
  return { entry: { value: stored, kind: 'j', expiresAt, graceUntil, computeMs, deps, varies, size: json.length + ENTRY_OVERHEAD }, payload: json }
}

/** Bytes counted for an entry beside its value (its fields and the LRU's bookkeeping), for the L1 bound. */
export const ENTRY_OVERHEAD = 64

/**
 * True when the entry is no longer fresh at `now` (it may still be kept, stale, within its grace).
 * @example
 * ```ts
 * isExpired({ ...entry, expiresAt: 1000 }, 1000) // true
 * ```
 */
export function isExpired(entry: Entry, now: number): boolean {
  return entry.expiresAt !== null && entry.expiresAt <= now
}

/**
 * True when the entry is past its grace at `now`: nothing may serve it any more.
 * @example
 * ```ts
 * isGone({ ...entry, expiresAt: 1000, graceUntil: 5000 }, 2000) // false: stale, within grace
 * ```
 */
export function isGone(entry: Entry, now: number): boolean {
  return entry.graceUntil !== null && entry.graceUntil <= now
}
