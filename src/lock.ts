/**
 * One compute per key across processes: a lock per key in Redis (`SET NX PX` under the `lock` namespace, an owner token,
 * renewed while its owner computes, released by its owner only, gone by itself if the owner dies), and "hit-for-pass":
 * when a compute turns out not to be storable, the lock key says so for a while, so other processes compute at once
 * instead of queueing behind a lock whose result will never land.
 */
import { randomUUID } from 'node:crypto'
import type { KeyBuilder } from './keys.ts'
import { LuaScript, type RedisConnection, type Unavailable, isUnavailable } from './tiers/redis-client.ts'

/** What the lock key holds when the last compute was not storable. */
const PASS = 'pass'

/** Returns -3 when taken, -4 for a pass, else the PTTL (ms) of the owner's lock. ARGV: token, PX. */
const ACQUIRE = new LuaScript(`
local held = redis.call('GET', KEYS[1])
if held == '${PASS}' then return -4 end
if not held and redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return -3 end
return redis.call('PTTL', KEYS[1])`)

/** Releases (or turns into a pass for ARGV[3] ms, when ARGV[2] is 'pass') a lock its owner holds. ARGV[1]: token. */
const RELEASE = new LuaScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '${PASS}' then redis.call('SET', KEYS[1], '${PASS}', 'PX', ARGV[3]) else redis.call('DEL', KEYS[1]) end
return 1`)

/** Extends a lock its owner still holds. ARGV: token, PX. */
const RENEW = new LuaScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])`)

/** What trying to take a lock came to. */
export type Acquired =
  | { readonly state: 'held'; readonly lock: HeldLock }
  /** Another process holds it, for `ms` more at most. */
  | { readonly state: 'busy'; readonly ms: number }
  /** The last compute of this key was not storable: compute without the lock, without waiting. */
  | { readonly state: 'pass' }
  | Unavailable

/**
 * The locks of one cache.
 * @example
 * ```ts
 * const locks = new KeyLocks(connection, keys)
 * const taken = await locks.acquire(fullKey, 5000)
 * if (!isUnavailable(taken) && taken.state === 'held') try { await compute() } finally { await taken.lock.release(true) }
 * ```
 */
export class KeyLocks {
  readonly #connection: RedisConnection
  readonly #keys: KeyBuilder
  readonly #owner = randomUUID()
  #next = 0
  /**
   * Locks this process holds, until their release has been answered. Computes of one key in one process are already one
   * at a time, so a new attempt on a key this process still holds (its last compute's release not yet answered) waits
   * for that release rather than finding its own lock busy.
   */
  readonly #held = new Map<string, Promise<void>>()

  constructor(connection: RedisConnection, keys: KeyBuilder) {
    this.#connection = connection
    this.#keys = keys
  }

  /** Tries to take the lock of `fullKey` for `ttlMs` (renewed while held). */
  async acquire(fullKey: string, ttlMs: number): Promise<Acquired> {
    const previous = this.#held.get(fullKey)
    if (previous !== undefined) await previous
    const key = this.#keys.build('lock', fullKey)
    const token = `${this.#owner}:${++this.#next}`
    const reply = await this.#connection.run('lock', this.#connection.script(ACQUIRE, [key], [token, ttlMs]), false, key)
    if (isUnavailable(reply)) return reply
    const ms = Number(reply)
    if (ms === -3) {
      let released: () => void = () => {}
      const done = new Promise<void>((resolve) => (released = resolve))
      this.#held.set(fullKey, done)
      const lock = new HeldLock(this.#connection, key, token, ttlMs, () => {
        if (this.#held.get(fullKey) === done) this.#held.delete(fullKey)
        released()
      })
      return { state: 'held', lock }
    }
    if (ms === -4) return { state: 'pass' }
    // -2: it expired between GET and PTTL; -1 cannot be ours. Either way, try again soon.
    return { state: 'busy', ms: ms > 0 ? ms : 1 }
  }
}

/**
 * A lock this process holds: renewed every third of its TTL until released.
 * @example
 * ```ts
 * await lock.release(stored)   // stored false: a pass, so others compute at once
 * ```
 */
export class HeldLock {
  readonly #connection: RedisConnection
  readonly #key: string
  readonly #token: string
  readonly #ttlMs: number
  readonly #renewal: NodeJS.Timeout
  readonly #released: () => void

  constructor(connection: RedisConnection, key: string, token: string, ttlMs: number, released: () => void) {
    this.#connection = connection
    this.#key = key
    this.#token = token
    this.#ttlMs = ttlMs
    this.#released = released
    this.#renewal = setInterval(() => void this.#renew(), Math.max(1, Math.floor(ttlMs / 3)))
    this.#renewal.unref()
  }

  /**
   * Gives the lock up. `storable` false leaves a pass for the lock's TTL: the result may not be stored, so the next
   * computes of this key should not wait for one another.
   */
  async release(storable: boolean): Promise<void> {
    clearInterval(this.#renewal)
    const args = storable ? [this.#token, 'release', 0] : [this.#token, PASS, this.#ttlMs]
    try {
      await this.#connection.run('unlock', this.#connection.script(RELEASE, [this.#key], args), false, this.#key)
    } finally {
      this.#released()
    }
  }

  async #renew(): Promise<void> {
    const reply = await this.#connection.run('lock', this.#connection.script(RENEW, [this.#key], [this.#token, this.#ttlMs]), false, this.#key)
    // Lost (it expired while Redis was unreachable, and someone else took it): nothing to keep alive.
    if (!isUnavailable(reply) && Number(reply) === 0) clearInterval(this.#renewal)
  }
}
