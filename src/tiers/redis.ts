/**
 * The shared tier (L2): entries stored in Redis in fragcache's envelope (see `redis-format.ts`), read, written, touched,
 * incremented and deleted through a {@link RedisConnection}, so every call is bounded and a failure is an answer.
 */
import type { Cluster, Redis } from 'ioredis'
import type { Entry } from '../entry.ts'
import { type BULK_TIMEOUT_MS, type RedisConnection, Unavailable, isUnavailable } from './redis-client.ts'
import { groupBySlot } from './cluster-slots.ts'
import { ADD, INCR, TOUCH, decodeEntry, encodeEntry, pxFor } from './redis-format.ts'

/** An entry to write, with its payload (a string as it is, anything else as JSON). */
export interface EntryWrite {
  readonly key: string
  readonly entry: Entry
  readonly payload: string
}

/**
 * The Redis tier. Reads resolve to the entry, `undefined` (nothing there, or a value fragcache did not write whole,
 * reported through `corrupt` and deleted), or {@link Unavailable}; nothing throws for an outage.
 *
 * @example
 * ```ts
 * const l2 = new RedisTier(connection, (key) => console.warn(`corrupt ${key}`))
 * const entry = await l2.get('site:1:c:top')   // Entry | undefined | Unavailable
 * ```
 */
export class RedisTier {
  readonly connection: RedisConnection
  readonly #corrupt: (key: string) => void

  constructor(connection: RedisConnection, corrupt: (key: string) => void) {
    this.connection = connection
    this.#corrupt = corrupt
  }

  get(key: string): Promise<Entry | undefined | Unavailable> {
    return this.connection
      .run('get', (c) => c.getBuffer(key), false, key)
      .then((raw) => (isUnavailable(raw) ? raw : raw === null ? undefined : this.#decode(key, raw)))
  }

  /**
   * Reads many keys in one round trip: one MGET, or on a Cluster one MGET per slot, all sent at once (ioredis pipelines
   * those of one node together), each through its master's breaker: a dead master's keys are {@link Unavailable}, the
   * others are read.
   */
  async getMany(keys: readonly string[]): Promise<(Entry | undefined | Unavailable)[] | Unavailable> {
    if (keys.length === 0) return []
    if (!this.connection.isCluster) {
      const raws = await this.connection.run('getMany', (c) => c.mgetBuffer(...keys))
      return isUnavailable(raws) ? raws : raws.map((raw, i) => this.#decodeRaw(keys[i] as string, raw))
    }
    const read: (Entry | undefined | Unavailable)[] = Array.from({ length: keys.length })
    await Promise.all(
      [...groupBySlot(keys)].map(async ([, positions]) => {
        const slotKeys = positions.map((i) => keys[i] as string)
        const first = slotKeys[0] as string
        const raws = await this.connection.run(
          'getMany',
          (c) => (slotKeys.length === 1 ? c.getBuffer(first).then((raw) => [raw]) : c.mgetBuffer(...slotKeys)),
          false,
          first,
        )
        positions.forEach((position, j) => {
          read[position] = isUnavailable(raws) ? raws : this.#decodeRaw(slotKeys[j] as string, raws[j] ?? null)
        })
      }),
    )
    return read
  }

  async set(write: EntryWrite, now: number): Promise<true | Unavailable> {
    const raw = encodeEntry(write.entry, write.payload)
    const px = pxFor(write.entry.graceUntil, now)
    const reply = await this.connection.run('set', (c) => (px === null ? c.set(write.key, raw) : c.set(write.key, raw, 'PX', px)), false, write.key)
    return isUnavailable(reply) ? reply : true
  }

  /**
   * Writes many entries in one round trip: one pipeline, or on a Cluster one per slot (a pipeline cannot span slots),
   * all sent at once, each through its master's breaker. True when any was written (the caller then tells the other
   * processes about all of them, which is always safe); {@link Unavailable} when none was.
   */
  async setMany(writes: readonly EntryWrite[], now: number): Promise<true | Unavailable> {
    if (writes.length === 0) return true
    if (!this.connection.isCluster) return this.#pipelineSet(writes, now, undefined)
    const keys = writes.map((write) => write.key)
    const results = await Promise.all([...groupBySlot(keys)].map(([, positions]) => this.#pipelineSet(positions.map((i) => writes[i] as EntryWrite), now, keys[positions[0] as number])))
    return results.find((result) => !isUnavailable(result)) ?? (results[0] as Unavailable)
  }

  #pipelineSet(writes: readonly EntryWrite[], now: number, routeKey: string | undefined): Promise<true | Unavailable> {
    return this.connection.run(
      'setMany',
      async (c) => {
        const pipeline = c.pipeline()
        for (const { key, entry, payload } of writes) {
          const px = pxFor(entry.graceUntil, now)
          if (px === null) pipeline.set(key, encodeEntry(entry, payload))
          else pipeline.set(key, encodeEntry(entry, payload), 'PX', px)
        }
        const results = await pipeline.exec()
        const failed = results?.find(([err]) => err)
        if (failed?.[0]) throw failed[0]
        return true as const
      },
      false,
      routeKey,
    )
  }

  /** Stores unless a fresh entry is there, by the cache's clock (`now`): true when stored. */
  async add(write: EntryWrite, now: number): Promise<boolean | Unavailable> {
    const px = pxFor(write.entry.graceUntil, now) ?? 0
    const reply = await this.connection.run('add', this.connection.script(ADD, [write.key], [now, encodeEntry(write.entry, write.payload), px]), false, write.key)
    return isUnavailable(reply) ? reply : reply === 1
  }

  /**
   * Deletes keys: one UNLINK, or on a Cluster one per slot, all at once, each through its master's breaker. The number
   * deleted where Redis answered; {@link Unavailable} when no node did.
   */
  async delete(keys: readonly string[]): Promise<number | Unavailable> {
    if (keys.length === 0) return 0
    if (!this.connection.isCluster) return this.connection.run('delete', (c) => c.unlink(...keys))
    const counts = await Promise.all(
      [...groupBySlot(keys)].map(([, positions]) => {
        const slotKeys = positions.map((i) => keys[i] as string)
        return this.connection.run('delete', (c) => c.unlink(...slotKeys), false, slotKeys[0])
      }),
    )
    const answered = counts.filter((count): count is number => !isUnavailable(count))
    return answered.length === 0 ? (counts[0] as Unavailable) : answered.reduce((a, b) => a + b, 0)
  }

  /** Sets a new expiry on a fresh entry (by the cache's clock), in its envelope and in Redis. */
  async touch(key: string, expiresAt: number | null, now: number): Promise<boolean | Unavailable> {
    const args = [now, expiresAt ?? 0, expiresAt ?? 0, pxFor(expiresAt, now) ?? 0]
    const reply = await this.connection.run('touch', this.connection.script(TOUCH, [key], args), false, key)
    return isUnavailable(reply) ? reply : reply === 1
  }

  /** Atomically adds `by` to a fresh integer entry (by the cache's clock), keeping its TTL. */
  async incr(key: string, by: number, now: number): Promise<number | 'missing' | 'nan' | Unavailable> {
    const reply = await this.connection.run('incr', this.connection.script(INCR, [key], [now, by]), false, key)
    if (isUnavailable(reply)) return reply
    const [status, value] = reply as [string, string?]
    return status === 'ok' ? Number(value) : (status as 'missing' | 'nan')
  }

  /**
   * Deletes every key starting with `prefix`, SCANning in batches (on every master of a cluster, deleting each batch
   * with one UNLINK per slot). An admin call, not a page's: each batch may take up to {@link BULK_TIMEOUT_MS}.
   */
  async deleteByPrefix(prefix: string): Promise<true | Unavailable> {
    const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`
    const client = this.connection.client
    const nodes = this.connection.isCluster ? (client as Cluster).nodes('master') : [client as Redis]
    for (const node of nodes) {
      let cursor = '0'
      do {
        const page = await this.connection.run('clear', () => node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000), true)
        if (isUnavailable(page)) return page
        cursor = page[0]
        const keys = page[1]
        if (keys.length === 0) continue
        const groups = this.connection.isCluster ? [...groupBySlot(keys).values()].map((positions) => positions.map((i) => keys[i] as string)) : [keys]
        const deleted = await Promise.all(groups.map((slotKeys) => this.connection.run('clear', () => node.unlink(...slotKeys), true)))
        const failed = deleted.find(isUnavailable)
        if (failed !== undefined) return failed
      } while (cursor !== '0')
    }
    return true
  }

  #decodeRaw(key: string, raw: Buffer | null): Entry | undefined {
    return raw === null ? undefined : this.#decode(key, raw)
  }

  #decode(key: string, raw: Buffer): Entry | undefined {
    const entry = decodeEntry(raw)
    if (entry === 'corrupt') {
      this.#corrupt(key)
      // Heal: the next read is a plain miss, and the next compute stores a whole entry. (Deleting is always safe.)
      void this.connection.run('heal', (c) => c.unlink(key), false, key)
    }
    return typeof entry === 'string' ? undefined : entry
  }
}
