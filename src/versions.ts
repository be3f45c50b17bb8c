/**
 * Data versions: bumping a tag on save, reading versions in coalesced batches, judging an entry's recorded versions, and
 * what this process remembers of them.
 */
import { LRUCache } from 'lru-cache'
import { recordDeps } from './dependency-recorder.ts'
import type { Deps } from './entry.ts'
import { AtomicityError, InvalidArgumentError, OutcomeUnknownError, VersionsUnavailableError } from './errors.ts'
import type { KeyBuilder } from './keys.ts'
import { tryGetRequestScope } from './request-scope.ts'
import { LuaScript, type RedisConnection, type Unavailable, isUnavailable } from './tiers/redis-client.ts'

/**
 * Shared Lua: `current(key)` is the version under `key` (nil when there is none), and whether what is there is not a
 * version fragcache wrote (another type, or not a positive integer): such a key is replaced, never trusted.
 */
const CURRENT = `
local function current(key)
  local kind = redis.call('TYPE', key)['ok']
  if kind == 'none' then return nil, false end
  if kind ~= 'string' then return nil, true end
  local n = tonumber(redis.call('GET', key))
  if n and n >= 1 and n == math.floor(n) then return n, false end
  return nil, true
end`

/**
 * Reads (or creates) versions. ARGV: the initial version, the key's PX, the healing version. The reply ends with the
 * number of corrupt keys replaced.
 *
 * A version key is created with the current time in milliseconds, not 0: if one is evicted or expires it comes back
 * larger than any version it had, so an old entry can never become valid again. A corrupt one is replaced with the time
 * in microseconds, larger than any version it could have held, for the same reason.
 */
const READ = new LuaScript(`${CURRENT}
local out, healed = {}, 0
for i, key in ipairs(KEYS) do
  local n, corrupt = current(key)
  if corrupt then
    redis.call('SET', key, ARGV[3], 'PX', ARGV[2])
    n, healed = tonumber(ARGV[3]), healed + 1
  elseif not n then
    redis.call('SET', key, ARGV[1], 'NX', 'PX', ARGV[2])
    n = tonumber(redis.call('GET', key))
  end
  out[i] = n
end
out[#KEYS + 1] = healed
return out`)

/** Bumps versions (a corrupt key is replaced, bumped). ARGV as READ's; the reply ends with the number replaced. */
const BUMP = new LuaScript(`${CURRENT}
local out, healed = {}, 0
for i, key in ipairs(KEYS) do
  local n, corrupt = current(key)
  local v
  if corrupt then
    redis.call('DEL', key)
    v, healed = tonumber(ARGV[3]) + 1, healed + 1
    redis.call('SET', key, v)
  elseif n then v = redis.call('INCR', key)
  else v = tonumber(ARGV[1]) + 1; redis.call('SET', key, v) end
  redis.call('PEXPIRE', key, ARGV[2])
  out[i] = v
end
out[#KEYS + 1] = healed
return out`)

/** Attempts after a bump whose reply did not come. */
const BUMP_RETRIES = 2
/** Version keys live this long after their last bump or creation (30 days); see the note on READ. */
const VERSION_TTL_MS = 30 * 24 * 3600 * 1000
const TAG_PATTERN = /^\S{1,200}$/

/**
 * Options of {@link DataVersions}.
 * @internal like every member below that names a Redis type: the shipped declarations must compile without ioredis.
 */
export interface DataVersionsOptions {
  keys: KeyBuilder
  redis: RedisConnection | undefined
  clock: () => number
  /** While the bus is down, a version cached here is trusted this long after it was read (ms). */
  busDownTrustMs: number
  /** Whether the bus is delivering other processes' bumps right now. */
  busHealthy: () => boolean
  /** Whether Redis is down (the circuit is open): then no bump can succeed anywhere, and known versions stay true. */
  redisDown: (key?: string) => boolean
  /** Version keys that held what fragcache never writes were replaced (`count` of `keys`). */
  corrupt: (count: number, keys: readonly string[]) => void
  /** Tells the other processes which tags were bumped; resolves once Redis answered. */
  publish: (tags: string[]) => Promise<void>
  /** Told of every bump this process made, with or without Redis (for the invalidation log). */
  bumped?: (tags: readonly string[]) => void
}

interface Known {
  readonly version: number
  readonly readAt: number
  /**
   * Made up while Redis was down, for a tag whose version this process never read: entries computed then are kept in
   * L1 (the version never equals a real one, so they are recomputed once Redis answers), and it is trusted only while
   * Redis stays down.
   */
  readonly provisional?: true
}

/** The version of a tag unknown here while Redis is down: real versions start at a time in milliseconds, never 0. */
const PROVISIONAL_VERSION = 0

/**
 * Data versions: a tag names a piece of data (`article:42`) or a whole model (`article`); saving the data bumps
 * its version, and every entry that recorded an older version of it is invalid at once, in every tier and
 * every process, without a key scan or a delete.
 *
 * Versions live in Redis (atomic `INCR`) or, without Redis, in this process. Each process keeps the versions it
 * has read in memory, dropped when the bus says another process bumped them; while the bus is down it trusts
 * them for `busDownTrustMs` only. Reads are coalesced (one round trip for every tag asked for in one tick) and
 * memoized per request, so one page judges every fragment against one snapshot.
 *
 * @example
 * ```ts
 * await cache.versions.bump('article:42', 'article')            // in the model's save()
 * await cache.versions.get(['article:42', 'category:3'])        // { 'article:42': 1764…, 'category:3': 1764… }
 * ```
 */
export class DataVersions {
  readonly #options: DataVersionsOptions
  readonly #known = new LRUCache<string, Known>({ max: 100_000 })
  /** The versions themselves, when there is no Redis. */
  readonly #local = new Map<string, number>()
  #lastIssued = 0
  #batch: Map<string, Array<(version: number | Unavailable) => void>> | null = null
  /** Reads of a tag's version under way, so that a prefetch and a later read share one. */
  readonly #fetching = new Map<string, Promise<number | Unavailable>>()
  /** Bumped whenever known versions are dropped, so a read that started before cannot store what it got. */
  #generation = 0

  /** @internal */
  constructor(options: DataVersionsOptions) {
    this.#options = options
  }

  /**
   * The current versions of `tags` (an unknown tag gets its initial version). Inside a `getOrSet` compute, the
   * tags become dependencies of the entry being computed.
   * @throws InvalidArgumentError for a tag that is not a non-empty string without whitespace.
   */
  async get(tags: readonly string[]): Promise<Record<string, number>> {
    checkTags(tags, 'versions.get')
    const versions = await this.read(tags)
    if (isUnavailable(versions)) throw new VersionsUnavailableError(tags, versions.error)
    recordDeps(versions)
    return Object.fromEntries(versions)
  }

  /**
   * Bumps the versions of `tags` (call it on save and delete), invalidating every entry that depends on any of them.
   * Applies at once in this process and tells the others over the bus; resolves once every live process has applied
   * it (or `ackTimeoutMs` passed), so a request any of them starts afterwards cannot see an entry computed before.
   * @throws AtomicityError when Redis cannot be reached: the bump did not happen, and saying otherwise would
   *   let stale pages be served.
   * @throws OutcomeUnknownError (an AtomicityError) when the bump was sent and no answer came, even after two retries:
   *   it may have happened, and every process was told to drop the tags.
   */
  async bump(...tags: string[]): Promise<Record<string, number>> {
    checkTags(tags, 'versions.bump')
    const unique = [...new Set(tags)]
    const { redis } = this.#options
    let versions: number[]
    if (redis) {
      const keys = unique.map((tag) => this.#key(tag))
      const bump = () => redis.run('versions.bump', redis.scriptInOrder(BUMP, keys, this.#scriptArgs()), false, keys[0])
      let reply = await bump()
      let maybeApplied = false
      // No answer to a bump that was sent: it may have happened. Bumping again is harmless (it only invalidates).
      for (let retry = 0; isUnavailable(reply) && reply.maybeApplied && retry < BUMP_RETRIES; retry++) {
        maybeApplied = true
        reply = await bump()
      }
      if (isUnavailable(reply)) {
        if (!maybeApplied && !reply.maybeApplied) throw new AtomicityError('versions.bump', unique.join(','), reply.error)
        // Its outcome is unknown: drop what every process holds of these tags, which is always safe.
        this.drop(unique)
        await this.#options.publish(unique)
        throw new OutcomeUnknownError('versions.bump', unique.join(','), reply.error)
      }
      versions = this.#versionsOf(reply as unknown[], keys)
    } else {
      versions = unique.map((tag) => {
        const next = (this.#local.get(tag) ?? this.#initial()) + 1
        this.#local.set(tag, next)
        return next
      })
    }
    const now = this.#options.clock()
    this.#generation += 1
    const scope = tryGetRequestScope()
    unique.forEach((tag, i) => {
      const version = versions[i] as number
      this.#known.set(tag, { version, readAt: now })
      scope?.versions.set(tag, version)
    })
    // Entries this request already read may depend on what just changed.
    scope?.entries.clear()
    this.#options.bumped?.(unique)
    if (redis) await this.#options.publish(unique)
    return Object.fromEntries(unique.map((tag, i) => [tag, versions[i] as number]))
  }

  /**
   * Judges recorded deps without waiting: true when every tag still has its recorded version, false when one
   * does not, undefined when a version is not known here (or no longer trusted) and must be read.
   */
  check(deps: Deps): boolean | undefined {
    const scope = tryGetRequestScope()
    let complete = true
    for (const tag in deps) {
      const current = scope?.versions.get(tag) ?? this.#trusted(tag)
      if (current === undefined) complete = false
      else if (current !== deps[tag]) return false
      else scope?.versions.set(tag, current)
    }
    return complete ? true : undefined
  }

  /**
   * Judges recorded deps, reading unknown versions: UNAVAILABLE when they cannot be read.
   * @internal
   */
  async verify(deps: Deps): Promise<boolean | Unavailable> {
    const quick = this.check(deps)
    if (quick !== undefined) return quick
    const current = await this.read(Object.keys(deps))
    if (isUnavailable(current)) return current
    for (const tag in deps) if (current.get(tag) !== deps[tag]) return false
    return true
  }

  /**
   * The current versions of `tags`: from the request memo, this process, or one coalesced read. UNAVAILABLE when they
   * cannot be read, unless `provisional`: then, while Redis is down, what this process knew of them, or a provisional
   * version for a tag it never read (a compute can still be kept in L1 until Redis is back).
   * @internal
   */
  async read(tags: readonly string[], provisional = false): Promise<Map<string, number> | Unavailable> {
    const scope = tryGetRequestScope()
    const out = new Map<string, number>()
    const missing: string[] = []
    for (const tag of tags) {
      const version = scope?.versions.get(tag) ?? this.#trusted(tag)
      if (version === undefined) missing.push(tag)
      else out.set(tag, version)
    }
    if (missing.length > 0) {
      const fetched = await Promise.all(missing.map((tag) => this.#fetch(tag)))
      for (let i = 0; i < missing.length; i++) {
        const tag = missing[i] as string
        const version = fetched[i] as number | Unavailable
        if (!isUnavailable(version)) out.set(tag, version)
        else if (!provisional) return version
        else out.set(tag, this.#provisional(tag))
      }
    }
    if (scope) for (const [tag, version] of out) scope.versions.set(tag, version)
    return out
  }

  /**
   * Starts reading the versions of `tags` not known here, without waiting: a read that knows its deps up front
   * sends this alongside its GET, so a cold process pays one round trip of latency, not two.
   */
  prefetch(tags: readonly string[]): void {
    if (!this.#options.redis) return
    const scope = tryGetRequestScope()
    for (const tag of tags) if (scope?.versions.get(tag) === undefined && this.#trusted(tag) === undefined) void this.#fetch(tag)
  }

  /** Forgets what this process knows of `tags` (another process bumped them). */
  drop(tags: readonly string[]): void {
    this.#generation += 1
    for (const tag of tags) this.#known.delete(tag)
  }

  /** Forgets every version known here (the bus reconnected: bumps may have been missed). */
  dropAll(): void {
    this.#generation += 1
    this.#known.clear()
  }

  #trusted(tag: string): number | undefined {
    const { redis } = this.#options
    if (!redis) return this.#local.get(tag)
    const known = this.#known.get(tag)
    if (known === undefined) return undefined
    if (this.#options.redisDown(this.#key(tag))) return known.version
    if (known.provisional) return undefined
    if (this.#options.busHealthy()) return known.version
    return this.#options.clock() - known.readAt <= this.#options.busDownTrustMs ? known.version : undefined
  }

  /** While Redis is down: the version this process last knew of `tag` (however old), or a provisional one. */
  #provisional(tag: string): number {
    const known = this.#known.get(tag)
    if (known !== undefined) return known.version
    this.#known.set(tag, { version: PROVISIONAL_VERSION, readAt: this.#options.clock(), provisional: true })
    return PROVISIONAL_VERSION
  }

  #fetch(tag: string): Promise<number | Unavailable> {
    const { redis } = this.#options
    if (!redis) {
      let version = this.#local.get(tag)
      if (version === undefined) this.#local.set(tag, (version = this.#initial()))
      return Promise.resolve(version)
    }
    const running = this.#fetching.get(tag)
    if (running) return running
    const fetching = new Promise<number | Unavailable>((resolve) => {
      if (this.#batch === null) {
        this.#batch = new Map()
        queueMicrotask(() => void this.#flush())
      }
      const waiting = this.#batch.get(tag)
      if (waiting) waiting.push(resolve)
      else this.#batch.set(tag, [resolve])
    }).finally(() => this.#fetching.delete(tag))
    this.#fetching.set(tag, fetching)
    return fetching
  }

  async #flush(): Promise<void> {
    const batch = this.#batch
    this.#batch = null
    if (batch === null || !this.#options.redis) return
    const tags = [...batch.keys()]
    const generation = this.#generation
    const redis = this.#options.redis
    const keys = tags.map((tag) => this.#key(tag))
    const reply = await redis.run('versions.read', redis.script(READ, keys, this.#scriptArgs()), false, keys[0])
    const read = isUnavailable(reply) ? reply : this.#versionsOf(reply as unknown[], keys)
    const now = this.#options.clock()
    tags.forEach((tag, i) => {
      const version = isUnavailable(read) ? read : (read[i] as number)
      if (!isUnavailable(version) && generation === this.#generation) this.#known.set(tag, { version, readAt: now })
      for (const resolve of batch.get(tag) ?? []) resolve(version)
    })
  }

  #key(tag: string): string {
    return this.#options.keys.build('ver', tag)
  }

  /** ARGV of READ and BUMP: the initial version, the keys' PX, the version that replaces a corrupt key. */
  #scriptArgs(): (string | number)[] {
    return [this.#initial(), VERSION_TTL_MS, Math.floor(this.#options.clock()) * 1000]
  }

  /** The versions in a READ or BUMP reply; reports the corrupt keys it replaced. */
  #versionsOf(reply: unknown[], keys: readonly string[]): number[] {
    const healed = Number(reply[keys.length])
    if (healed > 0) this.#options.corrupt(healed, keys)
    return reply.slice(0, keys.length).map(Number)
  }

  /** A starting version larger than any this process issued before (see the note on READ). */
  #initial(): number {
    this.#lastIssued = Math.max(Math.floor(this.#options.clock()), this.#lastIssued + 1)
    return this.#lastIssued
  }
}

function checkTags(tags: readonly unknown[], where: string): asserts tags is string[] {
  if (!Array.isArray(tags)) throw new InvalidArgumentError(`fragcache: ${where}: tags must be an array of strings`)
  for (const tag of tags) {
    if (typeof tag !== 'string' || !TAG_PATTERN.test(tag)) {
      throw new InvalidArgumentError(
        `fragcache: ${where}: a tag must be a non-empty string of at most 200 characters without whitespace; got ${JSON.stringify(tag) ?? String(tag)}`,
      )
    }
  }
}

export { checkTags }
