/**
 * The connection to Redis: opening a client fragcache owns (and closing only that one), running every call under a
 * timeout and a circuit breaker so that a dead or slow Redis is an answer (`Unavailable`), never an exception, and
 * running Lua scripts by SHA.
 */
import { createHash } from 'node:crypto'
import { createRequire } from 'node:module'
import type { Cluster, ClusterOptions, Redis } from 'ioredis'
import { InvalidArgumentError, NotReadyError, describe } from '../errors.ts'
import { type BreakerOptions, CircuitBreaker } from './breaker.ts'
import { ClusterBreakers } from './cluster-breakers.ts'
import { endSlotRefresh } from './cluster-close.ts'
import { Deadlines, type PendingCall } from './deadlines.ts'

/** A Redis connection fragcache can use: an ioredis `Redis` or `Cluster`. */
export type RedisClient = Redis | Cluster

/**
 * A Redis call that did not happen or did not answer in time: a miss to readers, never an exception. `error` says
 * why, for the callers that must report it (`AtomicityError.cause`); `maybeApplied` is true when the command was sent
 * and no answer came (a timeout, a connection lost while waiting): Redis may have carried it out.
 */
export class Unavailable {
  constructor(
    readonly error: unknown,
    readonly maybeApplied = false,
  ) {}
}

/** True when a call's result is {@link Unavailable}. */
export function isUnavailable(value: unknown): value is Unavailable {
  return value instanceof Unavailable
}

/** Where the connection reports what happened to it. */
export interface RedisEvents {
  /**
   * A call failed (the connection is down or broke) or timed out (`timedOut`). `outageStarted` is true for the failure
   * that opened the circuit.
   */
  failed(operation: string, error: unknown, outageStarted: boolean, timedOut: boolean): void
  /**
   * Redis answered with an error (CROSSSLOT, WRONGTYPE, a script error): a bug or a misconfiguration, never an outage,
   * so the breaker does not see it.
   */
  replyError(operation: string, error: unknown): void
  /** A call succeeded after an outage. */
  recovered(): void
}

/** Options of {@link RedisConnection}. */
export interface RedisConnectionOptions {
  /** A reply slower than this is a failure (time the process spent blocked is not counted). */
  timeoutMs: number
  /** Until the client has connected once, calls wait for it this long instead of failing at once. */
  connectTimeoutMs: number
  breaker?: BreakerOptions
  /** A monotonic clock in milliseconds, for deadlines and the breaker's cooldown. */
  perf: { now(): number }
  events: RedisEvents
}

/** The bound on one batch of a bulk call (`clear`). */
export const BULK_TIMEOUT_MS = 5000

const DOWN_STATUSES = new Set(['end', 'close', 'reconnecting', 'connecting', 'wait'])
/** Statuses in which a client that never connected is still on its way to its first connection. */
const STARTING_STATUSES = new Set(['connecting', 'reconnecting', 'wait'])

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
  const client = new (loadIoredis().Redis)(url, {
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    maxRetriesPerRequest: 0,
    connectTimeout: Math.max(1000, timeoutMs * 10),
    retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 2000),
  })
  client.on('error', () => {}) // outages are reported once, by the connection's events
  return client
}

/** One node of a Cluster to connect to first, from a seed URL (see `options.ts`). */
export interface ClusterSeed {
  readonly host: string
  readonly port: number
  readonly username?: string | undefined
  readonly password?: string | undefined
  readonly tls: boolean
}

/**
 * Opens the ioredis `Cluster` fragcache owns for a list of seed nodes, with the choices a user passing their own
 * Cluster should make too (README, "Redis Cluster"):
 * - no offline queue, auto-pipelining and no per-request retries, as for a single Redis;
 * - `slotsRefreshInterval: 1000`: ioredis ships no periodic refresh, and a frozen master (which never answers MOVED)
 *   kept its slots in the client's map for as long as it stayed frozen;
 * - `scaleReads: 'master'`: a replica lags, and a read there could miss this process's own write.
 * @example
 * ```ts
 * const cluster = openCluster([{ host: '127.0.0.1', port: 7000, tls: false }], 50)
 * ```
 */
export function openCluster(seeds: readonly ClusterSeed[], timeoutMs: number): Cluster {
  const first = seeds[0]
  const options: ClusterOptions = {
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    slotsRefreshInterval: 1000,
    scaleReads: 'master',
    clusterRetryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 2000),
    redisOptions: {
      maxRetriesPerRequest: 0,
      connectTimeout: Math.max(1000, timeoutMs * 10),
      ...(first?.username === undefined ? {} : { username: first.username }),
      ...(first?.password === undefined ? {} : { password: first.password }),
      ...(first?.tls ? { tls: {} } : {}),
    },
  }
  const client = new (loadIoredis().Cluster)(
    seeds.map(({ host, port }) => ({ host, port })),
    options,
  )
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
  /** The breaker of a single Redis, and of a Cluster's calls that name no key (a scan of one master). */
  readonly #breaker: CircuitBreaker
  /** On a Cluster, one breaker per master: a call naming a key goes through its master's. */
  readonly #masters: ClusterBreakers | undefined
  readonly #events: RedisEvents
  readonly #deadlines: Deadlines
  readonly #bulkDeadlines: Deadlines
  /** Settles when the client first connects, or when waiting for that is over (`connectTimeoutMs`). */
  #starting: Promise<void> | undefined

  constructor(client: RedisClient, options: RedisConnectionOptions & { owned: boolean }) {
    this.client = client
    this.#owned = options.owned
    this.#breaker = new CircuitBreaker({ ...options.breaker, perf: options.perf })
    this.#events = options.events
    this.#deadlines = new Deadlines(options.timeoutMs, options.perf)
    this.#bulkDeadlines = new Deadlines(BULK_TIMEOUT_MS, options.perf)
    this.isCluster = 'nodes' in client && typeof client.nodes === 'function'
    this.#masters = this.isCluster ? new ClusterBreakers(client as Cluster, { ...options.breaker, perf: options.perf }) : undefined
    if (client.status !== 'ready') this.#starting = firstConnection(client, options.connectTimeoutMs).then(() => (this.#starting = undefined))
  }

  /** True while the circuit is open (Redis is treated as down); on a Cluster, while any master's is. */
  get isDown(): boolean {
    return this.#breaker.isOpen || (this.#masters?.anyOpen ?? false)
  }

  /** True while calls for `key` are refused: the circuit of its master is open (on a single Redis, the one circuit). */
  isDownFor(key: string): boolean {
    return this.#breakerFor(key).isOpen
  }

  #breakerFor(routeKey: string | undefined): CircuitBreaker {
    return routeKey === undefined || this.#masters === undefined ? this.#breaker : this.#masters.forKey(routeKey)
  }

  /**
   * Runs one Redis call under the timeout and the breaker. Resolves to its reply, or to {@link Unavailable} when it was
   * refused, failed, timed out or was answered with an error; never rejects. Before the client has connected for the
   * first time, the call waits for that (up to `connectTimeoutMs`) instead of failing.
   *
   * `routeKey` is a key the call touches (all of them in its slot): on a Cluster the call goes through the breaker of
   * the master serving it, so a dead master refuses only its slots. Without one, the connection's own breaker.
   */
  run<T>(operation: string, call: (client: RedisClient) => Promise<T>, bulk = false, routeKey?: string): Promise<T | Unavailable> {
    if (this.#starting !== undefined) return this.#starting.then(() => this.run(operation, call, bulk, routeKey))
    const breaker = this.#breakerFor(routeKey)
    if (!breaker.allow()) return Promise.resolve(new Unavailable(new Error('Redis is unavailable (the circuit is open)')))
    if (DOWN_STATUSES.has(this.client.status)) {
      // Not connected: fail at once rather than queue or wait (the client reconnects on its own).
      const error = new Error(`the connection is ${this.client.status}`)
      this.#events.failed(operation, error, breaker.failure(), false)
      return Promise.resolve(new Unavailable(error))
    }
    const deadlines = bulk ? this.#bulkDeadlines : this.#deadlines
    return new Promise((resolve) => {
      const pending: PendingCall = {
        issuedAt: 0,
        deadline: 0,
        settled: false,
        timedOut: () => {
          const error = new Error(`no answer within ${deadlines.timeoutMs} ms`)
          this.#events.failed(operation, error, breaker.failure(), true)
          resolve(new Unavailable(error, true))
        },
        previous: undefined,
        next: undefined,
      }
      const answered = (value: T): void => {
        if (!deadlines.settle(pending)) return
        if (breaker.success()) this.#events.recovered()
        resolve(value)
      }
      const failed = (error: unknown): void => {
        if (!deadlines.settle(pending)) return
        if (isReplyError(error)) {
          // Redis is up and said no: not an outage, and not a reason to stop calling it.
          if (breaker.success()) this.#events.recovered()
          this.#events.replyError(operation, error)
          resolve(new Unavailable(error))
          return
        }
        this.#events.failed(operation, error, breaker.failure(), false)
        resolve(new Unavailable(error, true))
      }
      deadlines.add(pending)
      try {
        call(this.client).then(answered, failed)
      } catch (error) {
        failed(error)
      }
    })
  }

  /**
   * A call that runs `script` with its source (EVAL): one command whatever Redis has loaded, for a call whose order
   * against later commands matters even when its reply never came (a bump published right after a timeout must not be
   * overtaken by its own NOSCRIPT fallback).
   */
  scriptInOrder(script: LuaScript, keys: readonly string[], args: readonly (string | number)[]): (client: RedisClient) => Promise<unknown> {
    return (client) => client.eval(script.source, keys.length, ...keys, ...args)
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
    } finally {
      if (this.isCluster) endSlotRefresh(this.client as Cluster)
    }
  }
}

/** True for an error Redis answered with (ioredis's `ReplyError`), as opposed to a connection failure. */
function isReplyError(error: unknown): boolean {
  return error instanceof Error && error.name === 'ReplyError'
}

/** Resolves when `client` first becomes ready, or after `timeoutMs`, whichever comes first; never rejects. */
function firstConnection(client: RedisClient, timeoutMs: number): Promise<void> {
  if (client.status === 'wait') client.connect().catch(() => {}) // a lazy client the caller passed in
  if (!STARTING_STATUSES.has(client.status)) return Promise.resolve()
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer)
      client.off('ready', done)
      client.off('end', done)
      resolve()
    }
    const timer = setTimeout(done, timeoutMs)
    timer.unref()
    client.once('ready', done)
    client.once('end', done)
  })
}

/**
 * Loads a package the way fragcache's own modules would import it, for what only some users need (ioredis, an optional
 * peer; cluster-key-slot, only on a Cluster).
 * @example
 * ```ts
 * const { Cluster } = requireFromFragcache('ioredis') as typeof import('ioredis')
 * ```
 */
export function requireFromFragcache(name: string): unknown {
  // The CommonJS build has no import.meta: build/compile-commonjs.ts rewrites this one line (tsc is told to let it be).
  // @ts-ignore TS1343 in the CommonJS compile only
  const moduleUrl: string = import.meta.url
  return createRequire(moduleUrl)(name)
}

/** ioredis is an optional peer: loaded only when a Redis URL is given, so memory-only users need not install it. */
function loadIoredis(): { Redis: typeof Redis; Cluster: typeof Cluster } {
  try {
    return requireFromFragcache('ioredis') as { Redis: typeof Redis; Cluster: typeof Cluster }
  } catch (error) {
    throw new InvalidArgumentError(`fragcache: a Redis URL was given but ioredis is not installed (npm install ioredis): ${describe(error)}`, {
      cause: error,
    })
  }
}
