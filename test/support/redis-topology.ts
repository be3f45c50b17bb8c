/**
 * The one switch between a single Redis and a Redis Cluster: a suite written once runs on both.
 *
 * ```ts
 * for (const topology of TOPOLOGIES) {
 *   const redis = await startRedis(topology)
 *   const test = suite(`getOrSet :: ${topology}`)
 *   test.after(() => redis.stop())
 *   test('…', async () => { const cache = createCache({ redis: redis.cacheRedisOption(), prefix: 'p1' }) … })
 *   test.run()
 * }
 * ```
 * `FRAGCACHE_TEST_TOPOLOGY=single` (or `cluster`) narrows the run to one; unset or `both`, both run.
 */
import { Cluster, type ClusterOptions, type Redis } from 'ioredis'
import { endSlotRefresh } from '../../src/tiers/cluster-close.ts'
import { RedisCluster, type RedisClusterOptions } from './redis-cluster.ts'
import { RedisServer } from './redis-server.ts'

/** Where the tests' Redis runs. */
export type Topology = 'single' | 'cluster'

const ALL: readonly Topology[] = ['single', 'cluster']

/**
 * The topologies a topology-aware suite runs on: both, unless `FRAGCACHE_TEST_TOPOLOGY` names one.
 * @throws Error for a value other than `single`, `cluster`, `both` or nothing: a typo must not quietly test less.
 * @example
 * ```ts
 * topologiesFrom('single')   // ['single']
 * topologiesFrom(undefined)  // ['single', 'cluster']
 * ```
 */
export function topologiesFrom(value: string | undefined): readonly Topology[] {
  const wanted = (value ?? '').trim()
  if (wanted === '' || wanted === 'both') return ALL
  if (wanted === 'single' || wanted === 'cluster') return [wanted]
  throw new Error(`FRAGCACHE_TEST_TOPOLOGY must be single, cluster or both; got ${JSON.stringify(value)}`)
}

/**
 * What this run tests on (see {@link topologiesFrom}).
 * @example
 * ```ts
 * for (const topology of TOPOLOGIES) suite(`versions :: ${topology}`)
 * ```
 */
export const TOPOLOGIES: readonly Topology[] = topologiesFrom(process.env.FRAGCACHE_TEST_TOPOLOGY)

/**
 * The ioredis `Cluster` options for a client handed to `createCache({ redis })`. fragcache opens its own client for a
 * URL with the same choices, but cannot for a Cluster, so the test (as a user would) builds it:
 * - `enableOfflineQueue: false`: fragcache fails a call at once while Redis is not connected and treats it as a
 *   miss; a queued command would only answer after fragcache's timeout anyway.
 * - `slotsRefreshInterval: 1000`: ioredis 5 documents a 5 s default but ships none (no `slotsRefreshInterval` in
 *   `DEFAULT_CLUSTER_OPTIONS`): without it a frozen master keeps its slots in the client's map until a MOVED
 *   arrives, which a frozen node never sends (bench/cluster-probe.ts: writes to a frozen master's slots land again
 *   about 3 s after the freeze with it, not within 30 s without).
 * - `scaleReads: 'master'` (ioredis's default, stated): replicas lag, and a read from one could miss a write this
 *   process just made.
 * - `enableAutoPipelining: true` and `redisOptions.maxRetriesPerRequest: 0`, `connectTimeout: 1000`: what
 *   fragcache sets on the client it opens for a URL. With auto-pipelining on a Cluster, a command whose keys span
 *   slots is refused by ioredis itself ("All the keys in a pipeline command should belong to the same slot", not a
 *   CROSSSLOT ReplyError) and takes down every command auto-pipelined with it to the same node in that tick.
 * @example
 * ```ts
 * const cache = createCache({ redis: new Cluster(seeds, cacheClusterOptions), prefix: 'site' })
 * ```
 */
export const cacheClusterOptions: ClusterOptions = {
  enableOfflineQueue: false,
  slotsRefreshInterval: 1000,
  scaleReads: 'master',
  enableAutoPipelining: true,
  redisOptions: { maxRetriesPerRequest: 0, connectTimeout: 1000 },
}

/** A Redis of the test's own, single or Cluster, and what a suite needs from it. */
export interface TestRedis {
  readonly topology: Topology
  /** The server's URL, or every Cluster node's. */
  readonly urls: readonly string[]
  readonly seeds: readonly { host: string; port: number }[]
  /** The single server, to stop, restart or pause it (undefined on a Cluster). */
  readonly server: RedisServer | undefined
  /** The Cluster, to kill or pause nodes (undefined on a single server). */
  readonly cluster: RedisCluster | undefined
  /**
   * What to pass as `createCache({ redis })`: the URL of a single server (fragcache opens and closes its client),
   * or a new ioredis `Cluster` with {@link cacheClusterOptions} (a Cluster cannot be given as a URL), closed by
   * {@link stop} since fragcache never closes a client it was given.
   */
  cacheRedisOption(options?: ClusterOptions): string | Cluster
  /** A client for the test to look at what is stored, closed by {@link stop}. */
  rawClient(): Redis | Cluster
  /** Deletes every key (FLUSHALL on the server, or on every master). */
  flush(): Promise<void>
  /** Closes the clients handed out and stops the server or every node. */
  stop(): Promise<void>
}

/**
 * Starts a Redis of the test's own on free loopback ports: one redis-server, or a Cluster of 3 masters (with a
 * replica each when `cluster.replicasPerMaster` is 1, for failover tests).
 * @example
 * ```ts
 * const redis = await startRedis('cluster')
 * const cache = createCache({ redis: redis.cacheRedisOption(), prefix: 'site' })
 * await cache.ready()
 * await cache.close()
 * await redis.stop()
 * ```
 */
export async function startRedis(topology: Topology, options: { cluster?: RedisClusterOptions } = {}): Promise<TestRedis> {
  return topology === 'single' ? new SingleRedis(await RedisServer.start()) : new ClusterRedis(await RedisCluster.start(options.cluster))
}

class SingleRedis implements TestRedis {
  readonly topology = 'single'
  readonly cluster = undefined
  readonly #clients: Redis[] = []

  constructor(readonly server: RedisServer) {}

  get urls(): string[] {
    return [this.server.url]
  }

  get seeds(): { host: string; port: number }[] {
    return [{ host: '127.0.0.1', port: this.server.port }]
  }

  cacheRedisOption(): string {
    return this.server.url
  }

  rawClient(): Redis {
    const client = this.server.client()
    this.#clients.push(client)
    return client
  }

  async flush(): Promise<void> {
    const client = this.server.client()
    try {
      await client.flushall()
    } finally {
      client.disconnect()
    }
  }

  async stop(): Promise<void> {
    for (const client of this.#clients.splice(0)) client.disconnect()
    await this.server.stop()
  }
}

class ClusterRedis implements TestRedis {
  readonly topology = 'cluster'
  readonly server = undefined
  readonly #clients: Cluster[] = []

  constructor(readonly cluster: RedisCluster) {}

  get urls(): string[] {
    return this.cluster.seedUrls
  }

  get seeds(): { host: string; port: number }[] {
    return this.cluster.seeds
  }

  cacheRedisOption(options: ClusterOptions = {}): Cluster {
    const client = new Cluster(this.cluster.seeds, {
      ...cacheClusterOptions,
      ...options,
      redisOptions: { ...cacheClusterOptions.redisOptions, ...options.redisOptions },
    })
    // As fragcache does on the client it opens: an outage is reported by the cache, once, not by ioredis.
    client.on('error', () => {})
    this.#clients.push(client)
    return client
  }

  rawClient(): Cluster {
    const client = this.cluster.client()
    this.#clients.push(client)
    return client
  }

  async flush(): Promise<void> {
    for (const master of await this.cluster.currentMasters()) {
      const client = this.cluster.nodeClient(master)
      try {
        await client.flushall()
      } finally {
        client.disconnect()
      }
    }
  }

  async stop(): Promise<void> {
    for (const client of this.#clients.splice(0)) {
      client.disconnect()
      endSlotRefresh(client)
    }
    await this.cluster.stop()
  }
}
