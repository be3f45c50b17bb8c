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

/** Redis envelope marker: anything not starting with it was not written by fragcache. */
const MARKER = 'fc1|'

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
const ENTRY_OVERHEAD = 64

/**
 * The Redis form of an entry: `fc1|expiresAt|computeMs|type|depsJSON` + newline + payload, where `type` is `s` for a
 * string stored as it is (an HTML fragment is read back without a JSON parse or a copy) and `j` for JSON; 0 = no expiry.
 */
export function encodeEntry(entry: Entry, payload: string): string {
  const deps = entry.deps ? JSON.stringify(entry.deps) : ''
  const type = typeof entry.value === 'string' ? 's' : 'j'
  return `${MARKER}${entry.expiresAt ?? 0}|${Math.round(entry.computeMs)}|${type}|${deps}\n${payload}`
}

/** Parses what Redis holds; `undefined` when it is not an envelope fragcache wrote (a corrupt or foreign value). */
export function decodeEntry(raw: string): Entry | undefined {
  if (!raw.startsWith(MARKER)) return undefined
  const newline = raw.indexOf('\n')
  if (newline < 0) return undefined
  const [expires, compute, type, depsJson] = splitHeader(raw.slice(MARKER.length, newline))
  const expiresAt = Number(expires)
  const computeMs = Number(compute)
  if (!Number.isFinite(expiresAt) || !Number.isFinite(computeMs) || depsJson === undefined) return undefined
  if (type !== 's' && type !== 'j') return undefined
  try {
    const deps = depsJson === '' ? null : (JSON.parse(depsJson) as unknown)
    if (deps !== null && !isDeps(deps)) return undefined
    const payload = raw.slice(newline + 1)
    const value = type === 's' ? payload : deepFreeze(JSON.parse(payload) as unknown)
    return { value, expiresAt: expiresAt === 0 ? null : expiresAt, computeMs, deps, size: payload.length + ENTRY_OVERHEAD }
  } catch {
    return undefined
  }
}

/** Splits `expires|compute|type|deps` (deps last: it is JSON and may hold a `|`). */
function splitHeader(header: string): [string, string, string, string | undefined] {
  const first = header.indexOf('|')
  const second = header.indexOf('|', first + 1)
  const third = header.indexOf('|', second + 1)
  if (first < 0 || second < 0 || third < 0) return ['', '', '', undefined]
  return [header.slice(0, first), header.slice(first + 1, second), header.slice(second + 1, third), header.slice(third + 1)]
}

function isDeps(value: unknown): value is Deps {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  return Object.values(value).every((v) => typeof v === 'number')
}

/** True when the entry has expired at `now`. */
export function isExpired(entry: Entry, now: number): boolean {
  return entry.expiresAt !== null && entry.expiresAt <= now
}
