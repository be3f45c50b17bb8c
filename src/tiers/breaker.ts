/** The circuit breaker in front of Redis: stop calling a tier that keeps failing, probe it again after a cooldown. */

/** Options of {@link CircuitBreaker}. */
export interface BreakerOptions {
  /** Consecutive failures that open the circuit (default 3). */
  threshold?: number
  /** How long an open circuit refuses calls before letting one probe through (default 1000 ms). */
  cooldownMs?: number
  /** A monotonic clock in milliseconds (default `performance`); tests inject one. */
  perf?: { now(): number }
}

/**
 * Stops calling a tier that keeps failing: after `threshold` consecutive failures every call is refused at once
 * (no waiting on timeouts) until `cooldownMs` has passed; then one probe call is let through, and its outcome
 * closes the circuit or opens it for another cooldown. Uses the monotonic clock (`perf`), not the cache's wall clock:
 * it paces network calls, it does not judge data.
 *
 * @example
 * ```ts
 * const breaker = new CircuitBreaker({ threshold: 3, cooldownMs: 1000 })
 * if (breaker.allow()) { try { await call(); breaker.success() } catch { breaker.failure() } }
 * ```
 */
export class CircuitBreaker {
  readonly #threshold: number
  readonly #cooldownMs: number
  readonly #perf: { now(): number }
  #failures = 0
  #openedAt: number | null = null
  #probing = false

  constructor(options: BreakerOptions = {}) {
    this.#threshold = options.threshold ?? 3
    this.#cooldownMs = options.cooldownMs ?? 1000
    this.#perf = options.perf ?? performance
  }

  /** Whether a call may go ahead now. */
  allow(): boolean {
    if (this.#openedAt === null) return true
    if (this.#probing || this.#perf.now() - this.#openedAt < this.#cooldownMs) return false
    this.#probing = true
    return true
  }

  /** Records a success; returns true when this closed an open circuit. */
  success(): boolean {
    const wasOpen = this.#openedAt !== null
    this.#failures = 0
    this.#openedAt = null
    this.#probing = false
    return wasOpen
  }

  /** Records a failure; returns true when this opened a closed circuit (the start of an outage). */
  failure(): boolean {
    this.#failures += 1
    const wasOpen = this.#openedAt !== null
    if (wasOpen || this.#failures >= this.#threshold) {
      this.#openedAt = this.#perf.now()
      this.#probing = false
    }
    return !wasOpen && this.#openedAt !== null
  }

  /** True while calls are being refused. */
  get isOpen(): boolean {
    return this.#openedAt !== null
  }
}
