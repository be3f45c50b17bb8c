/**
 * The `redis` option of `createCache`: a URL, a list of Cluster seed URLs, or an ioredis client, checked before anything
 * connects so that a bad one is named at once.
 */
import { InvalidArgumentError, describeValue } from './errors.ts'
import type { ClusterSeed, RedisClient } from './tiers/redis-client.ts'

/** What the `redis` option resolves to: a URL, the seeds of a Cluster fragcache opens, or a client it was given. */
export type RedisTarget = string | { readonly seeds: readonly ClusterSeed[] } | RedisClient

/**
 * Checks the `redis` option and resolves a list of seed URLs to the nodes to connect to first.
 * @throws InvalidArgumentError naming what is wrong: not a URL or client, an empty list, a seed that is not a
 *   `redis://` or `rediss://` URL with a host, a database number (a Cluster has only database 0), or seeds that do not
 *   agree on TLS and credentials (one client opens every node the same way).
 * @example
 * ```ts
 * checkRedisOption(['redis://127.0.0.1:7000', 'redis://127.0.0.1:7001'])
 * // { seeds: [{ host: '127.0.0.1', port: 7000, tls: false, … }, { host: '127.0.0.1', port: 7001, … }] }
 * checkRedisOption([]) // throws: fragcache: redis: a list of Cluster seed URLs must not be empty
 * ```
 * @internal
 */
export function checkRedisOption(redis: unknown): RedisTarget | undefined {
  if (redis === undefined || typeof redis === 'string') return redis
  if (Array.isArray(redis)) return { seeds: checkSeeds(redis) }
  if (typeof redis !== 'object' || redis === null || typeof (redis as { get?: unknown }).get !== 'function') {
    throw new InvalidArgumentError(
      `fragcache: redis must be a redis:// URL, a list of Redis Cluster seed URLs or an ioredis Redis or Cluster instance; got ${describeValue(redis)}`,
    )
  }
  return redis as RedisClient
}

function checkSeeds(urls: readonly unknown[]): ClusterSeed[] {
  if (urls.length === 0) throw new InvalidArgumentError('fragcache: redis: a list of Cluster seed URLs must not be empty')
  const seeds = urls.map((url, i) => checkSeed(url, i))
  const first = seeds[0] as ClusterSeed
  seeds.forEach((seed, i) => {
    if (seed.tls !== first.tls || seed.username !== first.username || seed.password !== first.password) {
      throw new InvalidArgumentError(
        `fragcache: redis: seed ${i} (${String(urls[i])}) differs from seed 0 in its scheme or credentials; every node of a Cluster is opened the same way`,
      )
    }
  })
  return seeds
}

function checkSeed(url: unknown, i: number): ClusterSeed {
  const bad = (why: string): InvalidArgumentError =>
    new InvalidArgumentError(`fragcache: redis: seed ${i} must be a redis:// or rediss:// URL with a host (${why}); got ${describeValue(url)}`)
  if (typeof url !== 'string') throw bad('not a string')
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw bad('not a URL')
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') throw bad(`scheme ${parsed.protocol}`)
  if (parsed.hostname === '') throw bad('no host')
  if (parsed.pathname !== '' && parsed.pathname !== '/' && parsed.pathname !== '/0') {
    throw new InvalidArgumentError(`fragcache: redis: seed ${i} names database ${parsed.pathname.slice(1)}; a Redis Cluster has only database 0; got ${JSON.stringify(url)}`)
  }
  return {
    host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: parsed.port === '' ? 6379 : Number(parsed.port),
    username: parsed.username === '' ? undefined : decodeURIComponent(parsed.username),
    password: parsed.password === '' ? undefined : decodeURIComponent(parsed.password),
    tls: parsed.protocol === 'rediss:',
  }
}
