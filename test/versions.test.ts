import { type Test, suite } from 'uvu'
import * as assert from 'uvu/assert'
import { InvalidArgumentError, type TieredCache, createCache, runInRequestScope } from '../src/index.ts'
import { startCacheProcess } from './support/cache-process.ts'
import { type RedisServer, eventually, patientRedis } from './support/redis-server.ts'
import { TOPOLOGIES, type TestRedis, startRedis } from './support/redis-topology.ts'

const quiet = { warn: () => {}, error: () => {} }
let prefixes = 0
const open: TieredCache[] = []

type Make = (options?: Parameters<typeof createCache>[0]) => Promise<TieredCache>

// One Redis per topology for the whole file, started once.
const redises: TestRedis[] = []
for (const topology of TOPOLOGIES) redises.push(await startRedis(topology))

const makers: [string, Make][] = [
  ['memory', async (options) => createCache({ logger: quiet, ...options })],
  ...redises.map((redis): [string, Make] => [
    `redis :: ${redis.topology}`,
    async (options) => {
      const cache = createCache({ prefix: `v${++prefixes}`, redis: redis.cacheRedisOption(), ...patientRedis, logger: quiet, ...options })
      open.push(cache)
      await cache.ready()
      return cache
    },
  ]),
]

for (const [name, make] of makers) {
  const test = suite(`Data versions :: ${name}`)

  test('bump invalidates every entry that depends on the tag', async () => {
    const cache = await make()
    let calls = 0
    const read = () => cache.getOrSet('article', () => `render ${++calls}`, { deps: ['article:42'] })
    assert.is(await read(), 'render 1')
    assert.is(await read(), 'render 1')
    await cache.versions.bump('article:42')
    assert.is(await read(), 'render 2')
    await cache.versions.bump('article:7') // unrelated
    assert.is(await read(), 'render 2')
  })

  test('get returns the current versions; an unknown tag gets its initial one; bump returns the new ones', async () => {
    const cache = await make()
    const first = await cache.versions.get(['a:1', 'b:2'])
    assert.equal(Object.keys(first), ['a:1', 'b:2'])
    assert.equal(await cache.versions.get(['a:1', 'b:2']), first, 'stable until bumped')
    const bumped = await cache.versions.bump('a:1', 'a:1', 'model')
    assert.equal(Object.keys(bumped), ['a:1', 'model'])
    assert.is(bumped['a:1'], (first['a:1'] as number) + 1)
    assert.equal(await cache.versions.get(['a:1']), { 'a:1': bumped['a:1'] })
  })

  test('nested getOrSet: an inner tag invalidates the outer entry; an unrelated tag does not', async () => {
    const cache = await make()
    const renders: string[] = []
    const teaser = (id: number) =>
      cache.getOrSet(`teaser:${id}`, () => (renders.push(`teaser ${id}`), `<li>${id}</li>`), { deps: [`article:${id}`] })
    const list = () =>
      cache.getOrSet('list', async () => {
        renders.push('list')
        return `<ul>${(await Promise.all([1, 2, 3].map(teaser))).join('')}</ul>`
      })
    assert.is(await list(), '<ul><li>1</li><li>2</li><li>3</li></ul>')
    assert.equal(renders.splice(0), ['list', 'teaser 1', 'teaser 2', 'teaser 3'])
    assert.is(await list(), '<ul><li>1</li><li>2</li><li>3</li></ul>')
    assert.equal(renders.splice(0), [])
    await cache.versions.bump('article:2')
    await list()
    assert.equal(renders.splice(0), ['list', 'teaser 2'], 'the list and the changed teaser only')
    await cache.versions.bump('article:99')
    await list()
    assert.equal(renders.splice(0), [])
  })

  test('a nested hit records its deps into the outer entry too', async () => {
    const cache = await make()
    await cache.getOrSet('inner', () => 'i', { deps: ['x:1'] }) // cached before the outer exists
    let outerCalls = 0
    const outer = () => cache.getOrSet('outer', async () => `${++outerCalls}${await cache.getOrSet('inner', () => 'i2', { deps: ['x:1'] })}`)
    assert.is(await outer(), '1i')
    await cache.versions.bump('x:1')
    assert.is(await outer(), '2i2')
  })

  test('versions.get inside a compute makes its tags dependencies', async () => {
    const cache = await make()
    let calls = 0
    const read = () =>
      cache.getOrSet('by-get', async () => {
        await cache.versions.get(['category:3'])
        return ++calls
      })
    assert.is(await read(), 1)
    assert.is(await read(), 1)
    await cache.versions.bump('category:3')
    assert.is(await read(), 2)
  })

  test('concurrent computes never mix their dependencies', async () => {
    const cache = await make()
    const tick = () => new Promise((r) => setImmediate(r))
    const build = (id: string) =>
      cache.getOrSet(`page:${id}`, async () => {
        await tick()
        await cache.getOrSet(`part:${id}`, () => id, { deps: [`t:${id}`] })
        await tick()
        return `page ${id}`
      })
    await Promise.all(['a', 'b', 'c'].map(build))
    let recomputed = 0
    const again = (id: string) => cache.getOrSet(`page:${id}`, () => (recomputed++, `new ${id}`))
    await cache.versions.bump('t:b')
    assert.equal(await Promise.all(['a', 'b', 'c'].map(again)), ['page a', 'new b', 'page c'])
    assert.is(recomputed, 1)
  })

  test('a bump during a compute leaves the new entry already out of date', async () => {
    const cache = await make()
    let calls = 0
    const value = await cache.getOrSet('racy', async () => {
      calls++
      await cache.versions.bump('r:1') // the data changed while we were rendering from the old data
      return 'rendered from old data'
    }, { deps: ['r:1'] })
    assert.is(value, 'rendered from old data')
    assert.is(await cache.getOrSet('racy', () => (calls++, 'fresh'), { deps: ['r:1'] }), 'fresh')
    assert.is(calls, 2)
  })

  test('one request judges every entry against one snapshot of versions, and sees its own bumps', async () => {
    const cache = await make()
    await runInRequestScope(async () => {
      let calls = 0
      const read = () => cache.getOrSet('snap', () => ++calls, { deps: ['s:1'] })
      assert.is(await read(), 1)
      await cache.versions.bump('s:1') // read-your-writes inside the request
      assert.is(await read(), 2)
    })
  })

  test('bad tags are rejected with the tag named', async () => {
    const cache = await make()
    for (const [call, where] of [
      [() => cache.versions.bump(''), 'versions.bump'],
      [() => cache.versions.get(['ok', 'not ok']), 'versions.get'],
      [() => cache.versions.bump(42 as unknown as string), 'versions.bump'],
    ] as const) {
      try {
        await call()
        assert.unreachable()
      } catch (err) {
        assert.instance(err, InvalidArgumentError)
        assert.match((err as Error).message, new RegExp(`^fragcache: ${where.replace('.', '\\.')}: a tag must be a non-empty string of at most 200 characters without whitespace; got `))
      }
    }
  })

  test.run()
}

for (const redis of redises) {
  const processes = suite(`Data versions :: across processes :: ${redis.topology}`)
  processes.after(async () => {
    for (const cache of open.splice(0)) await cache.close()
    await redis.stop()
  })
  acrossProcesses(processes, redis)
  if (redis.server !== undefined) singleServerOutages(processes, redis.server)
  processes.run()
}

/** What crosses OS processes, on either topology. */
function acrossProcesses(processes: Test, redis: TestRedis): void {
  processes('a bump in one OS process invalidates the entry in another once the bus delivers it', async () => {
    const prefix = `xp${++prefixes}`
    const child = await startCacheProcess(redis.topology === 'cluster' ? redis.urls : (redis.urls[0] as string), prefix)
    try {
      const cache = createCache({ prefix, redis: redis.cacheRedisOption(), ...patientRedis, logger: quiet })
      open.push(cache)
      await cache.ready()
      assert.is(await child.call({ op: 'getOrSet', key: 'body', value: 'v1', deps: ['article:1'] }), 'v1')
      assert.is(await child.call({ op: 'getOrSet', key: 'body', value: 'v2', deps: ['article:1'] }), 'v1', 'cached in the child')
      await cache.versions.bump('article:1')
      await eventually(
        async () => (await child.call({ op: 'getOrSet', key: 'body', value: 'v2', deps: ['article:1'] })) === 'v2',
        5000,
        'the child to see the bump',
      )
      // And the other way round: the child bumps, this process sees it.
      assert.is(await cache.getOrSet('list', () => 'l1', { deps: ['article'] }), 'l1')
      await child.call({ op: 'bump', tags: ['article'] })
      await eventually(async () => (await cache.getOrSet('list', () => 'l2', { deps: ['article'] })) === 'l2', 5000, 'this process to see the bump')
    } finally {
      await child.close()
    }
  })

  processes('a version key overwritten with garbage is replaced: the next bump succeeds, and entries are cached again', async () => {
    const logged: string[] = []
    const cache = createCache({ prefix: `heal${++prefixes}`, redis: redis.cacheRedisOption(), ...patientRedis, logger: { warn: () => {}, error: (m) => logged.push(m) } })
    open.push(cache)
    await cache.ready()
    let calls = 0
    const read = () => cache.getOrSet('healed', () => `render ${++calls}`, { deps: ['article:5', 'article:6'] })
    assert.is(await read(), 'render 1')
    const raw = redis.rawClient()
    const key5 = cache.keys.build('ver', 'article:5')
    const key6 = cache.keys.build('ver', 'article:6')
    try {
      await raw.set(key5, 'not a number')
      await raw.del(key6)
      await raw.hset(key6, 'f', 'a hash, not a version')
    } finally {
      raw.disconnect()
    }
    const bumped = await cache.versions.bump('article:5', 'article:6')
    assert.ok((bumped['article:5'] as number) > Date.now() * 100, 'replaced with a version larger than any it could have held')
    assert.is(cache.stats().l2.corrupt, 2)
    assert.equal(logged, [
      `fragcache: 2 version key(s) among ${key5}, ${key6} held what fragcache never writes; replaced with a version larger than any they held`,
    ])
    assert.is(await read(), 'render 2')
    assert.is(await read(), 'render 2', 'cached again')
  })
}

/** Outages of a single server (its bus or the whole server down): a Cluster's are in test/cluster/failover.test.ts. */
function singleServerOutages(processes: Test, server: RedisServer): void {
  processes('bus down: staleness is bounded by busDownTrustMs; after it, reads see new versions', async () => {
    const prefix = `bd${++prefixes}`
    const clock = { now: 1_800_000_000_000 }
    const reader = createCache({ prefix, redis: server.url, ...patientRedis, logger: quiet, clock: () => clock.now, busDownTrustMs: 1000 })
    const writer = createCache({ prefix, redis: server.url, ...patientRedis, logger: quiet, clock: () => clock.now })
    open.push(reader, writer)
    await Promise.all([reader.ready(), writer.ready()])
    const admin = server.client()
    let calls = 0
    const read = () => reader.getOrSet('page', () => `render ${++calls}`, { deps: ['article:5'] })
    try {
      assert.is(await read(), 'render 1')
      // Take the bus down while Redis stays up: forbid SUBSCRIBE, then drop the subscriber connections.
      await admin.call('ACL', 'SETUSER', 'default', '-subscribe')
      await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
      await eventually(() => !reader.stats().l2.busConnected, 5000, 'the reader to notice its bus is down')
      await writer.versions.bump('article:5')
      assert.is(await read(), 'render 1', 'within the trusted time the old version is still believed')
      clock.now += 1001
      assert.is(await read(), 'render 2', 'past it, the version is read again from Redis')
    } finally {
      await admin.call('ACL', 'SETUSER', 'default', '+subscribe')
      admin.disconnect()
    }
    await eventually(() => reader.stats().l2.busConnected, 10_000, 'the bus to reconnect')
  })

  processes('Redis down: no bump can succeed, so L1 is served as it is, and an entry computed meanwhile is kept; judged again once Redis is back', async () => {
    await server.restart()
    const clock = { now: 1_800_000_000_000 }
    const cache = createCache({
      prefix: `rd${++prefixes}`,
      redis: server.url,
      logger: quiet,
      clock: () => clock.now,
      busDownTrustMs: 1000,
      redisTimeoutMs: 50,
      redisBreaker: { threshold: 3, cooldownMs: 100 },
    })
    open.push(cache)
    await cache.ready()
    let calls = 0
    const read = (key: string) => cache.getOrSet(key, () => `render ${++calls}`, { deps: ['article:9'] })
    assert.is(await read('guarded'), 'render 1')
    await server.stop()
    await eventually(async () => {
      await cache.get('probe') // each failing call counts towards the breaker
      return cache.stats().l2.down
    }, 5000, 'the cache to see that Redis is down')
    clock.now += 60_000
    assert.is(await read('guarded'), 'render 1', 'long past busDownTrustMs: still served, since no bump can have happened')
    assert.is(await read('computed-during'), 'render 2')
    assert.is(await read('computed-during'), 'render 2', 'computed once during the outage, then kept in L1')
    await cache.versions.bump('article:9').then(
      () => assert.unreachable('a bump cannot succeed while Redis is down'),
      (error: Error) => assert.is(error.name, 'AtomicityError'),
    )
    await server.restart()
    await eventually(() => cache.stats().l2.busConnected, 10_000, 'the bus to reconnect')
    await eventually(async () => (await read('computed-during')) !== 'render 2', 10_000, 'the outage entry to be judged against Redis again')
    const fresh = `render ${calls}`
    assert.is(await read('computed-during'), fresh, 'and the fresh render is kept')
    await eventually(async () => {
      const raw = server.client()
      const stored = await raw.get(cache.keys.build('c', 'computed-during'))
      raw.disconnect()
      return stored?.endsWith(`\n${fresh}`) === true
    }, 5000, 'the fresh render to be stored in Redis, under real versions')
  })
}
