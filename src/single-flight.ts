/**
 * One compute per key: in this process (callers of a key being computed share that compute), and across processes (the
 * key's lock: its holder computes, the others wait to be woken when the value lands and read it, or serve the stale
 * value they hold); then the compute itself: the version snapshot, what it records, and storing what it may be stored as.
 */
import { type Target, settle } from './cacheability.ts'
import type { ComputePlan } from './compute-plan.ts'
import { runRecording } from './dependency-recorder.ts'
import { type Entry, isExpired, isGone, makeEntry } from './entry.ts'
import { InvalidArgumentError } from './errors.ts'
import type { HeldLock, KeyLocks } from './lock.ts'
import type { Logger, PrivateReads } from './options.ts'
import { tryGetRequestScope } from './request-scope.ts'
import type { CacheStats } from './stats.ts'
import type { TierStack } from './tier-stack.ts'
import { isUnavailable } from './tiers/redis-client.ts'
import { type Ttl, expiryFor } from './ttl.ts'
import { type Variation, variationKey } from './variation.ts'
import type { DataVersions } from './versions.ts'

/** What a compute produced (or another process stored meanwhile): what callers return and record. */
export interface Computed {
  readonly entry: Pick<Entry, 'value' | 'deps' | 'expiresAt' | 'graceUntil' | 'varies'>
  /** Set when the value varies by request contexts: a caller whose values differ must not take it. */
  readonly variation: Variation | undefined
}

/** Why a compute runs: nothing fresh was found (`miss`, `stale`), XFetch chose it (`early`), or the caller forced it. */
export type Why = 'miss' | 'stale' | 'early' | 'force'

/** What {@link SingleFlight} works with. */
export interface SingleFlightParts {
  readonly stack: TierStack
  readonly versions: DataVersions
  /** Undefined without Redis. */
  readonly locks: KeyLocks | undefined
  readonly stats: CacheStats
  readonly clock: () => number
  /** A monotonic clock for compute durations and waits. */
  readonly perf: { now(): number }
  readonly privateReads: PrivateReads
  readonly logger: Logger
  /** Keeps track of work that outlives a call (stores, lock releases), for `flush()`. */
  readonly inBackground: (work: Promise<unknown>, what: string) => void
}

/**
 * The computes of one cache, one per key at a time.
 * @example
 * ```ts
 * const flights = new SingleFlight(parts)
 * const { entry } = await flights.run(target, () => render(), plan, undefined, 'miss')
 * ```
 */
export class SingleFlight {
  readonly #p: SingleFlightParts
  readonly #inflight = new Map<string, Promise<Computed>>()

  constructor(parts: SingleFlightParts) {
    this.#p = parts
  }

  /** True while `key` is being computed in this process. */
  isRunning(key: string): boolean {
    return this.#inflight.has(key)
  }

  /** The compute of `target.key` under way in this process, or a new one (always a new one when forced). */
  run(target: Target, compute: () => unknown, plan: ComputePlan, stale: Entry | undefined, why: Why): Promise<Computed> {
    const running = this.#inflight.get(target.key)
    if (running !== undefined && why !== 'force') return running
    const promise = this.#lockAndCompute(target, compute, plan, stale, why).finally(() => {
      if (this.#inflight.get(target.key) === promise) this.#inflight.delete(target.key)
    })
    this.#inflight.set(target.key, promise)
    return promise
  }

  /** Still within its grace, and no dep bumped since it was read. */
  stillServable(stale: Entry): boolean {
    return !isGone(stale, this.#p.clock()) && (stale.deps === null || this.#p.versions.check(stale.deps) === true)
  }

  /**
   * One compute across processes: takes the key's lock (when Redis and the plan allow it), or waits for the process that
   * holds it and reads what it stored, or (with a stale value in hand) serves that at once. A lock that cannot be taken
   * because Redis is unavailable never blocks: the compute goes ahead.
   */
  async #lockAndCompute(target: Target, compute: () => unknown, plan: ComputePlan, stale: Entry | undefined, why: Why): Promise<Computed> {
    const { locks, stats } = this.#p
    let lock: HeldLock | undefined
    // A forced refresh recomputes whatever the others do.
    if (plan.lock !== false && locks !== undefined && why !== 'force') {
      const taken = await locks.acquire(target.key, plan.lock.ttlMs)
      if (!isUnavailable(taken) && taken.state === 'held') {
        lock = taken.lock
        // Another process may have stored it between this process's read and its lock. For an early refresh, only a
        // value stored after the one in hand counts: the lock it took may be the one a finished refresh just released.
        const landed = await this.#landed(target)
        if (landed !== undefined && (why !== 'early' || refreshedSince(landed.entry, stale))) {
          this.#p.inBackground(lock.release(true), `releasing the lock of "${target.key}"`)
          return landed
        }
      } else if (!isUnavailable(taken) && taken.state === 'busy') {
        if (stale !== undefined && this.stillServable(stale)) {
          stats.staleServes += 1
          return { entry: stale, variation: undefined }
        }
        const waited = await this.#waitForOwner(target, plan.lock, taken.ms)
        if ('entry' in waited) return waited
        lock = waited.lock
      }
    }
    // A failed compute: released plainly (one waiter takes the lock next). A value that may not be stored: released as a
    // pass, so that the next computes of this key do not queue behind one another for a value that never lands.
    let landed: Promise<boolean | 'failed'> = Promise.resolve('failed')
    try {
      const result = await this.#computeAndStore(target, compute, plan)
      landed = result.landed
      // A forced refresh is a deliberate write-through: done once the value is in Redis.
      if (why === 'force') await landed
      return result.computed
    } finally {
      // Released once the value is in Redis, so that the waiters it wakes find it; woken anyway when nothing landed.
      const released = landed.then(async (stored) => {
        if (lock === undefined) return
        await lock.release(stored !== false)
        if (stored !== true) await this.#p.stack.announce([target.key])
      })
      this.#p.inBackground(released, `storing "${target.key}"`)
    }
  }

  /**
   * Waits while another process holds the lock: woken when it stores the key (or gives up), or when its lock may have
   * expired; then reads, or takes the lock. After `waitMs` in all, computes without the lock.
   */
  async #waitForOwner(target: Target, options: { ttlMs: number; waitMs: number }, heldForMs: number): Promise<Computed | { lock: HeldLock | undefined }> {
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
      const listening = stack.listeners.listen(target.key, Math.min(remaining, ms + 1))
      const already = await this.#landed(target)
      if (already !== undefined) {
        listening.cancel()
        return already
      }
      await listening.changed
      const landed = await this.#landed(target)
      if (landed !== undefined) return landed
      const taken = await locks.acquire(target.key, options.ttlMs)
      if (isUnavailable(taken) || taken.state === 'pass') return { lock: undefined }
      if (taken.state === 'held') return { lock: taken.lock }
      ms = taken.ms
    }
  }

  /**
   * A fresh entry under the target's key, as another process may just have stored it; through the redirect it left
   * there, to the variation of this compute's request, when its value turned out to vary.
   */
  async #landed(target: Target): Promise<Computed | undefined> {
    const { stack, clock } = this.#p
    const now = clock()
    let entry = await stack.readFar(target.key, undefined, now)
    let variation: Variation | undefined
    if (entry?.kind === 'r' && target.key === target.start) {
      const scope = tryGetRequestScope()
      const contexts = entry.value as readonly string[]
      const key = variationKey(target.base, contexts, scope)
      entry = stack.readNear(key, scope, now) ?? (await stack.readFar(key, undefined, now))
      variation = { contexts, values: contexts.map((name) => scope?.contexts.value(name)) }
    }
    if (entry === undefined || entry.kind === 'r' || isExpired(entry, now)) return undefined
    return { entry, variation }
  }

  /**
   * Runs the compute and stores what it may be stored as: in the request scope and L1 at once, in Redis in the
   * background (`landed` resolves when it is there: true, or false for a value not stored), so a miss does not wait a
   * round trip more and the misses of a page pipeline their writes. `flush()` waits for them.
   */
  async #computeAndStore(target: Target, compute: () => unknown, plan: ComputePlan): Promise<{ computed: Computed; landed: Promise<boolean> }> {
    const { stats, versions, perf, clock } = this.#p
    stats.computes += 1
    // Versions are read before computing: a bump during the compute leaves the entry already out of date.
    // While Redis is down they are provisional: the entry is kept in L1, and recomputed once Redis is back.
    const snapshot = plan.tags.length > 0 ? ((await versions.read(plan.tags, true)) as Map<string, number>) : new Map<string, number>()
    const started = perf.now()
    let result: Awaited<ReturnType<typeof runRecording>>
    try {
      result = await runRecording(compute, snapshot)
    } catch (error) {
      stats.computeErrors += 1
      stats.onCompute?.(perf.now() - started)
      throw error
    }
    stats.onCompute?.(perf.now() - started)
    const { value, recorded } = result
    const notStored = Promise.resolve(false)
    if (plan.store !== undefined && !plan.store(value)) {
      return { computed: { entry: { value, deps: recorded.deps, expiresAt: null, graceUntil: null, varies: null }, variation: undefined }, landed: notStored }
    }
    if (value === undefined) {
      throw new InvalidArgumentError(`fragcache: the compute function for "${target.base}" returned undefined; return null to cache "nothing"`)
    }
    const now = clock()
    const lifetime = lifetimeFor(plan.ttl, plan.graceMs, now)
    const made = makeEntry(target.key, value, lifetime ?? { expiresAt: null }, perf.now() - started, recorded.deps)
    const settled = settle({ target, made, recorded, privateReads: this.#p.privateReads, scope: tryGetRequestScope(), now })
    const computed = { entry: settled.entry, variation: settled.variation }
    if (lifetime === undefined || settled.writes.length === 0) return { computed, landed: notStored }
    const writes = settled.writes.map((write) => this.#p.stack.store(write))
    return { computed, landed: Promise.all(writes).then(() => true) }
  }
}

/** When an entry computed at `now` stops being fresh and stops being kept; undefined for "do not store". */
function lifetimeFor(ttl: Ttl, graceMs: number, now: number): { expiresAt: number | null; graceUntil: number | null } | undefined {
  const expiresAt = expiryFor(ttl, now)
  if (expiresAt === undefined) return undefined
  return { expiresAt, graceUntil: expiresAt === null ? null : expiresAt + graceMs }
}

/** Whether `found` was stored after `inHand` (it expires later): another process refreshed it meanwhile. */
function refreshedSince(found: Pick<Entry, 'expiresAt'>, inHand: Entry | undefined): boolean {
  if (inHand === undefined) return true
  return (found.expiresAt ?? Number.POSITIVE_INFINITY) > (inHand.expiresAt ?? Number.POSITIVE_INFINITY)
}
