/**
 * The writes that promise atomicity across processes (`add`, `incr`/`decr`, and `touch` alongside them): one Lua script
 * or `SET NX` in Redis, judged by the cache's clock, then the other processes told; in memory when there is no Redis;
 * an {@link AtomicityError} when Redis cannot keep the promise.
 */
import { type Entry, makeEntry } from './entry.ts'
import { AtomicityError, KeyNotFoundError, NotAnIntegerError } from './errors.ts'
import { tryGetRequestScope } from './request-scope.ts'
import type { TierStack } from './tier-stack.ts'
import { type Unavailable, isUnavailable } from './tiers/redis-client.ts'

/**
 * The atomic writes of one cache.
 * @example
 * ```ts
 * const atomic = new AtomicWrites(stack, Date.now)
 * await atomic.incr(fullKey, 'views', 1)
 * ```
 */
export class AtomicWrites {
  readonly #stack: TierStack
  readonly #clock: () => number

  constructor(stack: TierStack, clock: () => number) {
    this.#stack = stack
    this.#clock = clock
  }

  /** Stores `entry` unless a fresh one is there; true when it did. */
  async add(fullKey: string, key: string, made: { entry: Entry; payload: string }): Promise<boolean> {
    const now = this.#clock()
    const l2 = this.#stack.l2
    if (l2) {
      if (!atomic(await l2.add({ key: fullKey, ...made }, now), 'add', key)) return false
      this.#stack.remember(fullKey, made.entry)
      await this.#stack.announce([fullKey])
      return true
    }
    if (this.#stack.peekL1(fullKey, now) !== undefined) return false
    this.#stack.remember(fullKey, made.entry)
    return true
  }

  /** Adds `by` to the integer under `fullKey`, keeping its expiry; the new value. */
  async incr(fullKey: string, key: string, by: number): Promise<number> {
    const l2 = this.#stack.l2
    if (l2) {
      const reply = atomic(await l2.incr(fullKey, by, this.#clock()), 'incr', key)
      if (reply === 'missing') throw new KeyNotFoundError(key)
      if (reply === 'nan') throw new NotAnIntegerError(key)
      this.#stack.forget([fullKey], tryGetRequestScope())
      await this.#stack.announce([fullKey])
      return reply
    }
    const entry = this.#stack.peekL1(fullKey, this.#clock())
    if (entry === undefined) throw new KeyNotFoundError(key)
    if (!Number.isSafeInteger(entry.value)) throw new NotAnIntegerError(key)
    const next = (entry.value as number) + by
    this.#stack.remember(fullKey, makeEntry(fullKey, next, entry).entry)
    return next
  }

  /** A new expiry for the entry under `fullKey`; true when one was there. */
  async touch(fullKey: string, expiresAt: number | null): Promise<boolean> {
    const now = this.#clock()
    const local = this.#stack.peekL1(fullKey, now)
    if (local) this.#stack.remember(fullKey, { ...local, expiresAt, graceUntil: expiresAt })
    const l2 = this.#stack.l2
    if (!l2) return local !== undefined
    const touched = await l2.touch(fullKey, expiresAt, now)
    if (isUnavailable(touched)) return local !== undefined
    if (!touched) this.#stack.forget([fullKey], tryGetRequestScope())
    await this.#stack.announce([fullKey])
    return touched
  }
}

/** The reply of an operation that promises atomicity across processes; throws {@link AtomicityError} when Redis could not answer. */
function atomic<T>(reply: T | Unavailable, operation: string, key: string): T {
  if (isUnavailable(reply)) throw new AtomicityError(operation, key, reply.error)
  return reply
}
