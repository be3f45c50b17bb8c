import { Cluster } from 'ioredis'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { type TieredCache, createCache } from '../../src/index.ts'
import { patientRedis } from '../support/redis-server.ts'
import { TOPOLOGIES, startRedis, topologiesFrom } from '../support/redis-topology.ts'

const quietLogger = { warn: () => {}, error: () => {} }

const parsing = suite('topologiesFrom')

parsing('topologiesFrom is exported', () => {
  assert.type(topologiesFrom, 'function')
})

parsing('both by default; one when named; a typo is an error', () => {
  assert.equal(topologiesFrom(undefined), ['single', 'cluster'])
  assert.equal(topologiesFrom(''), ['single', 'cluster'])
  assert.equal(topologiesFrom('both'), ['single', 'cluster'])
  assert.equal(topologiesFrom('single'), ['single'])
  assert.equal(topologiesFrom(' cluster '), ['cluster'])
  assert.throws(() => topologiesFrom('clsuter'), /FRAGCACHE_TEST_TOPOLOGY must be single, cluster or both; got "clsuter"/)
})

parsing.run()

for (const topology of TOPOLOGIES) {
  const test = suite(`startRedis :: ${topology}`)
  const redis = await startRedis(topology)
  const caches: TieredCache[] = []
  let prefixes = 0
  const make = (): TieredCache => {
    const cache = createCache({ redis: redis.cacheRedisOption(), prefix: `topo${++prefixes}`, ...patientRedis, logger: quietLogger })
    caches.push(cache)
    return cache
  }
  test.after(async () => {
    for (const cache of caches.splice(0)) await cache.close()
    await redis.stop()
  })

  test('hands createCache a URL (single) or a Cluster client (cluster)', () => {
    const option = redis.cacheRedisOption()
    if (topology === 'single') assert.is(option, redis.urls[0])
    else assert.ok(option instanceof Cluster)
    assert.is(redis.topology, topology)
    assert.is(redis.urls.length, topology === 'single' ? 1 : 3)
    assert.is(redis.server === undefined, topology === 'cluster')
    assert.is(redis.cluster === undefined, topology === 'single')
  })

  test('a value set by one cache is read by another through Redis, and seen by the raw client', async () => {
    const writer = make()
    const reader = createCache({ redis: redis.cacheRedisOption(), prefix: `topo${prefixes}`, ...patientRedis, logger: quietLogger })
    caches.push(reader)
    await Promise.all([writer.ready(), reader.ready()])
    await writer.set('greeting', 'hello')
    assert.is(await reader.get('greeting'), 'hello')
    assert.is(reader.stats().l2.hits, 1)
    const raw = redis.rawClient()
    assert.is(await raw.exists(writer.keys.build('c', 'greeting')), 1)
  })

  test('flush :: every key is gone', async () => {
    const cache = make()
    await cache.ready()
    const raw = redis.rawClient()
    await Promise.all(Array.from({ length: 50 }, (_, i) => raw.set(`flush:${i}`, 'x')))
    await redis.flush()
    const left = await Promise.all(Array.from({ length: 50 }, (_, i) => raw.exists(`flush:${i}`)))
    assert.equal(left, new Array<number>(50).fill(0))
  })

  test.run()
}
