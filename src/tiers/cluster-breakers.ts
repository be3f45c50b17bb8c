/**
 * One circuit breaker per Redis Cluster master: a dead master shuts only the slots it serves, the others keep working.
 */
import type { Cluster } from 'ioredis'
import { type BreakerOptions, CircuitBreaker } from './breaker.ts'
import { slotOf } from './cluster-slots.ts'

/**
 * The breakers of a Cluster's masters, found by the slot of a key through the client's own slot map (`cluster.slots`,
 * which ioredis refreshes on MOVED and every `slotsRefreshInterval`). A master that takes over a dead one's slots after
 * a failover has a breaker of its own, closed: its slots come back as soon as the client's map names it.
 *
 * @example
 * ```ts
 * const breakers = new ClusterBreakers(cluster, { threshold: 3, cooldownMs: 1000, perf: performance })
 * const breaker = breakers.forKey('site:1:c:top')
 * if (breaker.allow()) { … }
 * ```
 */
export class ClusterBreakers {
  readonly #cluster: Cluster
  readonly #options: BreakerOptions
  readonly #byNode = new Map<string, CircuitBreaker>()

  constructor(cluster: Cluster, options: BreakerOptions) {
    this.#cluster = cluster
    this.#options = options
  }

  /** The breaker of the master serving `key`'s slot (a shared one while the slot map is not known yet). */
  forKey(key: string): CircuitBreaker {
    // slots[slot] lists the node keys ("host:port") serving the slot, master first.
    const node = this.#cluster.slots[slotOf(key)]?.[0] ?? '?'
    let breaker = this.#byNode.get(node)
    if (breaker === undefined) {
      breaker = new CircuitBreaker(this.#options)
      this.#byNode.set(node, breaker)
    }
    return breaker
  }

  /** True when at least one master's breaker is open. */
  get anyOpen(): boolean {
    for (const breaker of this.#byNode.values()) if (breaker.isOpen) return true
    return false
  }
}
