import { createRequire } from 'node:module'
import type { Redis as RedisType } from 'ioredis'
import { InvalidationBus } from './bus.ts'
import { recordDeps, runRecording } from './dependency-recorder.ts'
import { type Deps, type Entry, isExpired, makeEntry } from './entry.ts'
import { AtomicityError, InvalidArgumentError, KeyNotFoundError, NotAnIntegerError, NotReadyError, describe } from './errors.ts'
import { KeyBuilder, type KeyNamespace } from './keys.ts'
import { checkCacheOptions, type CacheOptions, type Logger } from './options.ts'
import { type RequestScope, tryGetRequestScope } from './request-scope.ts'
import { CacheStats, type CacheStatsSnapshot } from './stats.ts'
import { MemoryTier } from './tiers/memory.ts'
import { type RedisClient, RedisTier, UNAVAILABLE } from './tiers/redis.ts'
import { type Ttl, checkTtl, expiryFor } from './ttl.ts'
import { DataVersions, checkTags } from './versions.ts'

/** Options of {@link TieredCache.getOrSet}. */
export interface GetOrSetOptions {
  /** Seconds; null for no expiry; 0 or less computes without storing. Default: the cache's `ttl`. */
  ttl?: Ttl
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
}

/** One read beyond L1: what judging and back-filling its entry needs. */
interface FarRead {
  readonly fullKey: string
  readonly scope: RequestScope | undefined
  readonly now: number
  /** The invalidation epoch when the read started. */
  readonly epoch: number
  readonly fromRedis: boolean
}

/** What a compute needs besides the function itself. */
interface ComputePlan {
  readonly ttl: Ttl
  readonly tags: readonly string[]
  readonly store: ((value: unknown) => boolean) | undefined
}

/** Where a key lives: `c` (the default) for values, `frag` for fragments, `view` for pages. */
export interface KeyOptions {
  namespace?: KeyNamespace
  /** Values that vary the key (hashed into it). */
  inputs?: readonly unknown[]
}

interface Computed {
  value: unknown
  deps: Deps | null
}

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
  readonly #memory: MemoryTier
  readonly #redis: RedisTier | undefined
  readonly #bus: InvalidationBus | undefined
  readonly #ownedClient: RedisClient | undefined
  readonly #defaultTtl: Ttl
  readonly #clock: () => number
  readonly #random: () => number
  readonly #earlyRefresh: number
  readonly #busDownTrustMs: number
  readonly #logger: Logger
  readonly #stats = new CacheStats()
  readonly #inflight = new Map<string, Promise<Computed>>()
  /**
   * Invalidation epochs, so that a Redis read that raced an invalidation from another process does not back-fill L1
   * with what it read: `#epoch` counts invalidations, `#keyEpochs` remembers the last one per key (bounded), and
   * `#clearEpoch` the last that dropped everything.
   */
  #epoch = 0
  readonly #keyEpochs = new Map<string, number>()
  #clearEpoch = 0
  /** Redis reads under way; with none, no invalidation needs remembering. */
  #farReads = 0

  constructor(options: CacheOptions = {}) {
    const o = checkCacheOptions(options)
    this.keys = new KeyBuilder(o.prefix, o.version)
    this.#defaultTtl = o.ttl
    this.#clock = o.clock
    this.#random = o.random
    this.#earlyRefresh = o.earlyRefresh
    this.#busDownTrustMs = o.busDownTrustMs
    this.#logger = o.logger
    this.#memory = new MemoryTier(o.l1)
    let client: RedisClient | undefined
    if (typeof o.redis === 'string') {
      client = new (loadRedis())(o.redis, {
        enableOfflineQueue: false,
        enableAutoPipelining: true,
        maxRetriesPerRequest: 0,
        connectTimeout: Math.max(1000, o.redisTimeoutMs * 10),
        retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 2000),
      })
      client.on('error', () => {}) // outages are reported once, by the tier
      this.#ownedClient = client
    } else {
      client = o.redis
    }
    if (client) {
      this.#redis = new RedisTier(client, {
        timeoutMs: o.redisTimeoutMs,
        breaker: o.redisBreaker,
        events: {
          corrupt: (key) => {
            this.#stats.corrupt += 1
            this.#logger.error(`fragcache: the value under "${key}" in Redis was not written by fragcache; treated as a miss`)
          },
          failed: (operation, error, outageStarted) => {
            this.#stats.redisErrors += 1
            if (outageStarted) {
              this.#stats.outages += 1
              this.#logger.warn(`fragcache: Redis is unavailable (${operation}: ${describe(error)}); serving from memory until it is back`)
            }
          },
          recovered: () => {},
        },
      })
      this.#bus = new InvalidationBus(client, `fragcache:${o.prefix}`, {
        message: (message) => {
          if (message.kind === 'keys') for (const key of message.keys) this.#invalidateLocal(key)
          else if (message.kind === 'tags') this.versions.drop(message.tags)
          else this.#dropLocal()
        },
        connected: () => {
          // Messages sent while the bus was down are lost: nothing this process holds can be trusted any more.
          this.#dropLocal()
          this.versions.dropAll()
        },
      })
      this.#bus.ready().catch(() => {})
    }
    this.versions = new DataVersions({
      keys: this.keys,
      redis: this.#redis,
      clock: this.#clock,
      busDownTrustMs: o.busDownTrustMs,
      busHealthy: () => this.#bus?.healthy ?? true,
      publish: (tags) => void this.#bus?.publish({ kind: 'tags', tags }),
    })
  }

  /**
   * Resolves once Redis is connected and the invalidation bus is listening (at once without Redis).
   * Reads before then are misses, never errors; await it at start-up for a warm first request.
   * @example
   * ```ts
   * await cache.ready()
   * ```
   */
  async ready(timeoutMs = 5000): Promise<void> {
    if (!this.#bus || !this.#redis) return
    const client = this.#redis.client
    // The bus has a connection of its own, which may be ready before the cache's: wait for both.
    const clientReady =
      client.status === 'ready' || client.status === 'wait'
        ? Promise.resolve()
        : new Promise<void>((resolve) => client.once('ready', () => resolve()))
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new NotReadyError(timeoutMs)), timeoutMs)
    })
    try {
      await Promise.race([Promise.all([clientReady, this.#bus.ready()]), timeout])
    } finally {
      clearTimeout(timer)
    }
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
    const scope = tryGetRequestScope()
    const now = this.#clock()
    const near = this.#readNear(fullKey, scope, now)
    if (near !== undefined) {
      recordDeps(near.deps)
      return Promise.resolve(near.value as T)
    }
    return this.#readFar(fullKey, scope, now).then((entry) => {
      if (entry === undefined) return defaultValue
      recordDeps(entry.deps)
      return entry.value as T
    })
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
      makeEntry(fullKey, value, null) // still reject what could never be stored
      await this.#remove([fullKey])
      return
    }
    const { entry, payload } = makeEntry(fullKey, value, expiresAt)
    await this.#store(fullKey, entry, payload)
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
    const { entry, payload } = makeEntry(fullKey, value, expiresAt ?? null)
    if (expiresAt === undefined) return false
    const now = this.#clock()
    if (this.#redis) {
      const added = await this.#redis.add(fullKey, entry, payload, now)
      if (added === UNAVAILABLE) throw new AtomicityError('add', key, new Error('Redis is unavailable'))
      if (!added) return false
      this.#remember(fullKey, entry)
      this.#announce([fullKey])
      return true
    }
    if (this.#memory.get(fullKey, now) !== undefined) return false
    this.#remember(fullKey, entry)
    return true
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
      const tags = options.deps ?? []
      if (tags.length > 0) checkTags(tags, 'getOrSet deps')
      plan = { ttl: options.ttl === undefined ? this.#defaultTtl : checkTtl(options.ttl, 'getOrSet'), tags, store: options.store }
    } catch (error) {
      return Promise.reject(error)
    }
    const scope = tryGetRequestScope()
    if (options.force === true || (scope?.forceRefresh === true && !scope.refreshed.has(fullKey))) {
      scope?.refreshed.add(fullKey)
      return this.#computeShared(fullKey, compute, plan, true) as Promise<Awaited<T>>
    }
    const now = this.#clock()
    const near = this.#readNear(fullKey, scope, now)
    // A near hit answers without an async frame: the hot path of every fragment tag.
    if (near !== undefined) return Promise.resolve(this.#serve(near, fullKey, compute, plan, options, now) as Awaited<T>)
    return this.#getOrSetFar(fullKey, compute, plan, options, scope, now) as Promise<Awaited<T>>
  }

  async #getOrSetFar(
    fullKey: string,
    compute: () => unknown,
    plan: ComputePlan,
    options: GetOrSetOptions,
    scope: RequestScope | undefined,
    now: number,
  ): Promise<unknown> {
    if (plan.tags.length > 0) this.versions.prefetch(plan.tags)
    const entry = await this.#readFar(fullKey, scope, now)
    if (entry !== undefined) return this.#serve(entry, fullKey, compute, plan, options, now)
    return this.#computeShared(fullKey, compute, plan, false)
  }

  /** A hit: records its deps into any compute around it, and maybe starts an early refresh. */
  #serve(entry: Entry, fullKey: string, compute: () => unknown, plan: ComputePlan, options: GetOrSetOptions, now: number): unknown {
    recordDeps(entry.deps)
    if (options.earlyRefresh !== false && this.#shouldRefreshEarly(entry, now)) this.#refreshInBackground(fullKey, compute, plan)
    return entry.value
  }

  /** A miss: one compute per key at a time, whose deps every caller records. */
  async #computeShared(fullKey: string, compute: () => unknown, plan: ComputePlan, force: boolean): Promise<unknown> {
    const computed = await this.#computeOnce(fullKey, compute, plan, force)
    recordDeps(computed.deps)
    return computed.value
  }

  /**
   * What is cached under a full key, answered synchronously from the request scope or L1, or undefined when
   * only an asynchronous read could tell. For template engines that cannot wait in some constructs.
   * @example
   * ```ts
   * const html = cache.peekByKey(key) // string | undefined
   * ```
   */
  peekByKey(fullKey: string): { value: unknown } | undefined {
    const scope = tryGetRequestScope()
    if (scope?.forceRefresh && !scope.refreshed.has(fullKey)) return undefined
    // A probe: its misses are not counted, the read that follows it counts them.
    const entry = this.#readNear(fullKey, scope, this.#clock(), false)
    if (entry === undefined) return undefined
    recordDeps(entry.deps)
    return { value: entry.value }
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
    const entries = fullKeys.map((fullKey) => this.#readNear(fullKey, scope, now))
    const far = fullKeys.flatMap((fullKey, i) => (entries[i] === undefined ? [{ i, fullKey }] : []))
    if (far.length > 0) {
      this.#farReads += 1
      const epoch = this.#epoch
      try {
        const remote = this.#redis ? await this.#redis.getMany(far.map((k) => k.fullKey)) : UNAVAILABLE
        // All at once, so the versions every entry needs are read in one round trip.
        const accepted = await Promise.all(
          far.map(({ fullKey }, j) => {
            // Redis down: what this process holds is the best there is (its deps are still checked).
            const entry = remote === UNAVAILABLE ? this.#memory.get(fullKey, now) : remote[j]
            return entry && this.#accept({ fullKey, scope, now, epoch, fromRedis: remote !== UNAVAILABLE }, entry)
          }),
        )
        far.forEach(({ i }, j) => {
          entries[i] = accepted[j]
          if (accepted[j] === undefined && this.#redis) this.#stats.miss('redis')
        })
      } finally {
        this.#farReadDone()
      }
    }
    const found = new Map<string, unknown>()
    entries.forEach((entry, i) => {
      if (entry === undefined) return
      recordDeps(entry.deps)
      found.set(keys[i] as string, entry.value)
    })
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
    const items = pairs.map(([key, value]) => {
      const fullKey = this.#key(key, {})
      return { key: fullKey, ...makeEntry(fullKey, value, expiresAt ?? null) }
    })
    if (expiresAt === undefined) {
      await this.#remove(items.map((item) => item.key))
      return
    }
    for (const item of items) this.#remember(item.key, item.entry)
    if (this.#redis) await this.#redis.setMany(items, this.#clock())
    this.#announce(items.map((item) => item.key))
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
    const fullKey = this.#key(key, {})
    const scope = tryGetRequestScope()
    if (this.#redis) {
      const reply = await this.#redis.incr(fullKey, by)
      if (reply === UNAVAILABLE) throw new AtomicityError('incr', key, new Error('Redis is unavailable'))
      if (reply === 'missing') throw new KeyNotFoundError(key)
      if (reply === 'nan') throw new NotAnIntegerError(key)
      this.#forget([fullKey], scope)
      this.#announce([fullKey])
      return reply
    }
    const now = this.#clock()
    const entry = this.#memory.get(fullKey, now)
    if (entry === undefined) throw new KeyNotFoundError(key)
    if (!Number.isSafeInteger(entry.value)) throw new NotAnIntegerError(key)
    const next = (entry.value as number) + by
    this.#remember(fullKey, makeEntry(fullKey, next, entry.expiresAt).entry)
    return next
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
    const fullKey = this.#key(key, {})
    const expiresAt = this.#expiry(ttl, 'touch')
    if (expiresAt === undefined) return this.delete(key)
    const now = this.#clock()
    const scope = tryGetRequestScope()
    const local = this.#memory.get(fullKey, now)
    if (local) this.#remember(fullKey, { ...local, expiresAt })
    if (!this.#redis) return local !== undefined
    const touched = await this.#redis.touch(fullKey, expiresAt, now)
    if (touched === UNAVAILABLE) return local !== undefined
    if (!touched) this.#forget([fullKey], scope)
    this.#announce([fullKey])
    return touched
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
    return this.#remove(keys.map((key) => this.#key(key, {})))
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
    this.#memory.clear()
    tryGetRequestScope()?.entries.clear()
    this.versions.dropAll()
    if (!this.#redis) return true
    const cleared = await this.#redis.deleteByPrefix(this.keys.base.slice(0, this.keys.base.indexOf(':') + 1))
    void this.#bus?.publish({ kind: 'clear' })
    return cleared === true
  }

  /**
   * Counters since the cache was created: hits and misses per tier, Redis errors and outages, computes.
   * @example
   * ```ts
   * const { memory } = cache.stats(); console.log(memory.hits / (memory.hits + memory.misses))
   * ```
   */
  stats(): CacheStatsSnapshot {
    return this.#stats.snapshot(
      { entries: this.#memory.size, bytes: this.#memory.bytes },
      { configured: this.#redis !== undefined, down: this.#redis?.isDown ?? false, busConnected: this.#bus?.healthy ?? false },
    )
  }

  /**
   * Closes the connections this cache opened (never a Redis client that was passed in).
   * @example
   * ```ts
   * process.on('SIGTERM', () => cache.close())
   * ```
   */
  async close(): Promise<void> {
    await this.#bus?.close()
    if (this.#ownedClient) {
      try {
        await this.#ownedClient.quit()
      } catch {
        this.#ownedClient.disconnect()
      }
    }
  }

  #key(key: string, options: KeyOptions): string {
    return this.keys.build(options.namespace ?? 'c', key, options.inputs)
  }

  #expiry(ttl: Ttl | undefined, where: string): number | null | undefined {
    return expiryFor(ttl === undefined ? this.#defaultTtl : checkTtl(ttl, where), this.#clock())
  }

  /** The request scope, then L1, without waiting; undefined when a slower read is needed. */
  #readNear(fullKey: string, scope: RequestScope | undefined, now: number, countMisses = true): Entry | undefined {
    if (scope !== undefined) {
      const scoped = scope.entries.get(fullKey)
      if (scoped !== undefined && !isExpired(scoped, now)) {
        this.#stats.hit('request')
        return scoped
      }
      if (countMisses) this.#stats.miss('request')
    }
    const entry = this.#trustedLocal(fullKey, now)
    if (entry !== undefined && entry.deps !== null) {
      const valid = this.versions.check(entry.deps)
      if (valid === false) this.#memory.delete(fullKey)
      if (valid !== true) {
        if (countMisses) this.#stats.miss('memory')
        return undefined
      }
    }
    if (entry === undefined) {
      if (countMisses) this.#stats.miss('memory')
      return undefined
    }
    this.#stats.hit('memory')
    scope?.entries.set(fullKey, entry)
    return entry
  }

  /** The L1 entry, unless the bus is down and the entry is older than `busDownTrustMs` (another process may have changed it). */
  #trustedLocal(fullKey: string, now: number): Entry | undefined {
    const slot = this.#memory.getSlot(fullKey, now)
    if (slot === undefined) return undefined
    if (this.#bus?.healthy === false && now - slot.storedAt > this.#busDownTrustMs) return undefined
    return slot.entry
  }

  /** L1 entries whose deps need reading, then Redis. */
  async #readFar(fullKey: string, scope: RequestScope | undefined, now: number): Promise<Entry | undefined> {
    this.#farReads += 1
    const epoch = this.#epoch
    try {
      const remote = this.#redis ? await this.#redis.get(fullKey) : UNAVAILABLE
      // Redis down: what this process holds is the best there is (its deps are still checked).
      const entry = remote === UNAVAILABLE ? this.#memory.get(fullKey, now) : remote
      let accepted = entry && this.#accept({ fullKey, scope, now, epoch, fromRedis: remote !== UNAVAILABLE }, entry)
      if (accepted instanceof Promise) accepted = await accepted
      if (accepted === undefined && this.#redis) this.#stats.miss('redis')
      return accepted
    } finally {
      this.#farReadDone()
    }
  }

  /**
   * Checks an entry read from Redis (or L1 during an outage), and back-fills the nearer tiers with it. Answers without
   * waiting unless versions must be read.
   */
  #accept(read: FarRead, entry: Entry): Entry | undefined | Promise<Entry | undefined> {
    if (isExpired(entry, read.now)) return undefined
    const valid = entry.deps === null ? true : this.versions.check(entry.deps)
    if (valid === undefined) return this.versions.verify(entry.deps as Deps).then((verified) => this.#settle(read, entry, verified))
    return this.#settle(read, entry, valid)
  }

  #settle({ fullKey, scope, now, epoch, fromRedis }: FarRead, entry: Entry, valid: boolean | typeof UNAVAILABLE): Entry | undefined {
    if (valid !== true) {
      if (valid === false) this.#memory.delete(fullKey)
      return undefined
    }
    this.#stats.hit(fromRedis ? 'redis' : 'memory')
    // The entry keeps its own expiresAt: a back-fill never extends its life.
    if (fromRedis && this.#unchangedSince(fullKey, epoch)) this.#memory.set(fullKey, entry, now)
    scope?.entries.set(fullKey, entry)
    return entry
  }

  #computeOnce(fullKey: string, compute: () => unknown, plan: ComputePlan, force: boolean): Promise<Computed> {
    const running = this.#inflight.get(fullKey)
    if (running !== undefined && !force) return running
    const promise = this.#computeAndStore(fullKey, compute, plan).finally(() => {
      if (this.#inflight.get(fullKey) === promise) this.#inflight.delete(fullKey)
    })
    this.#inflight.set(fullKey, promise)
    return promise
  }

  async #computeAndStore(fullKey: string, compute: () => unknown, { ttl, tags, store }: ComputePlan): Promise<Computed> {
    this.#stats.computes += 1
    // Versions are read before computing: a bump during the compute leaves the entry already out of date.
    const versions = tags.length > 0 ? await this.versions.read(tags) : new Map<string, number>()
    const storable = versions !== UNAVAILABLE
    const started = performance.now()
    let result: { value: unknown; deps: Deps | null }
    try {
      result = await runRecording(compute, storable ? versions : new Map())
    } catch (error) {
      this.#stats.computeErrors += 1
      throw error
    }
    if (store !== undefined && !store(result.value)) return result
    if (result.value === undefined) {
      throw new InvalidArgumentError(`fragcache: the compute function for "${fullKey}" returned undefined; return null to cache "nothing"`)
    }
    const now = this.#clock()
    const expiresAt = expiryFor(ttl, now)
    const { entry, payload } = makeEntry(fullKey, result.value, expiresAt ?? null, performance.now() - started, result.deps)
    if (expiresAt !== undefined && storable) await this.#store(fullKey, entry, payload)
    return { value: entry.value, deps: entry.deps }
  }

  #shouldRefreshEarly(entry: Entry, now: number): boolean {
    // XFetch (Vattani et al.): the closer to expiry and the costlier the compute, the likelier an early refresh.
    if (this.#earlyRefresh <= 0 || entry.expiresAt === null || entry.computeMs <= 0) return false
    return now - entry.computeMs * this.#earlyRefresh * Math.log(this.#random()) >= entry.expiresAt
  }

  #refreshInBackground(fullKey: string, compute: () => unknown, plan: ComputePlan): void {
    if (this.#inflight.has(fullKey)) return
    this.#stats.earlyRefreshes += 1
    this.#computeOnce(fullKey, compute, plan, false).catch((error: unknown) => {
      this.#logger.error(`fragcache: early refresh of "${fullKey}" failed; the cached value stays: ${describe(error)}`)
    })
  }

  async #store(fullKey: string, entry: Entry, payload: string): Promise<void> {
    this.#remember(fullKey, entry)
    if (!this.#redis) return
    await this.#redis.set(fullKey, entry, payload, this.#clock())
    this.#announce([fullKey])
  }

  /** Puts an entry in the request scope and L1. */
  #remember(fullKey: string, entry: Entry): void {
    tryGetRequestScope()?.entries.set(fullKey, entry)
    this.#memory.set(fullKey, entry, this.#clock())
  }

  #forget(fullKeys: readonly string[], scope: RequestScope | undefined): number {
    let count = 0
    for (const key of fullKeys) {
      scope?.entries.delete(key)
      if (this.#memory.delete(key)) count += 1
    }
    return count
  }

  async #remove(fullKeys: readonly string[]): Promise<number> {
    const local = this.#forget(fullKeys, tryGetRequestScope())
    if (!this.#redis) return local
    const removed = await this.#redis.delete(fullKeys)
    this.#announce(fullKeys)
    return removed === UNAVAILABLE ? local : removed
  }

  /** Another process changed `fullKey`: drop this process's copy, and refuse back-fills of reads that raced it. */
  #invalidateLocal(fullKey: string): void {
    this.#memory.delete(fullKey)
    if (this.#farReads === 0) return
    if (this.#keyEpochs.size >= 10_000) return this.#dropLocal()
    this.#keyEpochs.set(fullKey, ++this.#epoch)
  }

  #dropLocal(): void {
    this.#memory.clear()
    this.#keyEpochs.clear()
    this.#clearEpoch = ++this.#epoch
  }

  /** A read that may back-fill L1 from Redis is over: with none left, no invalidation needs remembering. */
  #farReadDone(): void {
    if (--this.#farReads === 0) this.#keyEpochs.clear()
  }

  /** True when nothing invalidated `fullKey` since `epoch` was read. */
  #unchangedSince(fullKey: string, epoch: number): boolean {
    return this.#clearEpoch <= epoch && (this.#keyEpochs.get(fullKey) ?? 0) <= epoch
  }

  #announce(fullKeys: readonly string[]): void {
    void this.#bus?.publish({ kind: 'keys', keys: [...fullKeys] })
  }
}

/** ioredis is an optional peer: loaded only when a Redis URL is given, so memory-only users need not install it. */
function loadRedis(): typeof RedisType {
  try {
    return (createRequire(import.meta.url)('ioredis') as { Redis: typeof RedisType }).Redis
  } catch (error) {
    throw new InvalidArgumentError(`fragcache: a Redis URL was given but ioredis is not installed (npm install ioredis): ${describe(error)}`)
  }
}
