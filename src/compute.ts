/**
 * Computing on a miss: `getOrSet`'s flow through the tiers; one compute per key at a time in this process
 * (single-flight) and across processes (the lock, whose waiters are woken when the value lands); grace (a stale value
 * served when its recompute fails or is slower than the soft timeout); the version snapshot taken before computing and
 * the dependencies the compute records; and the probabilistic early refresh of hot entries near expiry.
 */
import { recordDeps, runRecording } from './dependency-recorder.ts'
import { type Deps, type Entry, isExpired, isGone, makeEntry } from './entry.ts'
import { InvalidArgumentError, describe } from './errors.ts'
import type { HeldLock, KeyLocks } from './lock.ts'
import type { Logger } from './options.ts'
import { type RequestScope, tryGetRequestScope } from './request-scope.ts'
import type { CacheStats } from './stats.ts'
import type { TierStack } from './tier-stack.ts'
import { isUnavailable } from './tiers/redis-client.ts'
import { type Ttl, expiryFor } from './ttl.ts'
import type { ComputePlan } from './compute-plan.ts'
import type { DataVersions } from './versions.ts'

/** What a compute produced (or what another process stored meanwhile), with the deps it recorded. */
interface Computed {
  readonly value: unknown
  readonly deps: Deps | null
}

/** What {@link Computations} works with. */
export interface ComputationsParts {
  readonly stack: TierStack
  readonly versions: DataVersions
  /** Undefined without Redis. */
  readonly locks: KeyLocks | undefined
  readonly stats: CacheStats
  readonly clock: () => number
  /** A monotonic clock for compute durations and waits. */
  readonly perf: { now(): number }
  /** Uniform random numbers in (0, 1], for early refresh. */
  readonly random: () => number
  /** XFetch's beta (0: off). */
  readonly earlyRefresh: number
  readonly logger: Logger
}

/** Why a compute runs: nothing fresh was found (`miss`, `stale`), XFetch chose it (`early`), or the caller forced it. */
type Why = 'miss' | 'stale' | 'early' | 'force'

/** The outcome of a compute awaited up to a soft timeout. */
type Soft = { readonly done: Computed } | { readonly failed: unknown } | { readonly slow: true }

/**
 * The computations of one cache.
 * @example
 * ```ts
 * const computations = new Computations({ stack, versions, locks, stats, clock, perf: performance, random: Math.random, earlyRefresh: 1, logger })
 * await computations.getOrSet(key, () => render(), plan, scope, false)
 * ```
 */
export class Computations {
  readonly #p: ComputationsParts
  readonly #inflight = new Map<string, Promise<Computed>>()
  /** Work started in the background (early refreshes, computes outliving a soft timeout, lock releases), for {@link settled}. */
  readonly #background = new Set<Promise<unknown>>()

  constructor(parts: ComputationsParts) {
    this.#p = parts
  }

  /**
   * The value under `fullKey`, or `compute()`'s. Not async: a hit in the request scope or L1 answers without an async
   * frame (the hot path of every fragment tag). With `force`, computes and writes through whatever is cached.
   */
  getOrSet(fullKey: string, compute: () => unknown, plan: ComputePlan, scope: RequestScope | undefined, force: boolean): Promise<unknown> {
    if (force) return this.#computeShared(fullKey, compute, plan, undefined, 'force')
    const now = this.#p.clock()
    const near = this.#p.stack.readNear(fullKey, scope, now)
    if (near !== undefined) {
      if (this.#acceptable(near, fullKey, plan)) return Promise.resolve(this.#serve(near, fullKey, compute, plan, now))
      return this.#computeShared(fullKey, compute, plan, undefined, 'force')
    }
    return this.#getOrSetFar(fullKey, compute, plan, scope, now)
  }

  /** False for a cached value the caller cannot use (not what it stores): counted as corrupt, dropped everywhere. */
  #acceptable(entry: Entry, fullKey: string, plan: ComputePlan): boolean {
    if (plan.accept === undefined || plan.accept(entry.value)) return true
    this.#p.stats.corrupt += 1
    this.#p.logger.error(`fragcache: the value under "${fullKey}" is not what its reader stores; treated as a miss and recomputed`)
    this.#p.stack.forget([fullKey], tryGetRequestScope())
    return false
  }

  /** Resolves once the work started in the background so far has finished. */
  async settled(): Promise<void> {
    while (this.#background.size > 0) await Promise.allSettled([...this.#background])
  }

  async #getOrSetFar(fullKey: string, compute: () => unknown, plan: ComputePlan, scope: RequestScope | undefined, now: number): Promise<unknown> {
    if (plan.tags.length > 0) this.#p.versions.prefetch(plan.tags)
    const entry = await this.#p.stack.readFar(fullKey, scope, now)
    if (entry === undefined) return this.#computeShared(fullKey, compute, plan, undefined, 'miss')
    if (!this.#acceptable(entry, fullKey, plan)) return this.#computeShared(fullKey, compute, plan, undefined, 'force')
    if (!isExpired(entry, now)) return this.#serve(entry, fullKey, compute, plan, now)
    return this.#refreshStale(fullKey, compute, plan, entry)
  }

  /** A hit: records its deps into any compute around it, and maybe starts an early refresh. */
  #serve(entry: Entry, fullKey: string, compute: () => unknown, plan: ComputePlan, now: number): unknown {
    recordDeps(entry.deps)
    if (plan.earlyRefresh && this.#shouldRefreshEarly(entry, now)) this.#refreshInBackground(fullKey, compute, plan, entry)
    return entry.value
  }

  /** A miss: one compute per key at a time, whose deps every caller records. */
  async #computeShared(fullKey: string, compute: () => unknown, plan: ComputePlan, stale: Entry | undefined, why: Why): Promise<unknown> {
    const computed = await this.#computeOnce(fullKey, compute, plan, stale, why)
    recordDeps(computed.deps)
    return computed.value
  }

  /**
   * An entry past its expiry, within its grace: one caller recomputes it, every other one is served the stale value at
   * once; the recomputing caller gets the fresh value, or the stale one when the recompute fails or outlives
   * `softTimeoutMs` (then it is stored when it finishes). A stale value whose deps were bumped meanwhile is never served.
   */
  async #refreshStale(fullKey: string, compute: () => unknown, plan: ComputePlan, stale: Entry): Promise<unknown> {
    if (this.#inflight.has(fullKey)) return this.#serveStale(stale, undefined)
    const task = this.#computeOnce(fullKey, compute, plan, stale, 'stale')
    const outcome = await this.#awaitSoftly(task, plan.softTimeoutMs)
    if ('done' in outcome) {
      recordDeps(outcome.done.deps)
      return outcome.done.value
    }
    if ('slow' in outcome) {
      this.#inBackground(task, `the recompute of "${fullKey}" after its soft timeout`)
      if (this.#stillServable(stale)) return this.#serveStale(stale, undefined)
      return this.#computeShared(fullKey, compute, plan, undefined, 'miss')
    }
    if (!this.#stillServable(stale)) throw outcome.failed
    return this.#serveStale(stale, outcome.failed)
  }

  #serveStale(stale: Entry, error: unknown): unknown {
    this.#p.stats.staleServes += 1
    if (error !== undefined) {
      this.#p.stats.staleOnError += 1
      this.#p.logger.error(`fragcache: a recompute failed; serving the stale value within its grace: ${describe(error)}`)
    }
    recordDeps(stale.deps)
    return stale.value
  }

  /** Still within its grace, and no dep bumped since it was read. */
  #stillServable(stale: Entry): boolean {
    return !isGone(stale, this.#p.clock()) && (stale.deps === null || this.#p.versions.check(stale.deps) === true)
  }

  #awaitSoftly(task: Promise<Computed>, softTimeoutMs: number | undefined): Promise<Soft> {
    const settled = task.then(
      (done): Soft => ({ done }),
      (failed: unknown): Soft => ({ failed }),
    )
    if (softTimeoutMs === undefined) return settled
    let timer: NodeJS.Timeout | undefined
    const slow = new Promise<Soft>((resolve) => (timer = setTimeout(() => resolve({ slow: true }), softTimeoutMs)))
    return Promise.race([settled, slow]).finally(() => clearTimeout(timer))
  }

  #computeOnce(fullKey: string, compute: () => unknown, plan: ComputePlan, stale: Entry | undefined, why: Why): Promise<Computed> {
    const running = this.#inflight.get(fullKey)
    if (running !== undefined && why !== 'force') return running
    const promise = this.#lockAndCompute(fullKey, compute, plan, stale, why).finally(() => {
      if (this.#inflight.get(fullKey) === promise) this.#inflight.delete(fullKey)
    })
    this.#inflight.set(fullKey, promise)
    return promise
  }

  /**
   * One compute across processes: takes the key's lock (when Redis and the plan allow it), or waits for the process that
   * holds it and reads what it stored, or (with a stale value in hand) serves that at once. A lock that cannot be taken
   * because Redis is unavailable never blocks: the compute goes ahead.
   */
  async #lockAndCompute(fullKey: string, compute: () => unknown, plan: ComputePlan, stale: Entry | undefined, why: Why): Promise<Computed> {
    const { locks } = this.#p
    let lock: HeldLock | undefined
    // A forced refresh recomputes whatever the others do.
    if (plan.lock !== false && locks !== undefined && why !== 'force') {
      const taken = await locks.acquire(fullKey, plan.lock.ttlMs)
      if (!isUnavailable(taken) && taken.state === 'held') {
        lock = taken.lock
        // Another process may have stored it between this process's read and its lock (an early refresh knows it is there).
        const landed = why === 'early' ? undefined : await this.#landed(fullKey)
        if (landed !== undefined) {
          this.#inBackground(lock.release(true), `releasing the lock of "${fullKey}"`)
          return landed
        }
      } else if (!isUnavailable(taken) && taken.state === 'busy') {
        if (stale !== undefined && this.#stillServable(stale)) {
          this.#p.stats.staleServes += 1
          return { value: stale.value, deps: stale.deps }
        }
        const waited = await this.#waitForOwner(fullKey, plan.lock, taken.ms)
        if ('value' in waited) return waited
        lock = waited.lock
      }
    }
    // A failed compute: released plainly (one waiter takes the lock next). A value that may not be stored: released as a
    // pass, so that the next computes of this key do not queue behind one another for a value that never lands.
    let landed: Promise<boolean | 'failed'> = Promise.resolve('failed')
    try {
      const result = await this.#computeAndStore(fullKey, compute, plan)
      landed = result.landed
      // A forced refresh is a deliberate write-through: done once the value is in Redis.
      if (why === 'force') await landed
      return result.computed
    } finally {
      // Released once the value is in Redis, so that the waiters it wakes find it; woken anyway when nothing landed.
      const released = landed.then(async (stored) => {
        if (lock === undefined) return
        await lock.release(stored !== false)
        if (stored !== true) await this.#p.stack.announce([fullKey])
      })
      this.#inBackground(released, `storing "${fullKey}"`)
    }
  }

  /**
   * Waits while another process holds the lock: woken when it stores the key (or gives up), or when its lock may have
   * expired; then reads, or takes the lock. After `waitMs` in all, computes without the lock.
   */
  async #waitForOwner(fullKey: string, options: { ttlMs: number; waitMs: number }, heldForMs: number): Promise<Computed | { lock: HeldLock | undefined }> {
    const { stack, locks, stats, perf } = this.#p
    stats.lockWaits += 1
    const deadline = perf.now() + options.waitMs
    let ms = heldForMs
    for (;;) {
      const remaining = deadline - perf.now()
      if (remaining <= 0 || locks === undefined) {
        stats.lockTimeouts += 1
        return { lock: undefined }
      }
      const listening = stack.listenForChange(fullKey, Math.min(remaining, ms + 1))
      const already = await this.#landed(fullKey)
      if (already !== undefined) {
        listening.cancel()
        return already
      }
      await listening.changed
      const landed = await this.#landed(fullKey)
      if (landed !== undefined) return landed
      const taken = await locks.acquire(fullKey, options.ttlMs)
      if (isUnavailable(taken) || taken.state === 'pass') return { lock: undefined }
      if (taken.state === 'held') return { lock: taken.lock }
      ms = taken.ms
    }
  }

  /** A fresh entry under `fullKey` in L2 (or L1), as another process may just have stored it. */
  async #landed(fullKey: string): Promise<Computed | undefined> {
    const now = this.#p.clock()
    const entry = await this.#p.stack.readFar(fullKey, undefined, now)
    return entry === undefined || isExpired(entry, now) ? undefined : { value: entry.value, deps: entry.deps }
  }

  /**
   * Runs the compute and stores its value: in the request scope and L1 at once, in Redis in the background (`landed`
   * resolves when it is there, true, or false for a value not stored), so a miss does not wait a round trip more and
   * the misses of a page pipeline their writes. `flush()` waits for them.
   */
  async #computeAndStore(fullKey: string, compute: () => unknown, plan: ComputePlan): Promise<{ computed: Computed; landed: Promise<boolean> }> {
    const { stats, versions, perf, clock } = this.#p
    stats.computes += 1
    // Versions are read before computing: a bump during the compute leaves the entry already out of date.
    // While Redis is down they are provisional: the entry is kept in L1, and recomputed once Redis is back.
    const snapshot = plan.tags.length > 0 ? ((await versions.read(plan.tags, true)) as Map<string, number>) : new Map<string, number>()
    const started = perf.now()
    let result: Computed
    try {
      result = await runRecording(compute, snapshot)
    } catch (error) {
      stats.computeErrors += 1
      throw error
    }
    const notStored = Promise.resolve(false)
    if (plan.store !== undefined && !plan.store(result.value)) return { computed: result, landed: notStored }
    if (result.value === undefined) {
      throw new InvalidArgumentError(`fragcache: the compute function for "${fullKey}" returned undefined; return null to cache "nothing"`)
    }
    const lifetime = lifetimeFor(plan.ttl, plan.graceMs, clock())
    const { entry, payload } = makeEntry(fullKey, result.value, lifetime ?? { expiresAt: null }, perf.now() - started, result.deps)
    const computed = { value: entry.value, deps: entry.deps }
    if (lifetime === undefined) return { computed, landed: notStored }
    return { computed, landed: this.#p.stack.store({ key: fullKey, entry, payload }).then(() => true) }
  }

  #shouldRefreshEarly(entry: Entry, now: number): boolean {
    // XFetch (Vattani et al.): the closer to expiry and the costlier the compute, the likelier an early refresh.
    if (this.#p.earlyRefresh <= 0 || entry.expiresAt === null || entry.computeMs <= 0) return false
    return now - entry.computeMs * this.#p.earlyRefresh * Math.log(this.#p.random()) >= entry.expiresAt
  }

  #refreshInBackground(fullKey: string, compute: () => unknown, plan: ComputePlan, current: Entry): void {
    if (this.#inflight.has(fullKey)) return
    this.#p.stats.earlyRefreshes += 1
    // The current entry is fresh: another process refreshing it (holding the lock) is as good as this one doing it.
    this.#inBackground(this.#computeOnce(fullKey, compute, plan, current, 'early'), `early refresh of "${fullKey}" (the cached value stays)`)
  }

  /** Keeps track of `work` for {@link settled}, logging its failure (`what` failed: …). */
  #inBackground(work: Promise<unknown>, what: string): void {
    const tracked = work
      .catch((error: unknown) => this.#p.logger.error(`fragcache: ${what} failed: ${describe(error)}`))
      .finally(() => this.#background.delete(tracked))
    this.#background.add(tracked)
  }
}

/** When an entry computed at `now` stops being fresh and stops being kept; undefined for "do not store". */
function lifetimeFor(ttl: Ttl, graceMs: number, now: number): { expiresAt: number | null; graceUntil: number | null } | undefined {
  const expiresAt = expiryFor(ttl, now)
  if (expiresAt === undefined) return undefined
  return { expiresAt, graceUntil: expiresAt === null ? null : expiresAt + graceMs }
}
