/**
 * Errors on a Redis Cluster: a reply error is logged with its command and never counts as an outage; a dead master
 * shuts only its own slots (one breaker per master).
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { type TieredCache, createCache } from '../../src/index.ts'
import { eventually } from '../support/redis-server.ts'
import { TOPOLOGIES, type TestRedis, startRedis } from '../support/redis-topology.ts'

if (TOPOLOGIES.includes('cluster')) {
  const errors = suite('Cluster errors and breakers')
  let redis!: TestRedis
  const caches: TieredCache[] = []
  errors.before(async () => {
    redis = await startRedis('cluster')
  })
  errors.after(async () => {
    for (const cache of caches) await cache.close()
    await redis?.stop()
  })

  const open = async (prefix: string, logged: string[] = []): Promise<TieredCache> => {
    const cache = createCache({
      prefix,
      redis: redis.urls,
      redisTimeoutMs: 200,
      redisBreaker: { threshold: 3, cooldownMs: 60_000 },
      logger: { warn: (m) => logged.push(m), error: (m) => logged.push(m) },
    })
    caches.push(cache)
    await cache.ready()
    return cache
  }

  errors('seed URLs: fragcache opens a Cluster of its own and closes every connection of it on close()', async () => {
    const cluster = redis.cluster as NonNullable<TestRedis['cluster']>
    const connected = async (): Promise<number[]> =>
      Promise.all(
        (await cluster.currentMasters()).map(async (master) => {
          const client = cluster.nodeClient(master)
          try {
            return Number(/connected_clients:(\d+)/.exec(await client.info('clients'))?.[1])
          } finally {
            client.disconnect()
          }
        }),
      )
    const before = await connected()
    const cache = createCache({ prefix: 'seeds', redis: redis.urls, logger: { warn: () => {}, error: () => {} } })
    await cache.ready()
    await cache.set('k', 'v')
    assert.is(await cache.get('k'), 'v')
    const open = await connected()
    const total = (counts: number[]): number => counts.reduce((a, b) => a + b, 0)
    // ioredis connects to a node when it first sends it something: not necessarily to every master.
    assert.ok(total(open) > total(before), `connections per master: ${before.join(', ')} before, ${open.join(', ')} open`)
    await cache.close()
    await eventually(async () => (await connected()).every((count, i) => count <= (before[i] as number)), 5000, 'every connection fragcache opened to be closed')
  })

  errors('reply errors (WRONGTYPE) are logged with their command, counted apart, and never open a breaker', async () => {
    const logged: string[] = []
    const cache = await open('reply', logged)
    const raw = redis.rawClient()
    await raw.hset(cache.keys.build('c', 'a-hash'), 'f', 'not an entry')
    for (let i = 0; i < 5; i++) assert.is(await cache.get('a-hash'), undefined)
    await cache.set('other', 'fine')
    const peer = await open('reply')
    assert.is(await peer.get('other'), 'fine', 'an unrelated key is still read from Redis')
    const { l2 } = cache.stats()
    assert.equal([l2.replyErrors, l2.outages, l2.down], [5, 0, false])
    assert.is(logged.length, 5)
    assert.match(logged[0] as string, /^fragcache: Redis refused get: WRONGTYPE Operation against a key holding the wrong kind of value \(a bug or a misconfiguration, not an outage\)$/)
  })

  errors('a dead master shuts only its slots: keys on the other masters are still read from Redis, nothing throws', async () => {
    const cluster = redis.cluster as NonNullable<TestRedis['cluster']>
    // Without replicas nobody takes the dead master's slots over; let the others serve theirs meanwhile.
    for (const master of await cluster.currentMasters()) {
      const client = cluster.nodeClient(master)
      await client.config('SET', 'cluster-require-full-coverage', 'no')
      client.disconnect()
    }
    const writer = await open('dead')
    const keys = Array.from({ length: 60 }, (_, i) => `k${i}`)
    for (const key of keys) await writer.set(key, `v ${key}`)
    const victim = await cluster.masterForKey(writer.keys.build('c', 'k0'))
    const onVictim = await Promise.all(keys.map(async (key) => (await cluster.masterForKey(writer.keys.build('c', key))).port === victim.port))
    const reader = await open('dead') // another process: its L1 is empty
    await cluster.kill(victim)
    // Enough reads of the dead master's keys to open its breaker several times over.
    for (let round = 0; round < 3; round++) for (const key of keys.filter((_, i) => onVictim[i])) assert.is(await reader.get(key), undefined)
    const got = await Promise.all(keys.map((key) => reader.get(key)))
    assert.equal(
      got,
      keys.map((key, i) => (onVictim[i] ? undefined : `v ${key}`)),
      'the other masters answer',
    )
    const many = await reader.getMany(keys)
    assert.equal([...many.keys()], keys.filter((_, i) => !onVictim[i]), 'getMany reads the live masters, per slot')
    const { l2 } = reader.stats()
    assert.equal([l2.outages, l2.down], [1, true], 'one outage (the dead master), reported as a partial one')
  })

  errors.run()
}
