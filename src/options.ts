/**
 * The options of `createCache`: their types, their defaults, and the checks that name a bad one before anything starts.
 */
import { DEFAULT_LOCK, type LockOptions, checkLock, graceMs } from './compute-plan.ts'
import { turnClock } from './turn-clock.ts'
import { InvalidArgumentError } from './errors.ts'
import type { BreakerOptions } from './tiers/breaker.ts'
import type { MemoryTierOptions } from './tiers/memory.ts'
import { type RedisTarget, checkRedisOption } from './redis-option.ts'
import { type Ttl, checkTtl } from './ttl.ts'

/** What to do with a value computed for every visitor that read one visitor's private value (see `privateReads`). */
export type PrivateReads = 'vary' | 'bypass' | 'error'

/** Where fragcache reports outages and corrupt values. */
export interface Logger {
  warn(message: string): void
  error(message: string): void
}

/**
 * An ioredis `Redis` or `Cluster`, as {@link CacheOptions.redis} takes it: named by the members fragcache relies on
 * rather than by ioredis's types, so that fragcache's declarations compile where ioredis (an optional peer) is not
 * installed. The cache uses it as the ioredis client it is.
 */
export interface RedisClientLike {
  readonly status: string
  get(key: string): Promise<string | null>
  duplicate(): unknown
}

/** Options of {@link createCache}. Every one has a default; unknown options are an error (a typo is never ignored). */
export interface CacheOptions {
  /** Namespace of every key (Django's KEY_PREFIX): 1–64 of letters, digits, `_`, `.`, `-`. Default `'fragcache'`. */
  prefix?: string
  /** Global key version (Django's VERSION): bumping it orphans every entry. Default 1. */
  version?: number
  /** Default TTL in seconds (Django's TIMEOUT); null for no expiry. Default 300. */
  ttl?: Ttl
  /** Bounds of the in-process LRU. Default 10,000 entries and 64 MiB. */
  l1?: MemoryTierOptions
  /**
   * A Redis URL; a list of Redis Cluster seed URLs (fragcache opens its own ioredis `Cluster`, and closes it on
   * `close()`); or an ioredis `Redis`/`Cluster` you own (fragcache never closes it; for a `Cluster` set the options the
   * README's "Redis Cluster" section lists). Omitted: memory only.
   */
  redis?: string | readonly string[] | RedisClientLike | undefined
  /**
   * A slower Redis answer is a miss (default 50 ms). Measured on Redis, not on a busy event loop: time the process
   * spent blocked (a long synchronous render) is not counted against a call.
   */
  redisTimeoutMs?: number
  /**
   * Until Redis has accepted the first connection, calls wait for it this long instead of failing as an outage (so a
   * script's first `versions.bump` or a site's first request works without `ready()`). Default 1000 ms.
   */
  connectTimeoutMs?: number
  /** When to stop calling a failing Redis, and how long to wait before trying again. */
  redisBreaker?: BreakerOptions
  /** While the invalidation bus is down, L1 entries and versions are trusted this long (ms, default 1000). */
  busDownTrustMs?: number
  /**
   * Every process says it is alive on the bus this often (ms, default 500); a process that does not hear its own beats
   * back for three of them counts its bus as down. Also how soon a lost invalidation is noticed (a gap).
   */
  busHeartbeatMs?: number
  /**
   * `versions.bump`, `set`, `setMany`, `delete` and `clear` resolve once every live process has applied them, or after
   * this long (ms, default 1000; 0: they resolve once Redis answered). Read-your-writes across processes.
   */
  ackTimeoutMs?: number
  /**
   * Seconds an entry is kept past its TTL, stale, to be served when its recompute fails or is slower than
   * `softTimeoutMs`, and to every caller but the one recomputing it. A bumped dep is never served as stale. Default 0.
   */
  grace?: number
  /** With a stale value in hand, a recompute slower than this (ms) serves it at once and stores the fresh one later. */
  softTimeoutMs?: number
  /**
   * With Redis: one compute per key across processes. The lock is held at most `ttlMs` (renewed while computing, gone by
   * itself if its owner dies); other processes wait for the value at most `waitMs`, woken when it lands, then compute
   * themselves. `false` turns it off. Default `{ ttlMs: 5000, waitMs: 5000 }`. A lock Redis cannot give never blocks.
   */
  lock?: LockOptions | false
  /**
   * What happens when a value computed for every visitor reads a value private to one (marked with `markPrivate`)
   * without varying by its context: `'vary'` stores it per value of that context (a redirect finds the right one),
   * `'bypass'` does not store it, `'error'` fails with a {@link PrivateReadError} naming what was read (and, in a
   * template, the fragment and line). Default: `'error'`, or `'vary'` when `NODE_ENV` is `production`.
   */
  privateReads?: PrivateReads
  /** XFetch's beta: how eagerly a hot entry is recomputed in the background before it expires. 0 turns it off. Default 1. */
  earlyRefresh?: number
  /**
   * Milliseconds since the epoch, for expiry (inject one in tests). Default `Date.now`, read once per event-loop turn
   * (at most 64 reads apart): an expiry is judged late by one turn at most.
   */
  clock?: () => number
  /**
   * A monotonic clock in milliseconds, for durations (compute times, the breaker's cooldown), as lru-cache's `perf`
   * option: inject one in tests so that nothing sleeps or busy-waits. Default `performance`.
   */
  perf?: { now(): number }
  /** Uniform random numbers in (0, 1], for early refresh (inject one in tests). Default `Math.random`. */
  random?: () => number
  /**
   * Where outages (`warn`, once per outage) and errors (a corrupt value in Redis, a failed early refresh) go.
   * Default: the outage warning on the console, nothing else (the errors are counted in `stats()`).
   */
  logger?: Logger
}

/**
 * {@link CacheOptions} with every default filled in.
 * @internal (names ioredis's types: see {@link RedisClientLike})
 */
export interface ResolvedCacheOptions {
  prefix: string
  version: number
  ttl: Ttl
  l1: MemoryTierOptions
  redis: RedisTarget | undefined
  redisTimeoutMs: number
  connectTimeoutMs: number
  redisBreaker: BreakerOptions
  busDownTrustMs: number
  busHeartbeatMs: number
  ackTimeoutMs: number
  graceMs: number
  softTimeoutMs: number | undefined
  lock: Required<LockOptions> | false
  privateReads: PrivateReads
  earlyRefresh: number
  clock: () => number
  perf: { now(): number }
  random: () => number
  logger: Logger
}

const KNOWN = [
  'prefix',
  'version',
  'ttl',
  'l1',
  'redis',
  'redisTimeoutMs',
  'connectTimeoutMs',
  'redisBreaker',
  'busDownTrustMs',
  'busHeartbeatMs',
  'ackTimeoutMs',
  'grace',
  'softTimeoutMs',
  'lock',
  'privateReads',
  'earlyRefresh',
  'clock',
  'perf',
  'random',
  'logger',
]

/** Silent but for one warning per Redis outage; corrupt values and failed early refreshes are counted in `stats()`. */
const defaultLogger: Logger = {
  warn: (message) => console.warn(message),
  error: () => {},
}

/**
 * Validates {@link CacheOptions} up front, with messages that name the option, and fills in the defaults.
 * @throws InvalidArgumentError naming the first bad option.
 * @example
 * ```ts
 * checkCacheOptions({ ttl: -1 }) // ok: ttl -1 means "do not store" by default
 * checkCacheOptions({ tll: 5 })  // throws: fragcache: unknown option "tll"
 * ```
 * @internal
 */
export function checkCacheOptions(options: CacheOptions): ResolvedCacheOptions {
  checkKnownOptions(options, KNOWN, undefined)
  const redis = checkRedisOption(options.redis)
  const l1 = options.l1 ?? {}
  positive(l1.max ?? 1, 'l1.max', true)
  positive(l1.maxBytes ?? 1, 'l1.maxBytes', true)
  return {
    prefix: options.prefix ?? 'fragcache',
    version: options.version ?? 1,
    ttl: options.ttl === undefined ? 300 : checkTtl(options.ttl, 'options'),
    l1,
    redis,
    redisTimeoutMs: positive(options.redisTimeoutMs ?? 50, 'redisTimeoutMs'),
    connectTimeoutMs: nonNegative(options.connectTimeoutMs ?? 1000, 'connectTimeoutMs'),
    redisBreaker: {
      threshold: positive(options.redisBreaker?.threshold ?? 3, 'redisBreaker.threshold', true),
      cooldownMs: positive(options.redisBreaker?.cooldownMs ?? 1000, 'redisBreaker.cooldownMs'),
    },
    busDownTrustMs: nonNegative(options.busDownTrustMs ?? 1000, 'busDownTrustMs'),
    busHeartbeatMs: positive(options.busHeartbeatMs ?? 500, 'busHeartbeatMs'),
    ackTimeoutMs: nonNegative(options.ackTimeoutMs ?? 1000, 'ackTimeoutMs'),
    graceMs: options.grace === undefined ? 0 : graceMs(options.grace, 'options'),
    softTimeoutMs: options.softTimeoutMs === undefined ? undefined : nonNegative(options.softTimeoutMs, 'softTimeoutMs'),
    lock: options.lock === undefined ? DEFAULT_LOCK : checkLock(options.lock, DEFAULT_LOCK, 'options'),
    privateReads: checkPrivateReads(options.privateReads),
    earlyRefresh: nonNegative(options.earlyRefresh ?? 1, 'earlyRefresh'),
    clock: options.clock === undefined ? turnClock() : fn(options.clock, 'clock'),
    perf: checkPerf(options.perf),
    random: fn(options.random ?? Math.random, 'random'),
    logger: options.logger ?? defaultLogger,
  }
}

function positive(value: unknown, name: string, integer = false): number {
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw new InvalidArgumentError(`fragcache: ${name} must be a positive ${integer ? 'integer' : 'number'}; got ${String(value)}`)
  }
  return value
}

function nonNegative(value: unknown, name: string): number {
  if (typeof value !== 'number' || !(value >= 0) || !Number.isFinite(value)) {
    throw new InvalidArgumentError(`fragcache: ${name} must be a number of at least 0; got ${String(value)}`)
  }
  return value
}

function fn<T>(value: T, name: string): T {
  if (typeof value !== 'function') throw new InvalidArgumentError(`fragcache: ${name} must be a function`)
  return value
}

/**
 * Checks that `options` is an object whose every property is a known option: a typo is an error, never ignored.
 * @throws InvalidArgumentError naming the unknown option and listing the known ones.
 * @example
 * ```ts
 * checkKnownOptions({ tll: 5 }, ['ttl'], 'cachePage') // throws: fragcache: cachePage: unknown option "tll"; known options are ttl
 * ```
 */
export function checkKnownOptions(options: unknown, known: readonly string[], where: string | undefined): void {
  const at = where === undefined ? '' : `${where}: `
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError(`fragcache: ${at}options must be an object`)
  for (const name of Object.keys(options)) {
    if (!known.includes(name)) {
      throw new InvalidArgumentError(`fragcache: ${at}unknown option "${name}"; known options are ${known.join(', ')}`)
    }
  }
}

function checkPerf(perf: unknown): { now(): number } {
  if (perf === undefined) return performance
  if (typeof perf !== 'object' || perf === null || typeof (perf as { now?: unknown }).now !== 'function') {
    throw new InvalidArgumentError('fragcache: perf must be an object with a now() method, as performance is')
  }
  return perf as { now(): number }
}

function checkPrivateReads(mode: unknown): PrivateReads {
  if (mode === undefined) return process.env.NODE_ENV === 'production' ? 'vary' : 'error'
  if (mode === 'vary' || mode === 'bypass' || mode === 'error') return mode
  throw new InvalidArgumentError(`fragcache: privateReads must be 'vary', 'bypass' or 'error'; got ${JSON.stringify(mode) ?? String(mode)}`)
}
