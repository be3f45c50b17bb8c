/**
 * The invalidation bus: what one process tells the others over Redis pub/sub (drop these keys, these tags' versions,
 * or everything), on a connection of its own, and whether it is listening right now.
 */
import { randomUUID } from 'node:crypto'
import { NotReadyError } from './errors.ts'
import type { RedisClient } from './tiers/redis-client.ts'

/** What one process tells the others: drop these keys, drop these tags' versions, or drop everything. */
export type BusMessage = { kind: 'keys'; keys: string[] } | { kind: 'tags'; tags: string[] } | { kind: 'clear' }

/** Where the bus reports to its cache. */
export interface BusHandlers {
  /** A message from another process. */
  message(message: BusMessage): void
  /** The subscription was (re)established: messages may have been missed while it was down. */
  connected(): void
}

/**
 * Cross-process invalidation over Redis pub/sub: each process keeps an L1 and drops from it what another
 * process changed. Uses a connection of its own (a duplicate of the cache's), which it closes on `close()`.
 * A process ignores its own messages: it has applied its change already (read-your-writes).
 *
 * @example
 * ```ts
 * const bus = new InvalidationBus(redis, 'fragcache:site')
 * bus.listen(handlers)
 * await bus.publish({ kind: 'tags', tags: ['article:42'] })
 * ```
 */
export class InvalidationBus {
  readonly #id = randomUUID()
  readonly #channel: string
  readonly #send: (channel: string, text: string) => Promise<unknown>
  /** Publishes sent and not yet answered, for {@link settled}. */
  readonly #pending = new Set<Promise<void>>()
  readonly #subscriber: RedisClient
  #handlers: BusHandlers = { message: () => {}, connected: () => {} }
  #healthy = false
  readonly #ready: Promise<void>
  #resolveReady: () => void = () => {}
  #retry: NodeJS.Timeout | undefined
  #closed = false

  /**
   * `client` is duplicated for the subscription; `send` publishes (through the cache's connection, so it is bounded by
   * its timeout and breaker).
   */
  constructor(client: RedisClient, channel: string, send: (channel: string, text: string) => Promise<unknown>) {
    this.#channel = channel
    this.#send = send
    this.#subscriber = (client.duplicate as () => RedisClient).call(client)
    // The bus subscribes again itself on every 'ready', with a handler. ioredis's own resubscription has none: a
    // connection lost while it is under way would surface as an unhandled rejection and could end the process.
    const options = (this.#subscriber as { options?: { autoResubscribe?: boolean } }).options
    if (options) options.autoResubscribe = false
    this.#subscriber.on('message', (channel: string, text: string) => {
      if (channel === this.#channel) this.#receive(text)
    })
    this.#subscriber.on('close', () => this.#setHealthy(false))
    this.#subscriber.on('end', () => this.#setHealthy(false))
    this.#subscriber.on('error', () => {})
    // Subscribe on every 'ready' (the first connection and each reconnection): only once the subscription is
    // in place is the bus listening, and only then may the cache trust its L1 again.
    this.#ready = new Promise((resolve) => (this.#resolveReady = resolve))
    this.#subscriber.on('ready', () => this.#subscribe())
  }

  /** Where messages from other processes and reconnections are reported from now on. */
  listen(handlers: BusHandlers): void {
    this.#handlers = handlers
  }

  /** Resolves once the first subscription is in place; rejects with {@link NotReadyError} after `timeoutMs`, if given. */
  async ready(timeoutMs?: number): Promise<void> {
    if (timeoutMs === undefined) return this.#ready
    let timer: NodeJS.Timeout | undefined
    try {
      await Promise.race([this.#ready, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new NotReadyError(timeoutMs)), timeoutMs)))])
    } finally {
      clearTimeout(timer)
    }
  }

  /** True while messages from other processes are being received. */
  get healthy(): boolean {
    return this.#healthy
  }

  /**
   * Sends a message to every other process; resolves once Redis answered (or could not), never throws: a lost message
   * is covered by bounded trust (Redis is down, and so is every other process's bus).
   */
  publish(message: BusMessage): Promise<void> {
    const payload = message.kind === 'clear' ? '' : JSON.stringify(message.kind === 'keys' ? message.keys : message.tags)
    const sent = this.#send(this.#channel, `${this.#id}|${message.kind}|${payload}`).then(
      () => {},
      () => {},
    )
    const tracked = sent.finally(() => this.#pending.delete(tracked))
    this.#pending.add(tracked)
    return tracked
  }

  /** Resolves once every publish sent so far has been answered (or has failed). */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending])
  }

  /** Unsubscribes and closes the bus's own connection. */
  async close(): Promise<void> {
    this.#closed = true
    clearTimeout(this.#retry)
    this.#subscriber.removeAllListeners('ready')
    this.#subscriber.disconnect()
    this.#healthy = false
  }

  /** Subscribes; on a refusal with the connection up (an ACL, say), tries again every second until it works. */
  #subscribe(): void {
    this.#subscriber.subscribe(this.#channel).then(
      () => {
        this.#setHealthy(true)
        this.#resolveReady()
      },
      () => {
        this.#setHealthy(false)
        if (this.#closed || this.#retry !== undefined) return
        this.#retry = setTimeout(() => {
          this.#retry = undefined
          if (!this.#closed && this.#subscriber.status === 'ready') this.#subscribe()
        }, 1000)
        this.#retry.unref()
      },
    )
  }

  #setHealthy(healthy: boolean): void {
    if (healthy === this.#healthy) return
    this.#healthy = healthy
    if (healthy) this.#handlers.connected()
  }

  #receive(text: string): void {
    const first = text.indexOf('|')
    const second = text.indexOf('|', first + 1)
    if (first < 0 || second < 0 || text.slice(0, first) === this.#id) return
    const kind = text.slice(first + 1, second)
    try {
      if (kind === 'clear') return this.#handlers.message({ kind: 'clear' })
      const list = JSON.parse(text.slice(second + 1)) as unknown
      if (!Array.isArray(list) || !list.every((item) => typeof item === 'string')) return
      if (kind === 'keys') this.#handlers.message({ kind: 'keys', keys: list })
      else if (kind === 'tags') this.#handlers.message({ kind: 'tags', tags: list })
    } catch {
      // Not a message of ours: someone else publishes on this channel. Ignore it.
    }
  }
}
