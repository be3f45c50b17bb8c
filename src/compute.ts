/**
 * `getOrSet`'s flow through the tiers: the key, or the variation its declared contexts (or a redirect found under it)
 * name; a hit served (and recorded into the compute around it); a miss computed once (see `single-flight.ts`), taken
 * only by callers whose contexts match the variation it turned out to be; grace (a stale value served when its
 * recompute fails or is slower than the soft timeout); and the probabilistic early refresh of hot entries.
 */
import type { Target } from './cacheability.ts'
import type { ComputePlan } from './compute-plan.ts'
import { recordEntry } from './dependency-recorder.ts'
import { type Entry, isExpired } from './entry.ts'
import { describe } from './errors.ts'
import type { Logger } from './options.ts'
import { type RequestScope, tryGetRequestScope } from './request-scope.ts'
import { type Computed, SingleFlight, type SingleFlightParts, type Why } from './single-flight.ts'
import { sameVariation, variationKey } from './variation.ts'

/** What {@link Computations} works with. */
export interface ComputationsParts extends Omit<SingleFlightParts, 'inBackground'> {
  /** Uniform random numbers in (0, 1], for early refresh. */
  readonly random: () => number
  /** XFetch's beta (0: off). */
  readonly earlyRefresh: number
  readonly logger: Logger
}

/** The outcome of a compute awaited up to a soft timeout. */
type Soft = { readonly done: Computed } | { readonly failed: unknown } | { readonly slow: true }

/** Callers that find a shared compute was for another visitor's variation retry this often, then compute their own. */
const VARIATION_RETRIES = 2

/**
 * The computations of one cache.
 * @example
 * ```ts
 * const computations = new Computations({ stack, versions, locks, stats, clock, perf: performance, random: Math.random, earlyRefresh: 1, privateReads: 'error', logger })
 * await computations.getOrSet(key, () => render(), plan, scope, false)
 * ```
 */
export class Computations {
  readonly #p: ComputationsParts
  readonly #flights: SingleFlight
  /** Work started in the background (early refreshes, computes outliving a soft timeout, stores), for {@link settled}. */
  readonly #background = new Set<Promise<unknown>>()

  constructor(parts: ComputationsParts) {
    this.#p = parts
    this.#flights = new SingleFlight({ ...parts, inBackground: (work, what) => this.#inBackground(work, what) })
  }

  /**
   * The value under `base` (or its variation), or `compute()`'s. Not async: a hit in the request scope or L1 answers
   * without an async frame (the hot path of every fragment tag). With `force`, computes and writes through.
   */
  getOrSet(base: string, compute: () => unknown, plan: ComputePlan, scope: RequestScope | undefined, force: boolean, attempt = 0): Promise<unknown> {
    const start = plan.vary.length === 0 ? base : variationKey(base, plan.vary, scope)
    if (force) return this.#computeShared({ base, start, known: plan.vary, key: start }, compute, plan, scope, undefined, 'force', attempt)
    const now = this.#p.clock()
    let near = this.#p.stack.readNear(start, scope, now)
    let target: Target | undefined
    if (near?.kind === 'r') {
      target = this.#redirected(base, start, near, scope)
      near = this.#p.stack.readNear(target.key, scope, now)
    }
    if (near !== undefined) {
      if (this.#acceptable(near, target?.key ?? start, plan)) return Promise.resolve(this.#serve(near, target?.key ?? start, compute, plan, now))
      return this.#computeShared(target ?? { base, start, known: plan.vary, key: start }, compute, plan, scope, undefined, 'force', attempt)
    }
    return this.#getOrSetFar(target ?? { base, start, known: plan.vary, key: start }, compute, plan, scope, now, attempt)
  }

  /** Resolves once the work started in the background so far has finished. */
  async settled(): Promise<void> {
    while (this.#background.size > 0) await Promise.allSettled([...this.#background])
  }

  /** Follows a redirect under `start`: the variation of this request; what it varies by bubbles up to any compute around. */
  #redirected(base: string, start: string, redirect: Entry, scope: RequestScope | undefined): Target {
    recordEntry(redirect)
    const known = redirect.value as readonly string[]
    return { base, start, known, key: variationKey(base, known, scope) }
  }

  #getOrSetFar(target: Target, compute: () => unknown, plan: ComputePlan, scope: RequestScope | undefined, now: number, attempt: number): Promise<unknown> {
    if (plan.tags.length > 0) this.#p.versions.prefetch(plan.tags)
    // A continuation, not an async function: one promise less on every L2 hit.
    return this.#p.stack.readFar(target.key, scope, now).then((entry) => this.#fromFar(target, entry, compute, plan, scope, now, attempt))
  }

  #fromFar(target: Target, entry: Entry | undefined, compute: () => unknown, plan: ComputePlan, scope: RequestScope | undefined, now: number, attempt: number): unknown {
    if (entry?.kind === 'r' && target.key === target.start) {
      const redirected = this.#redirected(target.base, target.start, entry, scope)
      const near = this.#p.stack.readNear(redirected.key, scope, now)
      if (near === undefined) return this.#p.stack.readFar(redirected.key, scope, now).then((far) => this.#fromFar(redirected, far, compute, plan, scope, now, attempt))
      return this.#fromFar(redirected, near, compute, plan, scope, now, attempt)
    }
    if (entry === undefined || entry.kind === 'r') return this.#computeShared(target, compute, plan, scope, undefined, 'miss', attempt)
    if (!this.#acceptable(entry, target.key, plan)) return this.#computeShared(target, compute, plan, scope, undefined, 'force', attempt)
    if (!isExpired(entry, now)) return this.#serve(entry, target.key, compute, plan, now)
    return this.#refreshStale(target, compute, plan, scope, entry, attempt)
  }

  /** False for a cached value the caller cannot use (not what it stores): counted as corrupt, dropped everywhere. */
  #acceptable(entry: Entry, key: string, plan: ComputePlan): boolean {
    if (plan.accept === undefined || plan.accept(entry.value)) return true
    this.#p.stats.corrupt += 1
    this.#p.logger.error(`fragcache: the value under "${key}" is not what its reader stores; treated as a miss and recomputed`)
    this.#p.stack.forget([key], tryGetRequestScope())
    return false
  }

  /** A hit: records what it carries into any compute around it, and maybe starts an early refresh. */
  #serve(entry: Entry, key: string, compute: () => unknown, plan: ComputePlan, now: number): unknown {
    recordEntry(entry)
    if (plan.earlyRefresh && this.#shouldRefreshEarly(entry, now)) this.#refreshInBackground(key, compute, plan, entry)
    return entry.value
  }

  /**
   * A miss: one compute per key at a time. A caller that shared the compute of a value that turned out to vary by its
   * visitor takes it only if it is the same visitor; otherwise it looks again (the redirect is stored by now).
   */
  async #computeShared(target: Target, compute: () => unknown, plan: ComputePlan, scope: RequestScope | undefined, stale: Entry | undefined, why: Why, attempt: number): Promise<unknown> {
    const computed = await this.#flights.run(target, compute, plan, stale, why)
    if (!sameVariation(computed.variation, scope)) {
      if (attempt < VARIATION_RETRIES) return this.getOrSet(target.base, compute, plan, scope, false, attempt + 1)
      const contexts = computed.variation?.contexts ?? []
      const own: Target = { ...target, known: contexts, key: variationKey(target.base, contexts, scope) }
      return this.#computeShared(own, compute, plan, scope, undefined, 'force', attempt)
    }
    recordEntry(computed.entry)
    return computed.entry.value
  }

  /**
   * An entry past its expiry, within its grace: one caller recomputes it, every other one is served the stale value at
   * once; the recomputing caller gets the fresh value, or the stale one when the recompute fails or outlives
   * `softTimeoutMs` (then it is stored when it finishes). A stale value whose deps were bumped meanwhile is never served.
   */
  async #refreshStale(target: Target, compute: () => unknown, plan: ComputePlan, scope: RequestScope | undefined, stale: Entry, attempt: number): Promise<unknown> {
    if (this.#flights.isRunning(target.key)) return this.#serveStale(stale, undefined)
    const task = this.#flights.run(target, compute, plan, stale, 'stale')
    const outcome = await this.#awaitSoftly(task, plan.softTimeoutMs)
    if ('done' in outcome) {
      if (!sameVariation(outcome.done.variation, scope)) return this.getOrSet(target.base, compute, plan, scope, false, attempt + 1)
      recordEntry(outcome.done.entry)
      return outcome.done.entry.value
    }
    if ('slow' in outcome) {
      this.#inBackground(task, `the recompute of "${target.key}" after its soft timeout`)
      if (this.#flights.stillServable(stale)) return this.#serveStale(stale, undefined)
      return this.#computeShared(target, compute, plan, scope, undefined, 'miss', attempt)
    }
    if (!this.#flights.stillServable(stale)) throw outcome.failed
    return this.#serveStale(stale, outcome.failed)
  }

  #serveStale(stale: Entry, error: unknown): unknown {
    this.#p.stats.staleServes += 1
    if (error !== undefined) {
      this.#p.stats.staleOnError += 1
      this.#p.logger.error(`fragcache: a recompute failed; serving the stale value within its grace: ${describe(error)}`)
    }
    recordEntry(stale)
    return stale.value
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

  #shouldRefreshEarly(entry: Entry, now: number): boolean {
    // XFetch (Vattani et al.): the closer to expiry and the costlier the compute, the likelier an early refresh.
    if (this.#p.earlyRefresh <= 0 || entry.expiresAt === null || entry.computeMs <= 0) return false
    const spread = entry.computeMs * this.#p.earlyRefresh
    // Math.random() is at least 2^-53, so -ln of it at most 36.8: further from expiry than that, no draw can refresh.
    if (this.#p.random === Math.random && entry.expiresAt - now > spread * 37) return false
    return now - spread * Math.log(this.#p.random()) >= entry.expiresAt
  }

  #refreshInBackground(key: string, compute: () => unknown, plan: ComputePlan, current: Entry): void {
    if (this.#flights.isRunning(key)) return
    this.#p.stats.earlyRefreshes += 1
    // The current entry is fresh: another process refreshing it (holding the lock) is as good as this one doing it.
    const target: Target = { base: key, start: key, known: current.varies ?? [], key }
    this.#inBackground(this.#flights.run(target, compute, plan, current, 'early'), `early refresh of "${key}" (the cached value stays)`)
  }

  /** Keeps track of `work` for {@link settled}, logging its failure (`what` failed: …). */
  #inBackground(work: Promise<unknown>, what: string): void {
    const tracked = work
      .catch((error: unknown) => this.#p.logger.error(`fragcache: ${what} failed: ${describe(error)}`))
      .finally(() => this.#background.delete(tracked))
    this.#background.add(tracked)
  }
}
