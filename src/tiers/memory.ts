/**
 * The in-process tier (L1): an lru-cache bounded by entry count and bytes, synchronous, expiry judged by the cache's clock.
 */
import { LRUCache } from 'lru-cache'
import { type Entry, isGone } from '../entry.ts'

/** lru-cache's `get` defaults its options to a new `{}` on every call: on the hit path, one shared object instead. */
const GET_OPTIONS: LRUCache.GetOptions<string, Slot, unknown> = {}

/** Bounds of the in-process tier. */
export interface MemoryTierOptions {
  /** Most entries kept (default 10,000). */
  max?: number
  /** Most bytes kept, counted as the JSON size of each value (default 64 MiB). */
  maxBytes?: number
}

interface Slot {
  readonly entry: Entry
  /** When this process put it here (its clock), to judge how long to trust it while the bus is down. */
  readonly storedAt: number
}

/**
 * The in-process tier (L1): an `lru-cache` bounded by count and bytes. Synchronous, so a hit costs no
 * promise and template tags can answer from it inside engine constructs that cannot wait.
 * Expiry is judged against the cache's own clock, so tests control it.
 *
 * @example
 * ```ts
 * const l1 = new MemoryTier({ max: 1000 })
 * l1.set('k', entry, Date.now()); l1.get('k', Date.now())
 * ```
 */
export class MemoryTier {
  readonly #lru: LRUCache<string, Slot>

  constructor(options: MemoryTierOptions = {}) {
    this.#lru = new LRUCache<string, Slot>({
      max: options.max ?? 10_000,
      maxSize: options.maxBytes ?? 64 * 1024 * 1024,
      sizeCalculation: (slot) => slot.entry.size,
    })
  }

  /** The entry under `key`, fresh or stale within its grace; one past its grace is dropped. */
  get(key: string, now: number): Entry | undefined {
    return this.getSlot(key, now)?.entry
  }

  /** The entry under `key` (see {@link get}) and when it was stored here. */
  getSlot(key: string, now: number): Slot | undefined {
    const slot = this.#lru.get(key, GET_OPTIONS)
    if (slot === undefined) return undefined
    if (isGone(slot.entry, now)) {
      this.#lru.delete(key)
      return undefined
    }
    return slot
  }

  set(key: string, entry: Entry, now: number): void {
    this.#lru.set(key, { entry, storedAt: now })
  }

  delete(key: string): boolean {
    return this.#lru.delete(key)
  }

  clear(): void {
    this.#lru.clear()
  }

  /** Number of entries held (expired ones included until they are next read). */
  get size(): number {
    return this.#lru.size
  }

  /** Every entry held, by key, most recently used first, without touching their recency (for the dashboard). */
  *entries(): Generator<[string, Entry]> {
    for (const [key, slot] of this.#lru.entries()) yield [key, slot.entry]
  }

  /** The `limit` largest entries held (bytes as counted for `maxBytes`), largest first. */
  largest(limit: number): { key: string; bytes: number; computeMs: number; expiresAt: number | null }[] {
    const all = [...this.entries()].map(([key, entry]) => ({ key, bytes: entry.size, computeMs: entry.computeMs, expiresAt: entry.expiresAt }))
    return all.sort((a, b) => b.bytes - a.bytes).slice(0, limit)
  }

  /** Bytes held, as counted for the `maxBytes` bound. */
  get bytes(): number {
    return this.#lru.calculatedSize
  }
}
