/**
 * Puts a cache together from its checked options: L1, and with Redis the connection (opened here when a URL was given),
 * L2, the invalidation bus and the events that feed `stats()` and the logger; then the data versions, the tier stack
 * and the computations, each handed only what it uses.
 */
import { InvalidationBus } from './bus.ts'
import { Computations } from './compute.ts'
import { describe } from './errors.ts'
import { KeyBuilder } from './keys.ts'
import { KeyLocks } from './lock.ts'
import type { ResolvedCacheOptions } from './options.ts'
import type { RedisTarget } from './redis-option.ts'
import type { CacheStats } from './stats.ts'
import { TierStack } from './tier-stack.ts'
import { MemoryTier } from './tiers/memory.ts'
import { type RedisClient, RedisConnection, openCluster, openRedis } from './tiers/redis-client.ts'
import { RedisTier } from './tiers/redis.ts'
import { DataVersions } from './versions.ts'

/** The parts of one cache. */
export interface CacheParts {
  readonly keys: KeyBuilder
  readonly versions: DataVersions
  readonly stack: TierStack
  readonly computations: Computations
  readonly connection: RedisConnection | undefined
  readonly locks: KeyLocks | undefined
  readonly bus: InvalidationBus | undefined
}

/** Told of every version bump (`null`: everything cleared), made here or heard from another process. */
export type InvalidatedHook = (tags: readonly string[] | null, origin: 'local' | 'remote') => void

/**
 * Builds the parts of a cache; `stats` receives what happens to them.
 * @example
 * ```ts
 * const parts = assembleCache(checkCacheOptions({ redis: 'redis://127.0.0.1:6379' }), new CacheStats())
 * ```
 */
export function assembleCache(o: ResolvedCacheOptions, stats: CacheStats, invalidated: InvalidatedHook = () => {}): CacheParts {
  const keys = new KeyBuilder(o.prefix, o.version)
  const { connection, l2, bus } = o.redis === undefined ? {} : connectRedis(o, o.redis, stats)
  // Late-bound: the bus reports to the stack, which is built after it.
  let stack: TierStack | undefined
  let versions: DataVersions | undefined
  bus?.listen({
    message: (message) => {
      // Before the stack drops anything: the log counts what the invalidation makes unusable here.
      if (message.kind === 'tags') invalidated(message.tags, 'remote')
      else if (message.kind === 'clear') invalidated(null, 'remote')
      stack?.receive(message)
    },
    missed: () => {
      // Messages sent while the bus was down are lost: nothing this process holds can be trusted any more.
      stack?.dropL1()
      versions?.dropAll()
    },
  })
    const busHealthy = (): boolean => bus?.healthy ?? true
  const redisDown = (key?: string): boolean => (connection === undefined ? false : key === undefined ? connection.isDown : connection.isDownFor(key))
  versions = new DataVersions({
    keys,
    redis: connection,
    clock: o.clock,
    busDownTrustMs: o.busDownTrustMs,
    busHealthy,
    redisDown,
    corrupt: (count, versionKeys) => {
      stats.corrupt += count
      o.logger.error(`fragcache: ${count} version key(s) among ${versionKeys.join(', ')} held what fragcache never writes; replaced with a version larger than any they held`)
    },
    publish: (tags) => bus?.publish({ kind: 'tags', tags }, true) ?? Promise.resolve(),
    bumped: (tags) => invalidated(tags, 'local'),
  })
  stack = new TierStack({
    l1: new MemoryTier(o.l1),
    l2,
    versions,
    stats,
    clock: o.clock,
    busDownTrustMs: o.busDownTrustMs,
    busHealthy,
    redisDown,
    publish: (message, acknowledged) => bus?.publish(message, acknowledged) ?? Promise.resolve(),
  })
  const locks = connection === undefined ? undefined : new KeyLocks(connection, keys)
  const computations = new Computations({
    stack,
    versions,
    locks,
    stats,
    clock: o.clock,
    perf: o.perf,
    random: o.random,
    earlyRefresh: o.earlyRefresh,
    privateReads: o.privateReads,
    logger: o.logger,
  })
  return { keys, versions, stack, computations, connection, locks, bus }
}

/** The Redis side: the connection (owned when fragcache opened it), L2 and the bus, reporting to `stats` and the logger. */
function connectRedis(o: ResolvedCacheOptions, redis: RedisTarget, stats: CacheStats) {
  const client: RedisClient =
    typeof redis === 'string' ? openRedis(redis, o.redisTimeoutMs) : 'seeds' in redis ? openCluster(redis.seeds, o.redisTimeoutMs) : redis
  const connection = new RedisConnection(client, {
    owned: typeof redis === 'string' || 'seeds' in redis,
    timeoutMs: o.redisTimeoutMs,
    connectTimeoutMs: o.connectTimeoutMs,
    breaker: o.redisBreaker,
    perf: o.perf,
    events: {
      failed: (operation, error, outageStarted, timedOut) => {
        stats.redisErrors += 1
        if (timedOut) stats.timeouts += 1
        if (!outageStarted) return
        stats.outages += 1
        o.logger.warn(`fragcache: Redis is unavailable (${operation}: ${describe(error)}); serving from memory until it is back`)
      },
      replyError: (operation, error) => {
        stats.replyErrors += 1
        o.logger.error(`fragcache: Redis refused ${operation}: ${describe(error)} (a bug or a misconfiguration, not an outage)`)
      },
      recovered: () => {},
    },
  })
  const l2 = new RedisTier(connection, (key) => {
    stats.corrupt += 1
    o.logger.error(`fragcache: the value under "${key}" in Redis was not written by fragcache; treated as a miss`)
  })
  const bus = new InvalidationBus(connection, `fragcache:${o.prefix}`, { heartbeatMs: o.busHeartbeatMs, ackTimeoutMs: o.ackTimeoutMs, perf: o.perf })
  return { connection, l2, bus }
}
