/**
 * Computing on a miss: `getOrSet`'s flow through the tiers, one compute per key at a time in this process
 * (single-flight), the version snapshot taken before computing, the dependencies the compute records, and the
 * probabilistic early refresh of hot entries near expiry.
 */
import { recordDeps, runRecording } from './dependency-recorder.ts'
import { type Deps, type Entry, makeEntry } from './entry.ts'
import { InvalidArgumentError, describe } from './errors.ts'
import type { Logger } from './options.ts'
import type { RequestScope } from './request-scope.ts'
import type { CacheStats } from './stats.ts'
import type { TierStack } from './tier-stack.ts'
import { isUnavailable } from './tiers/redis-client.ts'
import { type Ttl, checkTtl, expiryFor } from './ttl.ts'
import { type DataVersions, checkTags } from './versions.ts'

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

/** A `getOrSet` call's options, checked. */
export interface ComputePlan {
  readonly ttl: Ttl
  /** Declared data-version tags. */
  readonly tags: readonly string[]
  /** Whether a computed value is stored (undefined: always). */
  readonly store: ((value: unknown) => boolean) | undefined
  /** False: never recompute in the background. */
  readonly earlyRefresh: boolean
}

/**
 * Checks a `getOrSet` call's options once, naming what was wrong.
 * @throws InvalidArgumentError for a bad TTL or tag.
 * @example
 * ```ts
 * checkPlan({ ttl: 60, deps: ['article:1'] }, 300) // { ttl: 60, tags: ['article:1'], store: undefined, earlyRefresh: true }
 * ```
 */
export function checkPlan(options: GetOrSetOptions, defaultTtl: Ttl): ComputePlan {
  const tags = options.deps ?? []
  if (tags.length > 0) checkTags(tags, 'getOrSet deps')
  const ttl = options.ttl === undefined ? defaultTtl : checkTtl(options.ttl, 'getOrSet')
  return { ttl, tags, store: options.store, earlyRefresh: options.earlyRefresh !== false }
}

/** What a compute produced, with the deps it recorded. */
interface Computed {
  readonly value: unknown
  readonly deps: Deps | null
}

/** What {@link Computations} works with. */
export interface ComputationsParts {
  readonly stack: TierStack
  readonly versions: DataVersions
  readonly stats: CacheStats
  readonly clock: () => number
  /** A monotonic clock for compute durations. */
  readonly perf: { now(): number }
  /** Uniform random numbers in (0, 1], for early refresh. */
  readonly random: () => number
  /** XFetch's beta (0: off). */
  readonly earlyRefresh: number
  readonly logger: Logger
}

/**
 * The computations of one cache.
 * @example
 * ```ts
 * const computations = new Computations({ stack, versions, stats, clock, perf: performance, random: Math.random, earlyRefresh: 1, logger })
 * await computations.getOrSet(key, () => render(), plan, scope, false)
 * ```
 */
export class Computations {
  readonly #p: ComputationsParts
  readonly #inflight = new Map<string, Promise<Computed>>()
  /** Early refreshes under way, for {@link settled}. */
  readonly #background = new Set<Promise<unknown>>()

  constructor(parts: ComputationsParts) {
    this.#p = parts
  }

  /**
   * The value under `fullKey`, or `compute()`'s. Not async: a hit in the request scope or L1 answers without an async
   * frame (the hot path of every fragment tag). With `force`, computes and writes through whatever is cached.
   */
  getOrSet(fullKey: string, compute: () => unknown, plan: ComputePlan, scope: RequestScope | undefined, force: boolean): Promise<unknown> {
    if (force) return this.#computeShared(fullKey, compute, plan, true)
    const now = this.#p.clock()
    const near = this.#p.stack.readNear(fullKey, scope, now)
    if (near !== undefined) return Promise.resolve(this.#serve(near, fullKey, compute, plan, now))
    return this.#getOrSetFar(fullKey, compute, plan, scope, now)
  }

  /** Resolves once every background refresh started so far has finished (stored or failed). */
  async settled(): Promise<void> {
    while (this.#background.size > 0) await Promise.allSettled([...this.#background])
  }

  /** True while a compute of `fullKey` is running in this process. */
  isComputing(fullKey: string): boolean {
    return this.#inflight.has(fullKey)
  }

  async #getOrSetFar(fullKey: string, compute: () => unknown, plan: ComputePlan, scope: RequestScope | undefined, now: number): Promise<unknown> {
    if (plan.tags.length > 0) this.#p.versions.prefetch(plan.tags)
    const entry = await this.#p.stack.readFar(fullKey, scope, now)
    if (entry !== undefined) return this.#serve(entry, fullKey, compute, plan, now)
    return this.#computeShared(fullKey, compute, plan, false)
  }

  /** A hit: records its deps into any compute around it, and maybe starts an early refresh. */
  #serve(entry: Entry, fullKey: string, compute: () => unknown, plan: ComputePlan, now: number): unknown {
    recordDeps(entry.deps)
    if (plan.earlyRefresh && this.#shouldRefreshEarly(entry, now)) this.#refreshInBackground(fullKey, compute, plan)
    return entry.value
  }

  /** A miss: one compute per key at a time, whose deps every caller records. */
  async #computeShared(fullKey: string, compute: () => unknown, plan: ComputePlan, force: boolean): Promise<unknown> {
    const computed = await this.#computeOnce(fullKey, compute, plan, force)
    recordDeps(computed.deps)
    return computed.value
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
    this.#p.stats.computes += 1
    // Versions are read before computing: a bump during the compute leaves the entry already out of date.
    const versions = tags.length > 0 ? await this.#p.versions.read(tags) : new Map<string, number>()
    const storable = !isUnavailable(versions)
    const started = this.#p.perf.now()
    let result: Computed
    try {
      result = await runRecording(compute, storable ? versions : new Map())
    } catch (error) {
      this.#p.stats.computeErrors += 1
      throw error
    }
    if (store !== undefined && !store(result.value)) return result
    if (result.value === undefined) {
      throw new InvalidArgumentError(`fragcache: the compute function for "${fullKey}" returned undefined; return null to cache "nothing"`)
    }
    const expiresAt = expiryFor(ttl, this.#p.clock())
    const { entry, payload } = makeEntry(fullKey, result.value, expiresAt ?? null, this.#p.perf.now() - started, result.deps)
    if (expiresAt !== undefined && storable) await this.#p.stack.store({ key: fullKey, entry, payload })
    return { value: entry.value, deps: entry.deps }
  }

  #shouldRefreshEarly(entry: Entry, now: number): boolean {
    // XFetch (Vattani et al.): the closer to expiry and the costlier the compute, the likelier an early refresh.
    if (this.#p.earlyRefresh <= 0 || entry.expiresAt === null || entry.computeMs <= 0) return false
    return now - entry.computeMs * this.#p.earlyRefresh * Math.log(this.#p.random()) >= entry.expiresAt
  }

  #refreshInBackground(fullKey: string, compute: () => unknown, plan: ComputePlan): void {
    if (this.#inflight.has(fullKey)) return
    this.#p.stats.earlyRefreshes += 1
    const refresh = this.#computeOnce(fullKey, compute, plan, false)
      .catch((error: unknown) => {
        this.#p.logger.error(`fragcache: early refresh of "${fullKey}" failed; the cached value stays: ${describe(error)}`)
      })
      .finally(() => this.#background.delete(refresh))
    this.#background.add(refresh)
  }
}
