// A uvu suite's own Redis (a single server or a Cluster), and caches on it that are closed when the suite ends.
import type { Test } from 'uvu'
import { type CacheOptions, type TieredCache, createCache } from '../../src/index.ts'
import type { RedisServer } from './redis-server.ts'
import { type TestRedis, type Topology, startRedis } from './redis-topology.ts'

/** What {@link suiteRedis} gives a suite. */
export interface SuiteRedis {
  /** The suite's Redis, started before its first test and stopped after its last. */
  readonly redis: TestRedis
  /** The suite's single server (an error on a Cluster: a test that stops or pauses it is single-only). */
  readonly server: RedisServer
  /** A cache on the suite's Redis under `prefix`, ready, silent, closed after the suite. */
  cache(prefix: string, options?: CacheOptions): Promise<TieredCache>
  /** The keys on the suite's Redis matching `pattern` (on every master of a Cluster). */
  keys(pattern: string): Promise<string[]>
}

/** Gives `test` a Redis of its own on `topology` (default single); `defaults` are options of every cache made on it. */
export function suiteRedis(test: Test, defaults: CacheOptions = {}, topology: Topology = 'single'): SuiteRedis {
  let redis: TestRedis | undefined
  const caches: TieredCache[] = []
  test.before(async () => {
    redis = await startRedis(topology)
  })
  test.after(async () => {
    await Promise.all(caches.map((cache) => cache.close()))
    await redis?.stop()
  })
  const started = (): TestRedis => {
    if (redis === undefined) throw new Error(`the suite has not started its Redis (${topology}) yet`)
    return redis
  }
  return {
    get redis() {
      return started()
    },
    get server() {
      const { server } = started()
      if (server === undefined) throw new Error('this suite runs on a Redis Cluster: it has no single server')
      return server
    },
    async cache(prefix, options = {}) {
      const cache = createCache({ redis: started().cacheRedisOption(), prefix, logger: { warn: () => {}, error: () => {} }, ...defaults, ...options })
      caches.push(cache)
      await cache.ready()
      return cache
    },
    async keys(pattern) {
      const { cluster } = started()
      const clients = cluster === undefined ? [started().rawClient()] : (await cluster.currentMasters()).map((node) => cluster.nodeClient(node))
      const found: string[] = []
      for (const client of clients) {
        try {
          found.push(...(await client.keys(pattern)))
        } finally {
          if (cluster !== undefined) client.disconnect()
        }
      }
      return found
    },
  }
}
