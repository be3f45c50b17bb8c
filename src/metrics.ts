/**
 * OpenTelemetry metrics of a cache, through the `@opentelemetry/api` the application already has (an optional peer:
 * no SDK here). Counts are read from the cache's own counters when the application's reader collects, so a hit costs
 * nothing more with metrics on; only compute durations are recorded as they happen.
 */
import { InvalidArgumentError, describe, describeValue } from './errors.ts'
import type { TieredCache } from './tiered-cache.ts'

/** Attributes of one measurement. */
export type MetricAttributes = Record<string, string>

/** An observable instrument, as `@opentelemetry/api` makes them (only its identity is used here). */
export type MetricObservable = object

/** What {@link registerCacheMetrics} uses of an `@opentelemetry/api` `Meter` (a real one fits). */
export interface MetricsMeter {
  createHistogram(name: string, options?: { description?: string; unit?: string }): { record(value: number, attributes?: MetricAttributes): void }
  createObservableCounter(name: string, options?: { description?: string; unit?: string }): MetricObservable
  createObservableGauge(name: string, options?: { description?: string; unit?: string }): MetricObservable
  addBatchObservableCallback(callback: (result: { observe(observable: never, value: number, attributes?: MetricAttributes): void }) => void, observables: never[]): void
  removeBatchObservableCallback(callback: (result: { observe(observable: never, value: number, attributes?: MetricAttributes): void }) => void, observables: never[]): void
}

/** Options of {@link registerCacheMetrics}. */
export interface CacheMetricsOptions {
  /** The meter to report to; default `metrics.getMeter('fragcache')` of `@opentelemetry/api` (loaded when needed). */
  meter?: MetricsMeter
  /** Added to every measurement, to tell several caches of one process apart (`{ cache: 'pages' }`). */
  attributes?: MetricAttributes
}

/** Metrics registered for a cache; `stop()` unregisters them. */
export interface CacheMetrics {
  stop(): void
}

/** The instruments, by name: counters are monotonic sums since the cache was created; gauges are values now. */
const COUNTERS = {
  hits: ['fragcache.hits', 'Reads answered by a tier (attribute tier: request, l1, l2)'],
  misses: ['fragcache.misses', 'Reads a tier could not answer (attribute tier)'],
  lookups: ['fragcache.lookups', 'Fragment and page lookups (attributes kind: frag|view, name, state: hit|miss|stale)'],
  computes: ['fragcache.computes', 'Compute functions run (misses, forced and early refreshes)'],
  computeErrors: ['fragcache.compute.errors', 'Compute functions that threw'],
  staleServes: ['fragcache.stale_serves', 'Stale values served within their grace'],
  lockWaits: ['fragcache.lock.waits', "Computes that waited for another process's lock"],
  lockTimeouts: ['fragcache.lock.timeouts', 'Lock waits that gave up and computed'],
  redisErrors: ['fragcache.redis.errors', 'Redis calls that failed (timeouts and connection failures)'],
  redisTimeouts: ['fragcache.redis.timeouts', 'Redis calls with no answer within redisTimeoutMs'],
  redisReplyErrors: ['fragcache.redis.reply_errors', 'Errors Redis answered with (bugs or misconfiguration)'],
  redisOutages: ['fragcache.redis.outages', 'Times Redis became unavailable'],
  busGaps: ['fragcache.bus.gaps', 'Invalidations from other processes found missing'],
} as const
const GAUGES = {
  redisDown: ['fragcache.redis.down', '1 while Redis is down (the circuit is open), else 0'],
  busConnected: ['fragcache.bus.connected', '1 while the invalidation bus delivers, else 0 (and 0 without Redis)'],
  busPeers: ['fragcache.bus.peers', 'Other processes heard on the bus recently'],
  l1Entries: ['fragcache.l1.entries', 'Entries held in memory (L1)'],
  l1Bytes: ['fragcache.l1.bytes', 'Bytes held in memory (L1), as counted for maxBytes'],
} as const

/**
 * Reports a cache's metrics to OpenTelemetry: hits and misses per tier and per fragment and page name, computes and
 * their duration (histogram `fragcache.compute.duration`, ms), stale serves, lock waits, Redis errors, timeouts and
 * outages, bus state, and L1 size in entries and bytes. Without `meter`, `@opentelemetry/api` is loaded and its global
 * meter provider used (set up by your SDK); the cache itself works the same without it.
 * @throws InvalidArgumentError when no meter is given and `@opentelemetry/api` is not installed, or for a bad meter.
 * @example
 * ```ts
 * import { createCache, registerCacheMetrics } from 'fragcache'
 * const cache = createCache({ redis: process.env.REDIS_URL })
 * const metrics = await registerCacheMetrics(cache)           // the global MeterProvider of @opentelemetry/api
 * await registerCacheMetrics(cache, { meter: provider.getMeter('fragcache') })  // or a meter of your own
 * ```
 */
export async function registerCacheMetrics(cache: TieredCache, options: CacheMetricsOptions = {}): Promise<CacheMetrics> {
  const meter = options.meter ?? (await loadMeter())
  if (typeof meter !== 'object' || meter === null || typeof meter.addBatchObservableCallback !== 'function') {
    throw new InvalidArgumentError(`fragcache: registerCacheMetrics: meter must be an OpenTelemetry Meter; got ${describeValue(meter)}`)
  }
  const base = options.attributes ?? {}
  const tagged = (attributes: MetricAttributes): MetricAttributes => ({ ...base, ...attributes })
  const counters = Object.fromEntries(Object.entries(COUNTERS).map(([id, [name, description]]) => [id, meter.createObservableCounter(name, { description })])) as Record<
    keyof typeof COUNTERS,
    MetricObservable
  >
  const gauges = Object.fromEntries(Object.entries(GAUGES).map(([id, [name, description]]) => [id, meter.createObservableGauge(name, { description })])) as Record<
    keyof typeof GAUGES,
    MetricObservable
  >
  const duration = meter.createHistogram('fragcache.compute.duration', { description: 'Time compute functions took', unit: 'ms' })
  const computeAttributes = tagged({})
  cache.onCompute((ms) => duration.record(ms, computeAttributes))

  const observe = (result: { observe(observable: never, value: number, attributes?: MetricAttributes): void }): void => {
    const o = (observable: MetricObservable, value: number, attributes: MetricAttributes = {}) => result.observe(observable as never, value, tagged(attributes))
    const s = cache.stats()
    for (const tier of ['request', 'l1', 'l2'] as const) {
      o(counters.hits, s[tier].hits, { tier })
      o(counters.misses, s[tier].misses, { tier })
    }
    for (const n of cache.lookupStats.list()) {
      o(counters.lookups, n.hits, { kind: n.kind, name: n.name, state: 'hit' })
      o(counters.lookups, n.misses, { kind: n.kind, name: n.name, state: 'miss' })
      o(counters.lookups, n.stale, { kind: n.kind, name: n.name, state: 'stale' })
    }
    o(counters.computes, s.computes)
    o(counters.computeErrors, s.computeErrors)
    o(counters.staleServes, s.staleServes)
    o(counters.lockWaits, s.lockWaits)
    o(counters.lockTimeouts, s.lockTimeouts)
    o(counters.redisErrors, s.l2.errors)
    o(counters.redisTimeouts, s.l2.timeouts)
    o(counters.redisReplyErrors, s.l2.replyErrors)
    o(counters.redisOutages, s.l2.outages)
    o(counters.busGaps, s.l2.busGaps)
    o(gauges.redisDown, s.l2.down ? 1 : 0)
    o(gauges.busConnected, s.l2.busConnected ? 1 : 0)
    o(gauges.busPeers, s.l2.peers)
    o(gauges.l1Entries, s.l1.entries)
    o(gauges.l1Bytes, s.l1.bytes)
  }
  const observables = [...Object.values(counters), ...Object.values(gauges)] as never[]
  meter.addBatchObservableCallback(observe, observables)
  return {
    stop: () => {
      meter.removeBatchObservableCallback(observe, observables)
      cache.onCompute(undefined)
    },
  }
}

/** `@opentelemetry/api`'s global meter for fragcache, loaded only when no meter is given. */
async function loadMeter(): Promise<MetricsMeter> {
  // A variable, so that neither the type checker nor a bundler needs the optional peer to be installed.
  const name = '@opentelemetry/api'
  try {
    const api = (await import(name)) as { metrics: { getMeter(name: string): MetricsMeter } }
    return api.metrics.getMeter('fragcache')
  } catch (error) {
    throw new InvalidArgumentError(
      `fragcache: registerCacheMetrics needs @opentelemetry/api (npm install @opentelemetry/api) or a meter passed as { meter }: ${describe(error)}`,
      { cause: error },
    )
  }
}
