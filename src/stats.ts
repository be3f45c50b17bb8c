/** Hits and misses of one tier. */
export interface TierCounts {
  hits: number
  misses: number
}

/** What {@link TieredCache.stats} returns. */
export interface CacheStatsSnapshot {
  request: TierCounts
  memory: TierCounts & { entries: number; bytes: number }
  redis: TierCounts & {
    /** Whether this cache has a Redis tier at all. */
    configured: boolean
    errors: number
    outages: number
    corrupt: number
    down: boolean
    busConnected: boolean
  }
  /** Times a compute function ran (misses, forced and early refreshes). */
  computes: number
  computeErrors: number
  earlyRefreshes: number
}

type TierName = 'request' | 'memory' | 'redis'

/**
 * The counters behind `cache.stats()`. A miss is counted once per read, at the last tier asked.
 * @example
 * ```ts
 * const stats = new CacheStats(); stats.hit('memory'); stats.snapshot({ entries: 1, bytes: 10 }, { configured: false, down: false, busConnected: false })
 * ```
 */
export class CacheStats {
  readonly #hits: Record<TierName, number> = { request: 0, memory: 0, redis: 0 }
  readonly #misses: Record<TierName, number> = { request: 0, memory: 0, redis: 0 }
  computes = 0
  computeErrors = 0
  earlyRefreshes = 0
  redisErrors = 0
  outages = 0
  corrupt = 0

  hit(tier: TierName): void {
    this.#hits[tier] += 1
  }

  miss(tier: TierName): void {
    this.#misses[tier] += 1
  }

  snapshot(
    memory: { entries: number; bytes: number },
    redis: { configured: boolean; down: boolean; busConnected: boolean },
  ): CacheStatsSnapshot {
    return {
      request: { hits: this.#hits.request, misses: this.#misses.request },
      memory: { hits: this.#hits.memory, misses: this.#misses.memory, ...memory },
      redis: {
        hits: this.#hits.redis,
        misses: this.#misses.redis,
        errors: this.redisErrors,
        outages: this.outages,
        corrupt: this.corrupt,
        ...redis,
      },
      computes: this.computes,
      computeErrors: this.computeErrors,
      earlyRefreshes: this.earlyRefreshes,
    }
  }
}
