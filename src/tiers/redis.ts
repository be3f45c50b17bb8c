import { createHash } from 'node:crypto'
import type { Cluster, Redis } from 'ioredis'
import { type Entry, decodeEntry, encodeEntry } from '../entry.ts'
import { describe } from '../errors.ts'
import { type BreakerOptions, CircuitBreaker } from './breaker.ts'

/** A Redis connection fragcache can use: an ioredis `Redis` or `Cluster`. */
export type RedisClient = Redis | Cluster

/** Marks a Redis call that did not happen or did not answer in time: a miss to readers, never an exception. */
export const UNAVAILABLE: unique symbol = Symbol('fragcache.redis-unavailable')
export type Unavailable = typeof UNAVAILABLE

/** Where the Redis tier reports what happened to it. */
export interface RedisTierEvents {
  /** A value under `key` was not one fragcache wrote. */
  corrupt(key: string): void
  /** A call failed or timed out. `outageStarted` is true for the failure that opened the circuit. */
  failed(operation: string, error: unknown, outageStarted: boolean): void
  /** A call succeeded after an outage. */
  recovered(): void
}

/** Options of {@link RedisTier}. */
export interface RedisTierOptions {
  /** A reply slower than this is a failure (default 50 ms). */
  timeoutMs: number
  breaker?: BreakerOptions
  events: RedisTierEvents
}

/** The bound on one batch of a bulk call (`clear`). */
export const BULK_TIMEOUT_MS = 5000

const DOWN_STATUSES = new Set(['end', 'close', 'reconnecting', 'connecting'])

/** A Lua script run by SHA, loaded on first use. */
export class LuaScript {
  readonly sha: string
  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex')
  }
}

const TOUCH = new LuaScript(`
local raw = redis.call('GET', KEYS[1])
if not raw or string.sub(raw, 1, 4) ~= 'fc1|' then return 0 end
local bar = string.find(raw, '|', 5, true)
if not bar then return 0 end
local updated = 'fc1|' .. ARGV[1] .. string.sub(raw, bar)
if ARGV[2] == '0' then redis.call('SET', KEYS[1], updated) else redis.call('SET', KEYS[1], updated, 'PX', ARGV[2]) end
return 1`)

const INCR = new LuaScript(`
local raw = redis.call('GET', KEYS[1])
if not raw then return {'missing'} end
local newline = string.find(raw, '\\n', 1, true)
if string.sub(raw, 1, 4) ~= 'fc1|' or not newline then return {'nan'} end
-- Only a JSON payload can be a number: a string stored as it is ('s') stays a string, even "5".
if not string.match(string.sub(raw, 1, newline - 1), '^fc1|[^|]*|[^|]*|j|') then return {'nan'} end
local text = string.sub(raw, newline + 1)
if not string.match(text, '^%-?%d+$') then return {'nan'} end
local n = tonumber(text) + tonumber(ARGV[1])
local out = string.format('%d', n)
redis.call('SET', KEYS[1], string.sub(raw, 1, newline) .. out, 'KEEPTTL')
return {'ok', out}`)

/**
 * The shared tier (L2) on Redis through ioredis. Every call is bounded by a timeout and a circuit breaker,
 * and resolves to {@link UNAVAILABLE} instead of throwing, so a dead or slow Redis is a miss, not an outage.
 * Values are stored in an envelope (`fc1|expiresAt|computeMs|deps` + newline + JSON) so that a value
 * fragcache did not write is recognised and treated as a miss.
 *
 * @example
 * ```ts
 * const l2 = new RedisTier(new Redis(), { timeoutMs: 50, events })
 * const entry = await l2.get('site:1:c:top')   // Entry | undefined | UNAVAILABLE
 * ```
 */
export class RedisTier {
  readonly client: RedisClient
  readonly #timeoutMs: number
  readonly #breaker: CircuitBreaker
  readonly #events: RedisTierEvents
  readonly #isCluster: boolean

  constructor(client: RedisClient, options: RedisTierOptions) {
    this.client = client
    this.#timeoutMs = options.timeoutMs
    this.#breaker = new CircuitBreaker(options.breaker)
    this.#events = options.events
    this.#isCluster = 'nodes' in client && typeof client.nodes === 'function'
  }

  /** True while the circuit is open (Redis is treated as down). */
  get isDown(): boolean {
    return this.#breaker.isOpen
  }

  /**
   * Runs one Redis call under the timeout and the breaker.
   * Resolves to UNAVAILABLE when it was refused, failed or timed out; server-side script errors are rethrown.
   */
  run<T>(operation: string, call: (client: RedisClient) => Promise<T>, timeoutMs = this.#timeoutMs): Promise<T | Unavailable> {
    if (!this.#breaker.allow()) return Promise.resolve(UNAVAILABLE)
    if (DOWN_STATUSES.has(this.client.status)) {
      // Not connected: fail at once rather than queue or wait (the client reconnects on its own).
      this.#events.failed(operation, new Error(`the connection is ${this.client.status}`), this.#breaker.failure())
      return Promise.resolve(UNAVAILABLE)
    }
    // One promise and one timer per call, no Promise.race: this is on the path of every L2 read.
    return new Promise((resolve) => {
      let settled = false
      const fail = (error: unknown): void => {
        if (settled) return
        settled = true
        this.#events.failed(operation, error, this.#breaker.failure())
        resolve(UNAVAILABLE)
      }
      const timer = setTimeout(() => fail(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs)
      let pending: Promise<T>
      try {
        pending = call(this.client)
      } catch (error) {
        clearTimeout(timer)
        fail(error)
        return
      }
      pending.then(
        (value) => {
          clearTimeout(timer)
          if (settled) return
          settled = true
          if (this.#breaker.success()) this.#events.recovered()
          resolve(value)
        },
        (error: unknown) => {
          clearTimeout(timer)
          fail(error)
        },
      )
    })
  }

  /** Runs a Lua script by SHA, loading it on first use. */
  evalScript(script: LuaScript, keys: readonly string[], args: readonly (string | number)[]): (client: RedisClient) => Promise<unknown> {
    return async (client) => {
      try {
        return await client.evalsha(script.sha, keys.length, ...keys, ...args)
      } catch (error) {
        if (!describe(error).includes('NOSCRIPT')) throw error
        return client.eval(script.source, keys.length, ...keys, ...args)
      }
    }
  }

  get(key: string): Promise<Entry | undefined | Unavailable> {
    return this.run('get', (c) => c.get(key)).then((raw) => (raw === UNAVAILABLE ? raw : raw === null ? undefined : this.#decode(key, raw)))
  }

  /** Reads many keys in one round trip (MGET; per-key GETs pipelined together on a cluster). */
  async getMany(keys: readonly string[]): Promise<(Entry | undefined)[] | Unavailable> {
    if (keys.length === 0) return []
    const raws = await this.run('getMany', (c) =>
      this.#isCluster ? Promise.all(keys.map((k) => c.get(k))) : c.mget(...keys),
    )
    if (raws === UNAVAILABLE) return raws
    return raws.map((raw, i) => (raw === null ? undefined : this.#decode(keys[i] as string, raw)))
  }

  async set(key: string, entry: Entry, payload: string, now: number): Promise<boolean | Unavailable> {
    const raw = encodeEntry(entry, payload)
    const px = entry.expiresAt === null ? null : Math.max(1, entry.expiresAt - now)
    const reply = await this.run('set', (c) => (px === null ? c.set(key, raw) : c.set(key, raw, 'PX', px)))
    return reply === UNAVAILABLE ? reply : true
  }

  /** Writes many entries in one round trip. */
  async setMany(items: readonly { key: string; entry: Entry; payload: string }[], now: number): Promise<boolean | Unavailable> {
    if (items.length === 0) return true
    const reply = await this.run('setMany', async (c) => {
      const pipeline = c.pipeline()
      for (const { key, entry, payload } of items) {
        const raw = encodeEntry(entry, payload)
        if (entry.expiresAt === null) pipeline.set(key, raw)
        else pipeline.set(key, raw, 'PX', Math.max(1, entry.expiresAt - now))
      }
      const results = await pipeline.exec()
      const failed = results?.find(([err]) => err)
      if (failed?.[0]) throw failed[0]
      return true
    })
    return reply
  }

  /** SET NX: true when stored, false when a value was already there. */
  async add(key: string, entry: Entry, payload: string, now: number): Promise<boolean | Unavailable> {
    const raw = encodeEntry(entry, payload)
    const reply = await this.run('add', (c) =>
      entry.expiresAt === null ? c.set(key, raw, 'NX') : c.set(key, raw, 'PX', Math.max(1, entry.expiresAt - now), 'NX'),
    )
    return reply === UNAVAILABLE ? reply : reply === 'OK'
  }

  async delete(keys: readonly string[]): Promise<number | Unavailable> {
    if (keys.length === 0) return 0
    if (!this.#isCluster) return this.run('delete', (c) => c.unlink(...keys))
    const counts = await this.run('delete', (c) => Promise.all(keys.map((k) => c.unlink(k))))
    return counts === UNAVAILABLE ? counts : counts.reduce((a, b) => a + b, 0)
  }

  /** Sets a new expiry on an entry, in its envelope and in Redis. */
  async touch(key: string, expiresAt: number | null, now: number): Promise<boolean | Unavailable> {
    const px = expiresAt === null ? 0 : Math.max(1, expiresAt - now)
    const reply = await this.run('touch', this.evalScript(TOUCH, [key], [expiresAt ?? 0, px]))
    return reply === UNAVAILABLE ? reply : reply === 1
  }

  /** Atomically adds `by` to an integer entry, keeping its TTL. */
  async incr(key: string, by: number): Promise<number | 'missing' | 'nan' | Unavailable> {
    const reply = await this.run('incr', this.evalScript(INCR, [key], [by]))
    if (reply === UNAVAILABLE) return reply
    const [status, value] = reply as [string, string?]
    return status === 'ok' ? Number(value) : (status as 'missing' | 'nan')
  }

  /**
   * Deletes every key starting with `prefix`, SCANning in batches (on every master of a cluster). An admin call, not
   * a page's: each batch may take up to {@link BULK_TIMEOUT_MS}.
   */
  async deleteByPrefix(prefix: string): Promise<boolean | Unavailable> {
    const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`
    const nodes = this.#isCluster ? (this.client as Cluster).nodes('master') : [this.client as Redis]
    for (const node of nodes) {
      let cursor = '0'
      do {
        const page = await this.run('clear', () => node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000), BULK_TIMEOUT_MS)
        if (page === UNAVAILABLE) return page
        cursor = page[0]
        const keys = page[1]
        if (keys.length > 0 && (await this.run('clear', () => node.unlink(...keys), BULK_TIMEOUT_MS)) === UNAVAILABLE) {
          return UNAVAILABLE
        }
      } while (cursor !== '0')
    }
    return true
  }

  #decode(key: string, raw: string): Entry | undefined {
    const entry = decodeEntry(raw)
    if (entry === undefined) this.#events.corrupt(key)
    return entry
  }
}
