/**
 * The peer libraries as the tiered benchmark configures them: each one a two-tier cache (its own in-process
 * memory layer over the same private Redis), with the same TTL as fragcache and each library's own defaults
 * for everything else (serialization included: that is each library's answer to "a caller mutates what it got").
 */
import { BentoCache, bentostore } from 'bentocache'
import { memoryDriver } from 'bentocache/drivers/memory'
import { redisBusDriver, redisDriver } from 'bentocache/drivers/redis'
import { Cacheable, createKeyv as createMemoryKeyv } from 'cacheable'
import { createKeyv as createRedisKeyv } from '@keyv/redis'

/** What the benchmark needs of a cache: read-through, and shutting down. */
export interface PeerCache {
  getOrSet(key: string, compute: () => unknown): Promise<unknown>
  close(): Promise<void>
  /** Reads answered by each layer since the last call (only when `countLayers` was asked for). */
  takeLayerCounts(): { memory: number; redis: number }
}

/** Options shared by every peer. */
export interface PeerOptions {
  host: string
  port: number
  ttlSeconds: number
  /** Entries the memory layer holds; 1 (with many keys) makes every read an L2 hit. */
  memoryItems: number
  /** Key namespace in Redis, so several instances can share entries. */
  prefix: string
  /** Counts which layer answered (through the library's events); leave off while timing. */
  countLayers?: boolean
}

/**
 * bentocache: `memoryDriver` (lru-cache; entries serialized by default) + `redisDriver` (ioredis, auto-pipelining
 * on like fragcache's) + the Redis bus, as its docs show for a multi-tier store.
 *
 * @example
 * ```ts
 * const bento = createBentocache({ host: '127.0.0.1', port, ttlSeconds: 300, memoryItems: 10_000, prefix: 'b' })
 * await bento.getOrSet('k', () => 'v')
 * ```
 */
export function createBentocache(options: PeerOptions & { serializeMemory?: boolean }): PeerCache {
  const connection = { host: options.host, port: options.port, enableAutoPipelining: true }
  const bento = new BentoCache({
    default: 'tiered',
    prefix: options.prefix,
    ttl: options.ttlSeconds * 1000,
    stores: {
      tiered: bentostore()
        .useL1Layer(memoryDriver({ maxItems: options.memoryItems, serialize: options.serializeMemory ?? true }))
        .useL2Layer(redisDriver({ connection }))
        .useBus(redisBusDriver({ connection: { host: options.host, port: options.port } })),
    },
  })
  const counts = { memory: 0, redis: 0 }
  if (options.countLayers) {
    bento.on('cache:hit', (event: { layer?: string }) => {
      if (event.layer === 'l2') counts.redis += 1
      else counts.memory += 1
    })
  }
  return {
    getOrSet: (key, compute) => bento.getOrSet({ key, factory: compute }),
    close: () => bento.disconnectAll(),
    takeLayerCounts: () => take(counts),
  }
}

/**
 * cacheable: its default primary store (`@cacheable/memory`, LRU; objects are cloned on read by default) +
 * `@keyv/redis` as the secondary (node-redis, which pipelines the commands of one tick by itself), blocking reads
 * (the default), as its README shows for layer 1 / layer 2 caching. No CacheSync: it needs a separate pub/sub
 * package, and fragcache's bus costs nothing on a read anyway.
 *
 * @example
 * ```ts
 * const cacheable = createCacheable({ host: '127.0.0.1', port, ttlSeconds: 300, memoryItems: 10_000, prefix: 'c' })
 * await cacheable.getOrSet('k', () => 'v')
 * ```
 */
export function createCacheable(options: PeerOptions): PeerCache {
  const secondary = createRedisKeyv(`redis://${options.host}:${options.port}`, { namespace: options.prefix })
  const cache = new Cacheable({
    primary: createMemoryKeyv({ lruSize: options.memoryItems }),
    secondary,
    ttl: options.ttlSeconds * 1000,
  })
  const counts = { memory: 0, redis: 0 }
  if (options.countLayers) {
    cache.on('cache:hit', (event: { store?: string }) => {
      if (event.store === 'secondary') counts.redis += 1
      else counts.memory += 1
    })
  }
  return {
    getOrSet: (key, compute) => cache.getOrSet(key, async () => compute()),
    close: async () => {
      await cache.disconnect()
    },
    takeLayerCounts: () => take(counts),
  }
}

function take(counts: { memory: number; redis: number }): { memory: number; redis: number } {
  const copy = { ...counts }
  counts.memory = 0
  counts.redis = 0
  return copy
}
