/**
 * The public entry point of `fragcache`: `createCache`, the cache's types, the request scope and the errors.
 */
import type { CacheOptions } from './options.ts'
import { TieredCache } from './tiered-cache.ts'

/**
 * Creates a cache: a per-request scope, an in-process LRU and (with `redis`) Redis, behind a Django-style API.
 *
 * @example
 * ```ts
 * import { createCache, runInRequestScope } from 'fragcache'
 * const cache = createCache({ prefix: 'site', ttl: 300, redis: process.env.REDIS_URL })
 * await cache.set('greeting', 'hello')
 * await cache.get('greeting')            // 'hello'
 * await cache.getOrSet('n', () => 0)     // 0 — a stored falsy value is a hit
 * ```
 */
export function createCache(options: CacheOptions = {}): TieredCache {
  return new TieredCache(options)
}

export { TieredCache } from './tiered-cache.ts'
export type { GetOrSetOptions, LockOptions } from './compute-plan.ts'
export type { CacheOptions, Logger, PrivateReads, RedisClientLike } from './options.ts'
export { runInRequestScope, tryGetRequestScope, type RequestScope, type RequestScopeOptions, type ContextSource, type Lookup } from './request-scope.ts'
export { markPrivate, isPrivate } from './private-values.ts'
export { DataVersions } from './versions.ts'
export type { CacheStatsSnapshot, TierCounts } from './stats.ts'
export type { Ttl } from './ttl.ts'
export { registerCacheMetrics, type CacheMetrics, type CacheMetricsOptions, type MetricsMeter, type MetricAttributes, type MetricObservable } from './metrics.ts'
export { LookupStats, summarizeRequest, type NameCounts, type RequestSummary } from './lookup-stats.ts'
export type { Invalidation } from './invalidation-log.ts'
export { KeyBuilder, stableHash, type KeyNamespace, type KeyOptions } from './keys.ts'
export {
  FragcacheError,
  InvalidArgumentError,
  KeyNotFoundError,
  NotAnIntegerError,
  AtomicityError,
  OutcomeUnknownError,
  VersionsUnavailableError,
  NotReadyError,
  TemplateTagError,
  PrivateReadError,
  UnsupportedEngineError,
  type FragcacheErrorCode,
} from './errors.ts'
