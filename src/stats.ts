/** The counters behind `cache.stats()`: hits and misses per tier, Redis errors and outages, computes. */

/** Hits and misses of one tier. */
export interface TierCounts {
  hits: number
  misses: number
}

/** What {@link TieredCache.stats} returns. */
export interface CacheStatsSnapshot {
  /** The per-request scope. */
  request: TierCounts
  /** The in-process LRU, with what it holds now. */
  l1: TierCounts & { entries: number; bytes: number }
  /** Redis (all zeros and `configured: false` without it). */
  l2: TierCounts & {
    /** Whether this cache has a Redis tier at all. */
    configured: boolean
    /** Calls that failed: timeouts and connection failures (reply errors are counted apart). */
    errors: number
    /** Calls with no answer within `redisTimeoutMs` (time the process was blocked not counted). */
    timeouts: number
    /** Errors Redis answered with (CROSSSLOT, WRONGTYPE, …): bugs or misconfiguration, never outages. */
    replyErrors: number
    outages: number
    corrupt: number
    down: boolean
    busConnected: boolean
    /** Invalidations from other processes found missing (gaps in their sequence numbers). */
    busGaps: number
    /** Invalidations a live process did not acknowledge within `ackTimeoutMs`. */
    unacknowledged: number
    /** Other processes heard on the bus recently. */
    peers: number
  }
  /** Times a compute function ran (misses, forced and early refreshes). */
  computes: number
  computeErrors: number
  earlyRefreshes: number
  /** Stale values served within their grace (while another caller recomputed, or after a slow or failed recompute). */
  staleServes: number
  /** Of those, served because the recompute failed. */
  staleOnError: number
  /** Computes that waited for another process's lock, and those that gave up waiting and computed anyway. */
  lockWaits: number
  lockTimeouts: number
}

type TierName = 'request' | 'l1' | 'l2'

/**
 * The counters behind `cache.stats()`. A miss is counted once per read, at the last tier asked.
 * @example
 * ```ts
 * const stats = new CacheStats(); stats.hit('l1'); stats.snapshot({ entries: 1, bytes: 10 }, { configured: false, down: false, busConnected: false, busGaps: 0, unacknowledged: 0, peers: 0 })
 * ```
 */
export class CacheStats {
  // Plain fields, not a record keyed by the tier's name: counted on every hit.
  #requestHits = 0
  #requestMisses = 0
  #l1Hits = 0
  #l1Misses = 0
  #l2Hits = 0
  #l2Misses = 0
  computes = 0
  computeErrors = 0
  earlyRefreshes = 0
  staleServes = 0
  staleOnError = 0
  lockWaits = 0
  lockTimeouts = 0
  redisErrors = 0
  timeouts = 0
  replyErrors = 0
  outages = 0
  corrupt = 0
  /** Told the duration of every compute that ran (set when metrics are on; nothing is timed for it otherwise). */
  onCompute: ((ms: number) => void) | undefined = undefined

  hit(tier: TierName): void {
    if (tier === 'l1') this.#l1Hits += 1
    else if (tier === 'request') this.#requestHits += 1
    else this.#l2Hits += 1
  }

  miss(tier: TierName): void {
    if (tier === 'l1') this.#l1Misses += 1
    else if (tier === 'request') this.#requestMisses += 1
    else this.#l2Misses += 1
  }

  snapshot(
    l1: { entries: number; bytes: number },
    l2: { configured: boolean; down: boolean; busConnected: boolean; busGaps: number; unacknowledged: number; peers: number },
  ): CacheStatsSnapshot {
    return {
      request: { hits: this.#requestHits, misses: this.#requestMisses },
      l1: { hits: this.#l1Hits, misses: this.#l1Misses, ...l1 },
      l2: {
        hits: this.#l2Hits,
        misses: this.#l2Misses,
        errors: this.redisErrors,
        timeouts: this.timeouts,
        replyErrors: this.replyErrors,
        outages: this.outages,
        corrupt: this.corrupt,
        ...l2,
      },
      computes: this.computes,
      computeErrors: this.computeErrors,
      earlyRefreshes: this.earlyRefreshes,
      staleServes: this.staleServes,
      staleOnError: this.staleOnError,
      lockWaits: this.lockWaits,
      lockTimeouts: this.lockTimeouts,
    }
  }
}
