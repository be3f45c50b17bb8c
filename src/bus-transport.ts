/**
 * How the bus's messages travel: a subscription on a connection of the bus's own (a duplicate of the cache's client),
 * classic pub/sub on a single Redis, sharded pub/sub (`SSUBSCRIBE`/`SPUBLISH`, Redis 7) on a Cluster, classic pub/sub on
 * an older Cluster; and whether the subscription is in place right now.
 */
import type { Cluster, Redis } from 'ioredis'
import { endSlotRefresh } from './tiers/cluster-close.ts'
import { describe } from './errors.ts'
import type { RedisClient, RedisConnection } from './tiers/redis-client.ts'

/** Where a transport reports. */
export interface TransportHandlers {
  /** A message arrived on the channel. */
  message(text: string): void
  /** The subscription is in place (true) or lost (false). */
  subscribed(state: boolean): void
}

/**
 * One channel over Redis pub/sub.
 * @example
 * ```ts
 * const transport = new BusTransport(connection, 'fragcache:site', { message: receive, subscribed: setListening })
 * await transport.publish('hello')
 * ```
 */
export class BusTransport {
  readonly #connection: RedisConnection
  readonly #channel: string
  readonly #handlers: TransportHandlers
  readonly #subscriber: RedisClient
  /** Sharded pub/sub (a Cluster on Redis 7), until SSUBSCRIBE is refused. */
  #sharded: boolean
  #retry: NodeJS.Timeout | undefined
  #closed = false

  constructor(connection: RedisConnection, channel: string, handlers: TransportHandlers) {
    this.#connection = connection
    this.#channel = channel
    this.#handlers = handlers
    const client = connection.client
    this.#sharded = connection.isCluster
    this.#subscriber = connection.isCluster
      ? (client as Cluster).duplicate([], { shardedSubscribers: true })
      : (client as Redis).duplicate()
    // The bus subscribes again itself on every 'ready', with a handler. ioredis's own resubscription has none: a
    // connection lost while it is under way would surface as an unhandled rejection and could end the process.
    const options = (this.#subscriber as { options?: { autoResubscribe?: boolean } }).options
    if (options && !connection.isCluster) options.autoResubscribe = false
    const receive = (from: string, text: string): void => {
      if (from === this.#channel) this.#handlers.message(text)
    }
    this.#subscriber.on('message', receive)
    this.#subscriber.on('smessage', receive)
    for (const lost of ['close', 'end', '-subscriber']) this.#subscriber.on(lost, () => this.#handlers.subscribed(false))
    this.#subscriber.on('error', () => {})
    // Subscribe on every 'ready' (the first connection and each reconnection): only once the subscription is in place
    // is the bus listening.
    this.#subscriber.on('ready', () => this.#subscribe())
    // A Cluster's client is 'ready' once: when a master fails over, ioredis replaces that shard's subscriber
    // ('-subscriber'), subscribes again on its own and says so only with 'subscribersReady'. Subscribing then, with a
    // handler, is how the bus learns it listens again (and, through its gap detection, that it may have missed some).
    this.#subscriber.on('subscribersReady', () => this.#subscribe())
    if (this.#subscriber.status === 'ready') this.#subscribe()
  }

  /** Publishes `text` through the cache's connection (bounded by its timeout and breaker); resolves once answered. */
  publish(text: string): Promise<unknown> {
    const channel = this.#channel
    return this.#connection.run('publish', (c) => (this.#sharded ? c.spublish(channel, text) : c.publish(channel, text)), false, this.#sharded ? channel : undefined)
  }

  /** Closes the subscription's own connection. */
  close(): void {
    this.#closed = true
    clearTimeout(this.#retry)
    this.#subscriber.removeAllListeners('ready')
    this.#subscriber.disconnect()
    if (this.#connection.isCluster) endSlotRefresh(this.#subscriber as Cluster)
    this.#handlers.subscribed(false)
  }

  /** Subscribes; on a refusal with the connection up (an ACL, say), tries again every second until it works. */
  #subscribe(): void {
    const subscriber = this.#subscriber
    const subscribing = this.#sharded ? subscriber.ssubscribe(this.#channel) : subscriber.subscribe(this.#channel)
    subscribing.then(
      () => this.#handlers.subscribed(true),
      (error: unknown) => {
        this.#handlers.subscribed(false)
        // A Cluster of Redis < 7 has no sharded pub/sub: classic pub/sub reaches every node of a Cluster too.
        const fallBack = this.#sharded && /unknown command/i.test(describe(error))
        if (fallBack) this.#sharded = false
        if (this.#closed || this.#retry !== undefined) return
        this.#retry = setTimeout(() => {
          this.#retry = undefined
          if (!this.#closed && subscriber.status === 'ready') this.#subscribe()
        }, fallBack ? 0 : 1000)
        this.#retry.unref()
      },
    )
  }
}
