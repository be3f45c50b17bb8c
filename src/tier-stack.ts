/**
 * The tiers in order, read and written as one: the request scope, then L1 (in-process), then L2 (Redis), with one read
 * path beyond L1 for one key or many, back-fills that never extend an entry's life, writes to every tier, what the bus
 * says other processes changed, and the invalidation epochs that stop a racing L2 read from back-filling stale data.
 */
import type { BusMessage } from './bus.ts'
import { ChangeListeners } from './change-listeners.ts'
import { recordEntry } from './dependency-recorder.ts'
import { type Entry, isExpired, isGone } from './entry.ts'
import { type RequestScope, tryGetRequestScope } from './request-scope.ts'
import type { CacheStats } from './stats.ts'
import type { MemoryTier } from './tiers/memory.ts'
import { type Unavailable, isUnavailable } from './tiers/redis-client.ts'
import type { EntryWrite, RedisTier } from './tiers/redis.ts'
import { variationKey } from './variation.ts'
import type { DataVersions } from './versions.ts'

/** What a {@link TierStack} is made of. */
export interface TierStackParts {
  readonly l1: MemoryTier
  readonly l2: RedisTier | undefined
  readonly versions: DataVersions
  readonly stats: CacheStats
  readonly clock: () => number
  /** While the bus is down, an L1 entry is trusted this long after it was stored (ms). */
  readonly busDownTrustMs: number
  /** Whether other processes' invalidations are reaching this one now. */
  readonly busHealthy: () => boolean
  /** Whether Redis is down (the circuit is open): no bump can succeed anywhere, so L1 stays true. */
  readonly redisDown: (key?: string) => boolean
  /**
   * Tells the other processes; resolves once Redis answered and, when `acknowledged`, once every live process applied
   * it (never rejects).
   */
  readonly publish: (message: BusMessage, acknowledged: boolean) => Promise<void>
}

/** One GET that concurrent readers of a key share. */
interface SharedRead {
  readonly epoch: number
  readonly remote: Promise<Entry | undefined | Unavailable>
}

/** When an L2 read started: what judging and back-filling its entry needs. */
interface L2Read {
  readonly scope: RequestScope | undefined
  readonly now: number
  /** The invalidation epoch when the read started. */
  readonly epoch: number
}

/**
 * The request scope, L1 and L2 as one store.
 * @example
 * ```ts
 * const stack = new TierStack({ l1, l2, versions, stats, clock: Date.now, busDownTrustMs: 1000, busHealthy, redisDown, publish })
 * const entry = stack.readNear(key, scope, now) ?? (await stack.readFar(key, scope, now))
 * ```
 */
export class TierStack {
  readonly l1: MemoryTier
  readonly l2: RedisTier | undefined
  readonly #p: TierStackParts
  /**
   * Invalidation epochs: `#epoch` counts invalidations, `#keyEpochs` remembers the last one per key (bounded) and
   * `#clearEpoch` the last that dropped everything, so that an L2 read that raced an invalidation from another process
   * does not back-fill L1 with what it read.
   */
  #epoch = 0
  readonly #keyEpochs = new Map<string, number>()
  #clearEpoch = 0
  /** L2 reads under way; with none, no invalidation needs remembering. */
  #l2Reads = 0
  /** L2 reads of one key under way, shared by the callers that ask for it meanwhile. */
  readonly #reading = new Map<string, SharedRead>()
  /** Computes waiting for another process to store a key. */
  readonly listeners = new ChangeListeners()

  constructor(parts: TierStackParts) {
    this.l1 = parts.l1
    this.l2 = parts.l2
    this.#p = parts
  }

  /** The request scope, then L1, without waiting; undefined when a slower read is needed. */
  readNear(fullKey: string, scope: RequestScope | undefined, now: number, countMisses = true): Entry | undefined {
    if (scope !== undefined) {
      const scoped = scope.entries.get(fullKey)
      if (scoped !== undefined && !isExpired(scoped, now)) {
        this.#p.stats.hit('request')
        return scoped
      }
      if (countMisses) this.#p.stats.miss('request')
    }
    let entry = this.#trustedL1(fullKey, now)
    // Kept stale within its grace: only the slower path may serve it (when its recompute fails or is slow).
    if (entry !== undefined && isExpired(entry, now)) entry = undefined
    if (entry !== undefined && entry.deps !== null) {
      const valid = this.#p.versions.check(entry.deps)
      if (valid === false) this.l1.delete(fullKey)
      if (valid !== true) {
        if (countMisses) this.#p.stats.miss('l1')
        return undefined
      }
    }
    if (entry === undefined) {
      if (countMisses) this.#p.stats.miss('l1')
      return undefined
    }
    this.#p.stats.hit('l1')
    scope?.entries.set(fullKey, entry)
    return entry
  }

  /**
   * One key beyond the request scope: L1 entries whose deps need reading, then L2. The entry may be stale (expired, kept
   * within its grace): callers that need a fresh one check `isExpired`.
   */
  readFar(fullKey: string, scope: RequestScope | undefined, now: number): Promise<Entry | undefined> {
    // One continuation, not an async function: this is the path of every L2 hit (Node 20 makes each promise dear).
    this.#l2Reads += 1
    // Concurrent reads of one key share one GET, judged with the epoch of the first: an invalidation that raced it
    // keeps every one of them from back-filling L1.
    let shared = this.#reading.get(fullKey)
    if (shared === undefined) {
      shared = { epoch: this.#epoch, remote: this.l2 ? this.l2.get(fullKey) : Promise.resolve(undefined) }
      this.#reading.set(fullKey, shared)
    }
    const read = shared
    return read.remote.then((remote) => {
      // Whoever gets the answer first ends the sharing (the GET never rejects): later readers send a GET of their own.
      if (this.#reading.get(fullKey) === read) this.#reading.delete(fullKey)
      let judged: Entry | undefined | Promise<Entry | undefined>
      try {
        judged = this.#judge({ scope, now, epoch: read.epoch }, fullKey, remote)
      } catch (error) {
        this.#l2ReadDone()
        throw error
      }
      if (!(judged instanceof Promise)) {
        this.#l2ReadDone()
        return judged
      }
      return judged.finally(() => this.#l2ReadDone())
    })
  }

  /**
   * What a read of `fullKey` serves (for `get`): a fresh entry through every tier, following a redirect to this request's
   * variation, recorded into the compute around it; undefined on a miss. Answers without waiting when it can.
   */
  lookup(fullKey: string, scope: RequestScope | undefined, now: number): Entry | undefined | Promise<Entry | undefined> {
    const near = this.readNear(fullKey, scope, now)
    if (near !== undefined && near.kind !== 'r') return served(near, now)
    return Promise.resolve(near ?? this.readFar(fullKey, scope, now)).then((entry) => this.resolve(fullKey, entry, scope, now))
  }

  /** What an entry read for `fullKey` serves (see {@link lookup}): the redirect followed, fresh, recorded. */
  async resolve(fullKey: string, entry: Entry | undefined, scope: RequestScope | undefined, now: number): Promise<Entry | undefined> {
    return served(await this.follow(fullKey, entry, scope, now), now)
  }

  /**
   * What the request scope or L1 can serve for `fullKey` without waiting (a redirect followed as far as L1 goes),
   * recorded into the compute around it; its misses are not counted (a probe: the read that follows counts them).
   */
  peek(fullKey: string, scope: RequestScope | undefined, now: number): Entry | undefined {
    let entry = this.readNear(fullKey, scope, now, false)
    if (entry?.kind === 'r') {
      recordEntry(entry)
      entry = this.readNear(variationKey(fullKey, entry.value as readonly string[], scope), scope, now, false)
    }
    return served(entry, now)
  }

  /**
   * The entry a read of `base` leads to: `entry` itself, or, for a redirect (a value that varies by request contexts),
   * the variation of this request, near or far; what the redirect varies by is recorded into the compute around.
   */
  follow(base: string, entry: Entry | undefined, scope: RequestScope | undefined, now: number): Entry | undefined | Promise<Entry | undefined> {
    if (entry?.kind !== 'r') return entry
    recordEntry(entry)
    const key = variationKey(base, entry.value as readonly string[], scope)
    return this.readNear(key, scope, now) ?? this.readFar(key, scope, now)
  }

  /** Several keys through every tier, those beyond L1 in one L2 round trip; entries in the order asked. */
  async readMany(fullKeys: readonly string[], scope: RequestScope | undefined, now: number): Promise<(Entry | undefined)[]> {
    const entries = fullKeys.map((fullKey) => this.readNear(fullKey, scope, now))
    const far = fullKeys.filter((_, i) => entries[i] === undefined)
    if (far.length === 0) return entries
    const read = await this.#readFarMany(far, scope, now)
    let j = 0
    return entries.map((entry) => {
      if (entry !== undefined) return entry
      const far = read[j++]
      return far === undefined || isExpired(far, now) ? undefined : far
    })
  }

  async #readFarMany(fullKeys: readonly string[], scope: RequestScope | undefined, now: number): Promise<(Entry | undefined)[]> {
    this.#l2Reads += 1
    const read: L2Read = { scope, now, epoch: this.#epoch }
    try {
      const remote = this.l2 ? await this.l2.getMany(fullKeys) : undefined
      // All at once, so the versions every entry needs are read in one round trip.
      return await Promise.all(fullKeys.map((fullKey, i) => this.#judge(read, fullKey, isUnavailable(remote) ? remote : remote?.[i])))
    } finally {
      this.#l2ReadDone()
    }
  }

  /** The live L1 entry under `fullKey`, deps unchecked (for operations that change it in place). */
  peekL1(fullKey: string, now: number): Entry | undefined {
    return this.l1.get(fullKey, now)
  }

  /**
   * Stores an entry in every tier and tells the other processes (without waiting for that: `flush()` does). A write that
   * reached only L1 tells nobody: the other processes could not read it anyway.
   */
  async store(write: EntryWrite): Promise<void> {
    this.remember(write.key, write.entry)
    if (!this.l2) return
    if (!isUnavailable(await this.l2.set(write, this.#p.clock()))) void this.announce([write.key])
  }

  /**
   * Stores entries in every tier (L2 in one round trip) and resolves once every live process dropped its old copy:
   * `set` and `setMany` are read-your-writes across processes.
   */
  async storeMany(writes: readonly EntryWrite[]): Promise<void> {
    for (const write of writes) this.remember(write.key, write.entry)
    if (!this.l2) return
    if (!isUnavailable(await this.l2.setMany(writes, this.#p.clock()))) await this.announce(writes.map((write) => write.key), true)
  }

  /** Puts an entry in the request scope and L1. */
  remember(fullKey: string, entry: Entry): void {
    tryGetRequestScope()?.entries.set(fullKey, entry)
    this.l1.set(fullKey, entry, this.#p.clock())
  }

  /** Drops keys from the request scope and L1; the number L1 held. */
  forget(fullKeys: readonly string[], scope: RequestScope | undefined): number {
    let count = 0
    for (const key of fullKeys) {
      scope?.entries.delete(key)
      if (this.l1.delete(key)) count += 1
    }
    return count
  }

  /** Removes keys from every tier and tells the other processes (resolving once they are told); the number that were there. */
  async remove(fullKeys: readonly string[], scope: RequestScope | undefined): Promise<number> {
    const local = this.forget(fullKeys, scope)
    if (!this.l2) return local
    const removed = await this.l2.delete(fullKeys)
    // Dropping a copy is always safe: even when Redis did not answer, the delete may have happened.
    await this.announce(fullKeys, true)
    return isUnavailable(removed) ? local : removed
  }

  /**
   * Tells the other processes that these keys changed; resolves once Redis answered and, when `acknowledged`, once every
   * live process dropped its copy (read-your-writes: a request they start afterwards cannot see the old value).
   */
  announce(fullKeys: readonly string[], acknowledged = false): Promise<void> {
    return this.#p.publish({ kind: 'keys', keys: [...fullKeys] }, acknowledged)
  }

  /** What another process said over the bus. */
  receive(message: BusMessage): void {
    if (message.kind === 'keys') {
      for (const key of message.keys) {
        this.#invalidateL1(key)
        this.listeners.changed(key)
      }
    } else if (message.kind === 'tags') this.#p.versions.drop(message.tags)
    else this.dropL1()
  }

  /** Drops everything L1 holds, refuses the back-fills of every L2 read under way, and wakes every waiter. */
  dropL1(): void {
    this.l1.clear()
    this.#keyEpochs.clear()
    this.#clearEpoch = ++this.#epoch
    this.listeners.changedAll()
  }



  /**
   * The L1 entry, unless the bus is down while Redis is up and the entry is older than `busDownTrustMs` (another process
   * may have changed it, and this one would not have heard). With Redis down, nobody can change anything.
   */
  #trustedL1(fullKey: string, now: number): Entry | undefined {
    const slot = this.l1.getSlot(fullKey, now)
    if (slot === undefined) return undefined
    if (!this.#p.busHealthy() && now - slot.storedAt > this.#p.busDownTrustMs && !this.#p.redisDown(fullKey)) return undefined
    return slot.entry
  }

  /** An L2 read that may back-fill L1 is over: with none left, no invalidation needs remembering. */
  #l2ReadDone(): void {
    if (--this.#l2Reads === 0) this.#keyEpochs.clear()
  }

  /**
   * Judges what L2 answered for one key (when L2 is unavailable, what L1 holds is the best there is: its deps are still
   * checked) and back-fills the nearer tiers with it. Answers without waiting unless versions must be read.
   */
  #judge(read: L2Read, fullKey: string, remote: Entry | undefined | Unavailable): Entry | undefined | Promise<Entry | undefined> {
    const fromL2 = this.l2 !== undefined && !isUnavailable(remote)
    const entry = isUnavailable(remote) || this.l2 === undefined ? this.l1.get(fullKey, read.now) : remote
    if (entry === undefined || isGone(entry, read.now)) return this.#missed()
    const valid = entry.deps === null ? true : this.#p.versions.check(entry.deps)
    if (valid !== undefined) return this.#settle(read, fullKey, entry, valid, fromL2)
    return this.#p.versions.verify(entry.deps as NonNullable<Entry['deps']>).then((verified) => this.#settle(read, fullKey, entry, verified, fromL2))
  }

  #settle(read: L2Read, fullKey: string, entry: Entry, valid: boolean | Unavailable, fromL2: boolean): Entry | undefined {
    if (valid !== true) {
      if (valid === false) this.l1.delete(fullKey)
      return this.#missed()
    }
    // A stale entry (kept within its grace) is not a hit: the caller may still serve it, if its recompute fails or is slow.
    const fresh = !isExpired(entry, read.now)
    if (fresh) this.#p.stats.hit(fromL2 ? 'l2' : 'l1')
    else if (this.l2) this.#p.stats.miss('l2')
    // The entry keeps its own expiresAt: a back-fill never extends its life.
    if (fromL2 && this.#unchangedSince(fullKey, read.epoch)) this.l1.set(fullKey, entry, read.now)
    if (fresh) read.scope?.entries.set(fullKey, entry)
    return entry
  }

  #missed(): undefined {
    if (this.l2) this.#p.stats.miss('l2')
    return undefined
  }

  /** Another process changed `fullKey`: drop this process's copy, and refuse back-fills of reads that raced it. */
  #invalidateL1(fullKey: string): void {
    this.l1.delete(fullKey)
    if (this.#l2Reads === 0) return
    if (this.#keyEpochs.size >= 10_000) return this.dropL1()
    this.#keyEpochs.set(fullKey, ++this.#epoch)
  }

  /** True when nothing invalidated `fullKey` since `epoch` was read. */
  #unchangedSince(fullKey: string, epoch: number): boolean {
    return this.#clearEpoch <= epoch && (this.#keyEpochs.get(fullKey) ?? 0) <= epoch
  }
}

/** `entry` when it can be served as a hit (fresh, not a redirect), recorded into the compute around; else undefined. */
function served(entry: Entry | undefined, now: number): Entry | undefined {
  if (entry === undefined || entry.kind === 'r' || isExpired(entry, now)) return undefined
  recordEntry(entry)
  return entry
}
