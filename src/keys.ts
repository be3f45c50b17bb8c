/**
 * Building keys: `prefix:version:namespace:name`, readable where it is safe and hashed where it is not, always within
 * 250 bytes of printable ASCII, distinct inputs always giving distinct keys.
 */
import { hash } from 'node:crypto'
import { InvalidArgumentError, describeValue } from './errors.ts'

/**
 * The parts of a key: what each namespace holds.
 * `c` low-level values, `frag` template fragments, `view` whole responses, `ver` data versions, `lock` stampede locks.
 */
export type KeyNamespace = 'c' | 'frag' | 'view' | 'ver' | 'lock'

/** Where a key lives: `c` (the default) for values, `frag` for fragments, `view` for pages. */
export interface KeyOptions {
  namespace?: KeyNamespace
  /** Values that vary the key (hashed into it). */
  inputs?: readonly unknown[]
}

/** Characters a readable key part may keep as they are: safe for memcached, Redis and log lines alike. */
const SAFE_PART = /^[\w.:/@-]+$/
const UNSAFE_CHAR = /[^\w.:/@-]/g
/** Longest readable name kept whole; longer names are shortened and hashed. */
const MAX_NAME = 160
/** What is kept of an unsafe or long name, beside its hash. */
const SHORT_NAME = 80
/** The hard limit every key honours (memcached's, the strictest of the usual stores). */
export const MAX_KEY_BYTES = 250
const PREFIX_PATTERN = /^[\w.-]{1,64}$/
/** Most names remembered per namespace: a name per visitor (a session id, say) must not grow it forever. */
const MAX_NAMED = 10_000

/**
 * Builds the cache keys of one cache: `prefix:version:namespace:name`, or, when the name is not safe
 * as it is or inputs vary it, `prefix:version:namespace:shortened_name#hash`.
 *
 * Every key is at most 250 bytes of printable ASCII with no whitespace, whatever the name and inputs,
 * and distinct (name, inputs) pairs give distinct keys: the hashed form always contains `#`, which a kept-whole
 * name never does, and the hash covers the whole original name and a type-tagged encoding of the inputs.
 *
 * @example
 * ```ts
 * const keys = new KeyBuilder('site', 1)
 * keys.build('c', 'top_authors')                 // 'site:1:c:top_authors'
 * keys.build('frag', 'sidebar', ['en', 42])      // 'site:1:frag:sidebar#Qm9…'
 * keys.build('c', 'hello world')                 // 'site:1:c:hello_world#…'
 * keys.build('ver', 'article:42')                // 'site:1:ver:{Ab3…}:article:42' (one Cluster slot per cache)
 * ```
 */
export class KeyBuilder {
  readonly base: string
  /**
   * What version keys start with: the base, `ver:` and a Redis Cluster hash tag derived from the base, so every version
   * key of this cache lands in one slot and the read and bump scripts stay one atomic call; other keys spread.
   */
  readonly #versionBase: string
  /** Keys of names without inputs already built, by namespace then name (bounded). */
  readonly #named: Record<KeyNamespace, Map<string, string>> = { c: new Map(), frag: new Map(), view: new Map(), ver: new Map(), lock: new Map() }

  constructor(prefix: string, version: number) {
    if (typeof prefix !== 'string' || !PREFIX_PATTERN.test(prefix)) {
      throw new InvalidArgumentError(
        `fragcache: prefix must be 1 to 64 characters of letters, digits, "_", "." or "-"; got ${JSON.stringify(prefix)}`,
      )
    }
    if (!Number.isSafeInteger(version) || version < 0) {
      throw new InvalidArgumentError(`fragcache: version must be a non-negative integer; got ${String(version)}`)
    }
    this.base = `${prefix}:${version}:`
    // A short hash, not the base itself: the tag counts toward the 250 bytes and the base may be 82 characters long.
    this.#versionBase = `${this.base}ver:{${hash('sha1', this.base, 'base64url').slice(0, 10)}}:`
  }

  /** The prefix every key of this namespace starts with (for SCAN MATCH and invalidation by path). */
  namespaceBase(ns: KeyNamespace): string {
    return ns === 'ver' ? this.#versionBase : `${this.base}${ns}:`
  }

  /**
   * The key for `name` in namespace `ns`, varied by `inputs` when given.
   * @throws InvalidArgumentError when `name` is not a non-empty string or an input cannot be encoded.
   */
  build(ns: KeyNamespace, name: string, inputs?: readonly unknown[]): string {
    if (inputs === undefined) {
      // A hit looks its key up in an LRU: the same string each time (its hash cached) costs far less than a new one.
      const named = this.#named[ns]
      const known = named.get(name)
      if (known !== undefined) return known
      const key = this.#build(ns, name, undefined)
      if (named.size >= MAX_NAMED) named.clear()
      named.set(name, key)
      return key
    }
    return this.#build(ns, name, inputs)
  }

  #build(ns: KeyNamespace, name: string, inputs: readonly unknown[] | undefined): string {
    if (typeof name !== 'string' || name.length === 0) {
      throw new InvalidArgumentError(`fragcache: a key must be a non-empty string; got ${describeValue(name)}`)
    }
    const base = this.namespaceBase(ns)
    if (inputs === undefined && name.length <= MAX_NAME && base.length + name.length <= MAX_KEY_BYTES && SAFE_PART.test(name)) return `${base}${name}`
    const digest = stableHash(inputs === undefined ? [name] : [name, inputs])
    return `${base}${readablePart(name)}#${digest}`
  }
}

/** A shortened name keeping only safe characters: for people reading keys, never for telling keys apart. */
export function readablePart(name: string): string {
  return name.slice(0, SHORT_NAME).replace(UNSAFE_CHAR, '_')
}

/**
 * A 160-bit hash (27 base64url characters) of a type-tagged, order-stable encoding of `value`:
 * `1` and `"1"` differ, `["a:b"]` and `["a","b"]` differ, object key order does not matter.
 *
 * @example
 * ```ts
 * stableHash({ b: 1, a: [2, '3'] }) === stableHash({ a: [2, '3'], b: 1 }) // true
 * ```
 */
export function stableHash(value: unknown): string {
  return hash('sha1', encodeStable(value), 'base64url')
}

/**
 * The type-tagged encoding behind {@link stableHash}. Strings are JSON-quoted (so no separator inside one can
 * fake a boundary), numbers bare, `undefined` distinct from `null`, dates tagged, object keys sorted.
 * @throws InvalidArgumentError for functions, symbols and cycles, which have no stable meaning in a key.
 */
export function encodeStable(value: unknown, seen: Set<object> = new Set()): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value)
    case 'number':
      return Object.is(value, -0) ? '0' : String(value)
    case 'boolean':
      return value ? 'true' : 'false'
    case 'undefined':
      return 'undefined'
    case 'bigint':
      return `${value}n`
    case 'object': {
      if (value === null) return 'null'
      if (seen.has(value)) throw new InvalidArgumentError('fragcache: a cache key input contains a cycle')
      seen.add(value)
      try {
        if (Array.isArray(value)) return `[${value.map((item) => encodeStable(item, seen)).join(',')}]`
        if (value instanceof Date) return `Date(${Number.isNaN(value.getTime()) ? 'invalid' : value.toISOString()})`
        if (value instanceof Map) return `Map${encodeStable(Object.fromEntries(value), seen)}`
        if (value instanceof Set) return `Set${encodeStable([...value], seen)}`
        const record = value as Record<string, unknown>
        const keys = Object.keys(record).sort()
        return `{${keys.map((key) => `${JSON.stringify(key)}:${encodeStable(record[key], seen)}`).join(',')}}`
      } finally {
        seen.delete(value)
      }
    }
    default:
      throw new InvalidArgumentError(`fragcache: a ${typeof value} cannot be part of a cache key`)
  }
}
