// A uvu suite's own redis-server, and caches on it that are closed when the suite ends.
import type { Test } from 'uvu'
import { type CacheOptions, type TieredCache, createCache } from '../../src/index.ts'
import { RedisServer } from './redis-server.ts'

/** What {@link suiteRedis} gives a suite. */
export interface SuiteRedis {
  /** The suite's server, started before its first test and stopped after its last. */
  readonly server: RedisServer
  /** A cache on the suite's server under `prefix`, ready, silent, closed after the suite. */
  cache(prefix: string, options?: CacheOptions): Promise<TieredCache>
}

/** Gives `test` a redis-server of its own; `defaults` are options of every cache made on it. */
export function suiteRedis(test: Test, defaults: CacheOptions = {}): SuiteRedis {
  let server: RedisServer | undefined
  const caches: TieredCache[] = []
  test.before(async () => {
    server = await RedisServer.start()
  })
  test.after(async () => {
    await Promise.all(caches.map((cache) => cache.close()))
    await server?.stop()
  })
  const started = (): RedisServer => {
    if (server === undefined) throw new Error('the suite has not started its redis-server yet')
    return server
  }
  return {
    get server() {
      return started()
    },
    async cache(prefix, options = {}) {
      const cache = createCache({ redis: started().url, prefix, logger: { warn: () => {}, error: () => {} }, ...defaults, ...options })
      caches.push(cache)
      await cache.ready()
      return cache
    },
  }
}
