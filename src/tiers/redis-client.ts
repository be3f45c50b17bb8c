/**
 * The connection to Redis: opening a client fragcache owns (and closing only that one), running every call under a
 * timeout and a circuit breaker so that a dead or slow Redis is an answer (`Unavailable`), never an exception, and
 * running Lua scripts by SHA.
 */
import { createHash } from 'node:crypto'
import { createRequire } from 'node:module'
import type { Cluster, Redis } from 'ioredis'
import { InvalidArgumentError, NotReadyError, describe } from '../errors.ts'
import { type BreakerOptions, CircuitBreaker } from './breaker.ts'

/** A Redis connection fragcache can use: an ioredis `Redis` or `Cluster`. */
export type RedisClient = Redis | Cluster

/**
 * A Redis call that did not happen or did not answer in time: a miss to readers, never an exception. `error` says
 * why, for the callers that must report it (`AtomicityError.cause`).
 */
export class Unavailable {
  constructor(readonly error: unknown) {}
}

/** True when a call's result is {@link Unavailable}. */
export function isUnavailable(value: unknown): value is Unavailable {
  return value instanceof Unavailable
}

/** Where the connection reports what happened to it. */
export interface RedisEvents {
  /** A call failed or timed out. `outageStarted` is true for the failure that opened the circuit. */
  failed(operation: string, error: unknown, outageStarted: boolean): void
  /** A call succeeded after an outage. */
  recovered(): void
}

/** Options of {@link RedisConnection}. */
export interface RedisConnectionOptions {
  /** A reply slower than this is a failure. */
  timeoutMs: number
  breaker?: BreakerOptions
  /** Milliseconds for the breaker's cooldown (a monotonic clock). */
  perf: { now(): number }
  events: RedisEvents
}

/** The bound on one batch of a bulk call (`clear`). */
export const BULK_TIMEOUT_MS = 5000

const DOWN_STATUSES = new Set(['end', 'close', 'reconnecting', 'connecting'])

/**
 * A Lua script run by SHA, loaded on first use.
 * @example
 * ```ts
 * const GET_TWICE = new LuaScript(`return { redis.call('GET', KEYS[1]), redis.call('GET', KEYS[1]) }`)
 * await connection.run('get', connection.script(GET_TWICE, ['k'], []))
 * ```
 */
export class LuaScript {
  readonly sha: string
  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex')
  }
}

/**
 * Opens the client fragcache owns for a Redis URL: no offline queue (a call while disconnected fails at once instead of
 * piling up), auto-pipelining, no per-request retries, and a capped reconnect backoff.
 * @example
 * ```ts
 * const client = openRedis('redis://127.0.0.1:6379/0', 50)
 * ```
 */
export function openRedis(url: string, timeoutMs: number): Redis {
  const client = new (loadRedis())(url, {
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    maxRetriesPerRequest: 0,
    connectTimeout: Math.max(1000, timeoutMs * 10),
    retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 2000),
  })
  client.on('error', () => {}) // outages are reported once, by the connection's events
  return client
}

/**
 * One Redis client behind a timeout and a circuit breaker. Calls resolve to their reply or to {@link Unavailable};
 * errors the server raises inside a script are rethrown.
 *
 * @example
 * ```ts
 * const redis = new RedisConnection(client, { owned: false, timeoutMs: 50, perf: performance, events })
 * const reply = await redis.run('get', (c) => c.get('k'))   // string | null | Unavailable
 * ```
 */
export class RedisConnection {
  readonly client: RedisClient
  readonly isCluster: boolean
  readonly #owned: boolean
  readonly #timeoutMs: number
  readonly #breaker: CircuitBreaker
  readonly #events: RedisEvents

  constructor(client: RedisClient, options: RedisConnectionOptions & { owned: boolean }) {
    this.client = client
    this.#owned = options.owned
    this.#timeoutMs = options.timeoutMs
    this.#breaker = new CircuitBreaker({ ...options.breaker, perf: options.perf })
    this.#events = options.events
    this.isCluster = 'nodes' in client && typeof client.nodes === 'function'
  }

  /** True while the circuit is open (Redis is treated as down). */
  get isDown(): boolean {
    return this.#breaker.isOpen
  }

  /**
   * Runs one Redis call under the timeout and the breaker.
   * Resolves to {@link Unavailable} when it was refused, failed or timed out; server-side script errors are rethrown.
   */
  run<T>(operation: string, call: (client: RedisClient) => Promise<T>, timeoutMs = this.#timeoutMs): Promise<T | Unavailable> {
    if (!this.#breaker.allow()) return Promise.resolve(new Unavailable(new Error('Redis is unavailable (the circuit is open)')))
    if (DOWN_STATUSES.has(this.client.status)) {
      // Not connected: fail at once rather than queue or wait (the client reconnects on its own).
      const error = new Error(`the connection is ${this.client.status}`)
      this.#events.failed(operation, error, this.#breaker.failure())
      return Promise.resolve(new Unavailable(error))
    }
    // One promise and one timer per call, no Promise.race: this is on the path of every L2 read.
    return new Promise((resolve) => {
      let settled = false
      const fail = (error: unknown): void => {
        if (settled) return
        settled = true
        this.#events.failed(operation, error, this.#breaker.failure())
        resolve(new Unavailable(error))
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

  /** A call that runs `script` by SHA, loading it on first use; for {@link run}. */
  script(script: LuaScript, keys: readonly string[], args: readonly (string | number)[]): (client: RedisClient) => Promise<unknown> {
    return async (client) => {
      try {
        return await client.evalsha(script.sha, keys.length, ...keys, ...args)
      } catch (error) {
        if (!describe(error).includes('NOSCRIPT')) throw error
        return client.eval(script.source, keys.length, ...keys, ...args)
      }
    }
  }

  /** Resolves once the client is connected (at once if it is), or rejects with {@link NotReadyError} after `timeoutMs`. */
  async ready(timeoutMs: number): Promise<void> {
    const client = this.client
    if (client.status === 'ready' || client.status === 'wait') return
    let timer: NodeJS.Timeout | undefined
    let onReady: (() => void) | undefined
    try {
      await new Promise<void>((resolve, reject) => {
        onReady = resolve
        client.once('ready', onReady)
        timer = setTimeout(() => reject(new NotReadyError(timeoutMs)), timeoutMs)
      })
    } finally {
      clearTimeout(timer)
      if (onReady) client.off('ready', onReady)
    }
  }

  /** Closes the client if fragcache opened it; a client that was passed in is left open. */
  async close(): Promise<void> {
    if (!this.#owned) return
    try {
      await this.client.quit()
    } catch {
      this.client.disconnect()
    }
  }
}

/** ioredis is an optional peer: loaded only when a Redis URL is given, so memory-only users need not install it. */
function loadRedis(): typeof Redis {
  try {
    return (createRequire(import.meta.url)('ioredis') as { Redis: typeof Redis }).Redis
  } catch (error) {
    throw new InvalidArgumentError(`fragcache: a Redis URL was given but ioredis is not installed (npm install ioredis): ${describe(error)}`, {
      cause: error,
    })
  }
}
