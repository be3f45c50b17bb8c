/**
 * A `getOrSet` call's options, and the checked plan they become (with the cache's defaults filled in): TTL, grace, soft
 * timeout, declared deps, the lock, whether to store and whether to refresh early.
 */
import { InvalidArgumentError, describeValue } from './errors.ts'
import { checkContextNames } from './request-scope.ts'
import { type Ttl, checkTtl } from './ttl.ts'
import { checkTags } from './versions.ts'

/** The cross-process lock of a compute: held at most `ttlMs` (renewed while computing); others wait at most `waitMs`. */
export interface LockOptions {
  ttlMs?: number
  waitMs?: number
}

/** Options of {@link TieredCache.getOrSet}. */
export interface GetOrSetOptions {
  /** Seconds; null for no expiry; 0 or less computes without storing. Default: the cache's `ttl`. */
  ttl?: Ttl
  /**
   * Seconds an entry is kept past its TTL, stale: served when its recompute fails or outlives `softTimeoutMs`, and to
   * every caller but the one recomputing it. Never served once a dep was bumped. Default: the cache's `grace`.
   */
  grace?: number
  /** With a stale value in hand, a recompute slower than this serves it now and stores the fresh one when done. */
  softTimeoutMs?: number
  /** Recompute even if a value is cached, and write the fresh value through every tier. */
  force?: boolean
  /** Data-version tags the value depends on: bumping any of them invalidates it. */
  deps?: readonly string[]
  /**
   * Whether a computed value is stored (default: always). A value it refuses is returned as computed, unchecked
   * and unfrozen, and nothing is stored (for callers such as the page cache, whose render may turn out private).
   */
  store?: (value: unknown) => boolean
  /** Set false for a compute that must never run in the background (the default follows the cache's option). */
  earlyRefresh?: boolean
  /**
   * What a cached value must look like to be served (a fragment: a string; a page: a stored page). One that does not is
   * treated as corrupt: never returned, deleted, recomputed and stored anew.
   */
  accept?: (value: unknown) => boolean
  /** One compute across processes (with Redis): the lock's bounds, or false for none. Default: the cache's `lock`. */
  lock?: LockOptions | false
  /**
   * Request contexts the value varies by (`'user'`, `['lang', 'user']`, declared on the request scope): one entry per
   * value of each. Contexts nested entries vary by are found by themselves; this names those the compute reads itself.
   */
  vary?: string | readonly string[]
}

/** A `getOrSet` call's options, checked, with the cache's defaults. */
export interface ComputePlan {
  readonly ttl: Ttl
  readonly graceMs: number
  readonly softTimeoutMs: number | undefined
  /** Declared data-version tags. */
  readonly tags: readonly string[]
  /** Whether a computed value is stored (undefined: always). */
  readonly store: ((value: unknown) => boolean) | undefined
  /** False: never recompute in the background. */
  readonly earlyRefresh: boolean
  /** What a cached value must look like to be served (undefined: anything). */
  readonly accept: ((value: unknown) => boolean) | undefined
  readonly lock: Required<LockOptions> | false
  /** Declared request contexts, sorted. */
  readonly vary: readonly string[]
}

/** The cache-wide defaults a plan starts from. */
export interface PlanDefaults {
  readonly ttl: Ttl
  readonly graceMs: number
  readonly softTimeoutMs: number | undefined
  readonly lock: Required<LockOptions> | false
}

/**
 * Checks a `getOrSet` call's options once, naming what was wrong, and fills in the cache's defaults.
 * @throws InvalidArgumentError for a bad TTL, grace, soft timeout, tag or lock.
 * @example
 * ```ts
 * checkPlan({ ttl: 60, deps: ['article:1'] }, defaults) // { ttl: 60, tags: ['article:1'], graceMs: 0, … }
 * ```
 */
export function checkPlan(options: GetOrSetOptions, defaults: PlanDefaults & { readonly plan?: ComputePlan }): ComputePlan {
  // No option of a plan given (the common `getOrSet(key, fn)`): the cache's own, checked once.
  if (defaults.plan !== undefined && hasNoPlanOption(options)) return defaults.plan
  const tags = options.deps ?? []
  if (tags.length > 0) checkTags(tags, 'getOrSet deps')
  return {
    ttl: options.ttl === undefined ? defaults.ttl : checkTtl(options.ttl, 'getOrSet'),
    graceMs: options.grace === undefined ? defaults.graceMs : graceMs(options.grace, 'getOrSet'),
    softTimeoutMs: options.softTimeoutMs === undefined ? defaults.softTimeoutMs : milliseconds(options.softTimeoutMs, 'getOrSet: softTimeoutMs'),
    tags,
    store: options.store,
    earlyRefresh: options.earlyRefresh !== false,
    accept: options.accept,
    lock: options.lock === undefined ? defaults.lock : checkLock(options.lock, defaults.lock, 'getOrSet'),
    vary: options.vary === undefined ? NO_CONTEXTS : checkContextNames(options.vary, 'getOrSet'),
  }
}

/**
 * Grace in seconds, checked, as milliseconds.
 * @example
 * ```ts
 * graceMs(60, 'options') // 60000
 * ```
 */
export function graceMs(grace: unknown, where: string): number {
  if (typeof grace !== 'number' || !Number.isFinite(grace) || grace < 0) {
    throw new InvalidArgumentError(`fragcache: ${where}: grace must be a number of seconds of at least 0; got ${describeValue(grace)}`)
  }
  return Math.ceil(grace * 1000)
}

/**
 * A lock option checked: false, or the bounds with `base`'s (or the built-in defaults) filled in.
 * @example
 * ```ts
 * checkLock({ waitMs: 100 }, false, 'options') // { ttlMs: 5000, waitMs: 100 }
 * ```
 */
export function checkLock(lock: unknown, base: Required<LockOptions> | false, where: string): Required<LockOptions> | false {
  if (lock === false) return false
  if (typeof lock !== 'object' || lock === null) {
    throw new InvalidArgumentError(`fragcache: ${where}: lock must be false or { ttlMs, waitMs }; got ${describeValue(lock)}`)
  }
  const { ttlMs, waitMs, ...rest } = lock as LockOptions
  const unknown = Object.keys(rest)[0]
  if (unknown !== undefined) throw new InvalidArgumentError(`fragcache: ${where}: unknown lock option "${unknown}"; known options are ttlMs, waitMs`)
  const defaults = base === false ? DEFAULT_LOCK : base
  return {
    ttlMs: ttlMs === undefined ? defaults.ttlMs : milliseconds(ttlMs, `${where}: lock.ttlMs`, 1),
    waitMs: waitMs === undefined ? defaults.waitMs : milliseconds(waitMs, `${where}: lock.waitMs`),
  }
}

const NO_CONTEXTS: readonly string[] = Object.freeze([])

/** The lock a cache with Redis uses unless told otherwise. */
export const DEFAULT_LOCK: Required<LockOptions> = { ttlMs: 5000, waitMs: 5000 }

function milliseconds(value: unknown, what: string, min = 0): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
    throw new InvalidArgumentError(`fragcache: ${what} must be a number of milliseconds of at least ${min}; got ${describeValue(value)}`)
  }
  return value
}

function hasNoPlanOption(o: GetOrSetOptions): boolean {
  return (
    o.ttl === undefined &&
    o.grace === undefined &&
    o.softTimeoutMs === undefined &&
    o.deps === undefined &&
    o.store === undefined &&
    o.earlyRefresh === undefined &&
    o.accept === undefined &&
    o.lock === undefined &&
    o.vary === undefined
  )
}
