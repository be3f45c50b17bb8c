/**
 * The public API of the cache, with Django's semantics: argument checks, what each call promises (atomicity errors
 * included) and the wiring of the parts. Reads and writes through the tiers are the {@link TierStack}'s; computing on a
 * miss is {@link Computations}'.
 */
import { assembleCache } from './assemble.ts'
import { AtomicWrites } from './atomic-writes.ts'
import type { InvalidationBus } from './bus.ts'
import type { Computations } from './compute.ts'
import { type ComputePlan, type GetOrSetOptions, type PlanDefaults, checkPlan } from './compute-plan.ts'
import { makeEntry } from './entry.ts'
import { InvalidArgumentError } from './errors.ts'
import { type Invalidation, InvalidationLog } from './invalidation-log.ts'
import type { KeyBuilder, KeyOptions } from './keys.ts'
import { LookupStats } from './lookup-stats.ts'
import { checkCacheOptions, type CacheOptions } from './options.ts'
import { tryGetRequestScope } from './request-scope.ts'
import { CacheStats, type CacheStatsSnapshot } from './stats.ts'
import type { TierStack } from './tier-stack.ts'
import type { RedisConnection } from './tiers/redis-client.ts'
import type { RedisTier } from './tiers/redis.ts'
import { type Ttl, checkTtl, expiryFor } from './ttl.ts'
import { variationKey } from './variation.ts'
import type { DataVersions } from './versions.ts'

/**
 * The cache: a per-request scope, then an in-process LRU (L1), then Redis (L2), behind a Django-style API.
 * Create it with {@link createCache}.
 *
 * - A stored `null`, `0`, `''`, `false`, `[]` or `{}` is a hit everywhere; only `undefined` means a miss.
 * - Values come back deeply frozen and shared between callers (copy with `structuredClone` to edit one).
 * - A dead or slow Redis is a miss within `redisTimeoutMs`; only `add`, `incr`, `decr` and `versions.bump`,
 *   which promise atomicity across processes, throw {@link AtomicityError} then.
 *
 * @example
 * ```ts
 * const cache = createCache({ prefix: 'site', redis: process.env.REDIS_URL })
 * const authors = await cache.getOrSet('top_authors', () => db.topAuthors(), { ttl: 900, deps: ['author'] })
 * ```
 */
export class TieredCache {
  /** Data versions: bump them on save, depend on them with `deps`. */
  readonly versions: DataVersions
  /** Builds this cache's keys (for extensions that need the raw key). */
  readonly keys: KeyBuilder
  readonly #stack: TierStack
  readonly #computations: Computations
  readonly #connection: RedisConnection | undefined
  readonly #l2: RedisTier | undefined
  readonly #bus: InvalidationBus | undefined
  readonly #defaultTtl: Ttl
  readonly #planDefaults: PlanDefaults & { readonly plan: ComputePlan }
  readonly #clock: () => number
  readonly #stats = new CacheStats()
  readonly #atomic: AtomicWrites
  readonly #invalidations = new InvalidationLog()
  /** Hits, misses and miss times per fragment and page name (fed by the template tags and the page cache). */
  readonly lookupStats = new LookupStats()

  constructor(options: CacheOptions = {}) {
    const o = checkCacheOptions(options)
    const parts = assembleCache(o, this.#stats, (tags, origin) => this.#logInvalidation(tags, origin))
    this.keys = parts.keys
    this.versions = parts.versions
    this.#stack = parts.stack
    this.#computations = parts.computations
    this.#connection = parts.connection
    this.#l2 = parts.stack.l2
    this.#bus = parts.bus
    this.#defaultTtl = o.ttl
    this.#atomic = new AtomicWrites(parts.stack, o.clock)
    const defaults: PlanDefaults = { ttl: o.ttl, graceMs: o.graceMs, softTimeoutMs: o.softTimeoutMs, lock: parts.locks === undefined ? false : o.lock }
    this.#planDefaults = { ...defaults, plan: checkPlan({}, defaults) }
    this.#clock = o.clock
  }

  /**
   * Resolves once Redis is connected and the invalidation bus is listening (at once without Redis).
   * Reads before then are misses, never errors; await it at start-up for a warm first request.
   * @throws NotReadyError after `timeoutMs`.
   * @example
   * ```ts
   * await cache.ready()
   * ```
   */
  async ready(timeoutMs = 5000): Promise<void> {
    if (!this.#bus || !this.#connection) return
    // The bus has a connection of its own, which may be ready before the cache's: wait for both.
    await Promise.all([this.#connection.ready(timeoutMs), this.#bus.ready(timeoutMs)])
  }

  /**
   * Milliseconds since the epoch by this cache's clock (the injected one in tests), for `Age` headers and the like.
   * @example
   * ```ts
   * const age = Math.floor((cache.now() - storedAt) / 1000)
   * ```
   */
  now(): number {
    return this.#clock()
  }

  /**
   * The value under `key`, or `defaultValue` (undefined unless given) on a miss. A stored falsy value is a hit.
   * @example
   * ```ts
   * const count = await cache.get('visits', 0)
   * ```
   */
  get<T = unknown>(key: string, defaultValue?: undefined, options?: KeyOptions): Promise<T | undefined>
  get<T>(key: string, defaultValue: T, options?: KeyOptions): Promise<T>
  get<T = unknown>(key: string, defaultValue?: T, options: KeyOptions = {}): Promise<T | undefined> {
    // Not async: a near hit answers without an extra promise (they cost, with AsyncLocalStorage on Node 20).
    let fullKey: string
    try {
      fullKey = this.#key(key, options)
    } catch (error) {
      return Promise.reject(error)
    }
    return this.getByKey(fullKey, defaultValue)
  }

  /**
   * {@link get} for a key already built with `cache.keys` (for extensions that compute the key once, as the page cache).
   * @example
   * ```ts
   * const page = await cache.getByKey(cache.keys.build('view', 'GET:/about'))
   * ```
   */
  getByKey<T = unknown>(fullKey: string, defaultValue?: T): Promise<T | undefined> {
    const found = this.#stack.lookup(fullKey, tryGetRequestScope(), this.#clock())
    // A near hit answers without an extra promise (they cost, with AsyncLocalStorage on Node 20).
    if (!(found instanceof Promise)) return Promise.resolve(found === undefined ? defaultValue : (found.value as T))
    return found.then((entry) => (entry === undefined ? defaultValue : (entry.value as T)))
  }

  /**
   * Stores `value` under `key` for `ttl` seconds (default: the cache's), in every tier.
   * @throws InvalidArgumentError for `undefined`, a value JSON cannot carry, a bad TTL or key.
   * @example
   * ```ts
   * await cache.set('top_authors', authors, 900)
   * ```
   */
  async set(key: string, value: unknown, ttl?: Ttl, options: KeyOptions = {}): Promise<void> {
    const fullKey = this.#key(key, options)
    const expiresAt = this.#expiry(ttl, 'set')
    if (expiresAt === undefined) {
      makeEntry(fullKey, value, { expiresAt: null }) // still reject what could never be stored
      await this.#stack.remove([fullKey], tryGetRequestScope())
      return
    }
    await this.#stack.storeMany([{ key: fullKey, ...makeEntry(fullKey, value, { expiresAt }) }])
  }

  /**
   * Stores `value` only if nothing is stored under `key`; true when it stored it. Atomic across processes
   * (SET NX) with Redis.
   * @throws AtomicityError when Redis is configured but unreachable.
   * @example
   * ```ts
   * if (await cache.add('lock:rebuild', 1, 30)) await rebuild()
   * ```
   */
  async add(key: string, value: unknown, ttl?: Ttl): Promise<boolean> {
    const fullKey = this.#key(key, {})
    const expiresAt = this.#expiry(ttl, 'add')
    const made = makeEntry(fullKey, value, { expiresAt: expiresAt ?? null })
    return expiresAt !== undefined && this.#atomic.add(fullKey, key, made)
  }

  /**
   * The value under `key`; on a miss, `compute()`'s result, stored for `ttl`. `compute` runs once per key at a
   * time in this process (concurrent callers share its result or its error; an error is never cached).
   * Inside a request scope with `forceRefresh`, the first read of each key recomputes and writes through.
   * @example
   * ```ts
   * const html = await cache.getOrSet('sidebar:en', () => renderSidebar('en'), { ttl: 300, deps: ['article'] })
   * ```
   */
  getOrSet<T>(key: string, compute: () => T | Promise<T>, options: GetOrSetOptions & KeyOptions = {}): Promise<Awaited<T>> {
    let fullKey: string
    try {
      if (typeof compute !== 'function') {
        throw new InvalidArgumentError(`fragcache: getOrSet("${key}") needs a function to compute the value on a miss`)
      }
      fullKey = this.#key(key, options)
    } catch (error) {
      return Promise.reject(error)
    }
    return this.getOrSetByKey(fullKey, compute, options)
  }

  /**
   * {@link getOrSet} for a key already built with `cache.keys` (for extensions that compute the key once).
   * @example
   * ```ts
   * const key = cache.keys.build('frag', 'sidebar', ['en'])
   * await cache.getOrSetByKey(key, render, { ttl: 300 })
   * ```
   */
  getOrSetByKey<T>(fullKey: string, compute: () => T | Promise<T>, options: GetOrSetOptions = {}): Promise<Awaited<T>> {
    let plan: ComputePlan
    try {
      plan = checkPlan(options, this.#planDefaults)
    } catch (error) {
      return Promise.reject(error)
    }
    const scope = tryGetRequestScope()
    const forced = options.force === true || (scope?.forceRefresh === true && !scope.refreshed.has(fullKey))
    if (forced) scope?.refreshed.add(fullKey)
    return this.#computations.getOrSet(fullKey, compute, plan, scope, forced) as Promise<Awaited<T>>
  }

  /**
   * What is cached under a full key (for this request's values of the `vary` contexts), answered synchronously from the
   * request scope or L1, or undefined when only an asynchronous read could tell. For template engines that cannot wait
   * in some constructs.
   * @example
   * ```ts
   * const html = cache.peekByKey(key, ['user']) // string | undefined
   * ```
   */
  peekByKey(fullKey: string, vary: readonly string[] = []): { value: unknown } | undefined {
    const scope = tryGetRequestScope()
    if (scope?.forceRefresh && !scope.refreshed.has(fullKey)) return undefined
    const start = vary.length === 0 ? fullKey : variationKey(fullKey, vary, scope)
    const entry = this.#stack.peek(start, scope, this.#clock())
    return entry === undefined ? undefined : { value: entry.value }
  }

  /**
   * Reads full keys (built with `cache.keys`) through every tier in one L2 round trip (and one for the versions they
   * need), into the request scope and L1, so that the `peekByKey`/`getOrSetByKey` calls that follow answer without
   * waiting: what a template engine calls before a loop of N cached items (Rails' collection caching). Outside a request
   * scope only L1 is filled.
   * @example
   * ```ts
   * await cache.prefetchByKey(items.map((item) => fragments.prepare(callFor(item)).key))
   * ```
   */
  async prefetchByKey(fullKeys: readonly string[]): Promise<void> {
    await this.#stack.readMany(fullKeys, tryGetRequestScope(), this.#clock())
  }

  /**
   * The values of every key that is cached, as a Map in the order asked (missing keys are absent; stored falsy
   * values are present).
   * One Redis round trip for the keys not found nearer.
   * @example
   * ```ts
   * const counts = await cache.getMany(ids.map((id) => `views:${id}`))
   * counts.get('views:42') ?? 0
   * ```
   */
  async getMany(keys: readonly string[]): Promise<Map<string, unknown>> {
    const scope = tryGetRequestScope()
    const now = this.#clock()
    const fullKeys = keys.map((key) => this.#key(key, {}))
    const read = await this.#stack.readMany(fullKeys, scope, now)
    const found = new Map<string, unknown>()
    for (const [i, entry] of read.entries()) {
      const value = await this.#stack.resolve(fullKeys[i] as string, entry, scope, now)
      if (value !== undefined) found.set(keys[i] as string, value.value)
    }
    return found
  }

  /**
   * Stores several values in one round trip. Every value is checked before any is stored.
   * @example
   * ```ts
   * await cache.setMany({ 'views:1': 10, 'views:2': 0 }, 60)
   * ```
   */
  async setMany(entries: Readonly<Record<string, unknown>> | Iterable<readonly [string, unknown]>, ttl?: Ttl): Promise<void> {
    const pairs = Symbol.iterator in entries ? [...(entries as Iterable<readonly [string, unknown]>)] : Object.entries(entries)
    const expiresAt = this.#expiry(ttl, 'setMany')
    const writes = pairs.map(([key, value]) => {
      const fullKey = this.#key(key, {})
      return { key: fullKey, ...makeEntry(fullKey, value, { expiresAt: expiresAt ?? null }) }
    })
    if (expiresAt === undefined) await this.#stack.remove(writes.map((write) => write.key), tryGetRequestScope())
    else await this.#stack.storeMany(writes)
  }

  /**
   * Adds `by` (default 1) to the integer under `key`, atomically across processes, keeping its expiry.
   * @throws KeyNotFoundError when nothing is stored; NotAnIntegerError when the value is not an integer;
   *   AtomicityError when Redis is configured but unreachable.
   * @example
   * ```ts
   * await cache.add('views:42', 0, null); await cache.incr('views:42') // 1
   * ```
   */
  async incr(key: string, by = 1): Promise<number> {
    if (!Number.isSafeInteger(by)) throw new InvalidArgumentError(`fragcache: incr("${key}"): by must be an integer; got ${String(by)}`)
    return this.#atomic.incr(this.#key(key, {}), key, by)
  }

  /**
   * Subtracts `by` (default 1); see {@link incr}.
   * @example
   * ```ts
   * await cache.decr('seats:left')
   * ```
   */
  decr(key: string, by = 1): Promise<number> {
    if (!Number.isSafeInteger(by)) throw new InvalidArgumentError(`fragcache: decr("${key}"): by must be an integer; got ${String(by)}`)
    return this.incr(key, -by)
  }

  /**
   * Gives the value under `key` a new expiry (`ttl` seconds from now, default the cache's). True when a value was there.
   * @example
   * ```ts
   * await cache.touch('session:abc', 1800)
   * ```
   */
  async touch(key: string, ttl?: Ttl): Promise<boolean> {
    const expiresAt = this.#expiry(ttl, 'touch')
    if (expiresAt === undefined) return this.delete(key)
    return this.#atomic.touch(this.#key(key, {}), expiresAt)
  }

  /**
   * Removes the value under `key` from every tier. True when one was there.
   * @example
   * ```ts
   * await cache.delete('top_authors')
   * ```
   */
  async delete(key: string): Promise<boolean> {
    return (await this.deleteMany([key])) > 0
  }

  /**
   * Removes several keys from every tier; the number that were there.
   * @example
   * ```ts
   * await cache.deleteMany(['a', 'b'])
   * ```
   */
  async deleteMany(keys: readonly string[]): Promise<number> {
    return this.#stack.remove(keys.map((key) => this.#key(key, {})), tryGetRequestScope())
  }

  /**
   * Removes every entry of this cache's prefix (all versions, all namespaces) from every tier; other prefixes on
   * the same Redis are untouched (SCAN in batches, never FLUSHDB). False when Redis could not be cleared (it is down):
   * this process's tiers are cleared all the same.
   * @example
   * ```ts
   * await cache.clear()
   * ```
   */
  async clear(): Promise<boolean> {
    this.#logInvalidation(null, 'local')
    this.#stack.l1.clear()
    tryGetRequestScope()?.entries.clear()
    this.versions.dropAll()
    if (!this.#l2) return true
    const cleared = await this.#l2.deleteByPrefix(this.keys.base.slice(0, this.keys.base.indexOf(':') + 1))
    await this.#bus?.publish({ kind: 'clear' }, true)
    return cleared === true
  }

  /**
   * Counters since the cache was created: hits and misses per tier, Redis errors and outages, computes.
   * @example
   * ```ts
   * const { l1 } = cache.stats(); console.log(l1.hits / (l1.hits + l1.misses))
   * ```
   */
  stats(): CacheStatsSnapshot {
    return this.#stats.snapshot(
      { entries: this.#stack.l1.size, bytes: this.#stack.l1.bytes },
      {
        configured: this.#l2 !== undefined,
        down: this.#connection?.isDown ?? false,
        busConnected: this.#bus?.healthy ?? false,
        busGaps: 0,
        unacknowledged: 0,
        peers: 0,
        ...this.#bus?.counts(),
      },
    )
  }

  /**
   * The latest invalidations this process saw (bumps, path invalidations, clears; its own and those other processes
   * announced), newest first, each with how many entries of this process's L1 depended on it.
   * @example
   * ```ts
   * for (const { at, kind, target, droppedL1 } of cache.invalidations()) console.log(new Date(at), kind, target, droppedL1)
   * ```
   */
  invalidations(): Invalidation[] {
    return this.#invalidations.latest()
  }

  /**
   * The largest entries of this process's L1 (bytes as counted for `maxBytes`), largest first.
   * @example
   * ```ts
   * cache.largestEntries(5) // [{ key: 'fragcache:1:view:/articles#…', bytes: 48213, computeMs: 12.5, expiresAt: … }, …]
   * ```
   */
  largestEntries(limit = 10): { key: string; bytes: number; computeMs: number; expiresAt: number | null }[] {
    return this.#stack.l1.largest(limit)
  }

  /**
   * Calls `listener` with the duration (ms) of every compute this cache runs, failed ones included; `undefined` stops.
   * For metrics ({@link registerCacheMetrics} uses it); with no listener nothing is timed for it.
   * @example
   * ```ts
   * cache.onCompute((ms) => histogram.record(ms))
   * ```
   */
  onCompute(listener: ((ms: number) => void) | undefined): void {
    this.#stats.onCompute = listener
  }

  /**
   * Resolves once everything this cache started has been sent and answered: refreshes computing in the background
   * (stored or failed), writes, and the invalidations published for them. Each is bounded by `redisTimeoutMs`.
   * @example
   * ```ts
   * await cache.flush() // a job, before it reports that the change is visible everywhere
   * ```
   */
  async flush(): Promise<void> {
    await this.#computations.settled()
    await this.#bus?.settled()
  }

  /**
   * Flushes (see {@link flush}), then closes the connections this cache opened (never a Redis client that was passed
   * in). A job that bumps, deletes or invalidates and then closes loses nothing it said.
   * @example
   * ```ts
   * process.on('SIGTERM', () => cache.close())
   * ```
   */
  async close(): Promise<void> {
    await this.flush()
    this.#bus?.close()
    await this.#connection?.close()
  }

  #logInvalidation(tags: readonly string[] | null, origin: 'local' | 'remote'): void {
    this.#invalidations.record(tags, origin, this.#clock(), this.#stack.l1)
  }

  #key(key: string, options: KeyOptions): string {
    return this.keys.build(options.namespace ?? 'c', key, options.inputs)
  }

  #expiry(ttl: Ttl | undefined, where: string): number | null | undefined {
    return expiryFor(ttl === undefined ? this.#defaultTtl : checkTtl(ttl, where), this.#clock())
  }
}
