import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import {
  type CacheOptions,
  FragcacheError,
  InvalidArgumentError,
  KeyNotFoundError,
  NotAnIntegerError,
  type TieredCache,
  createCache,
  runInRequestScope,
} from '../src/index.ts'
import { patientRedis } from './support/redis-server.ts'
import { TOPOLOGIES, startRedis } from './support/redis-topology.ts'

/** A cache whose clock the test moves. */
interface Harness {
  cache: TieredCache
  clock: { now: number }
  /** The monotonic clock compute durations are measured with. */
  perf: { now: number }
  /** A second cache on the same store with an empty L1 (the Redis tier seen from another process), if any. */
  peer?: TieredCache
}

type MakeHarness = (options?: CacheOptions) => Promise<Harness>

let prefixes = 0
const quietLogger = { warn: () => {}, error: () => {} }

/**
 * The contract every configuration keeps: run once on a memory-only cache and once on a Redis-backed one.
 */
function contract(name: string, make: MakeHarness, after: () => Promise<void>): void {
  const test = suite(`TieredCache contract :: ${name}`)
  const open: Harness[] = []
  const harness: MakeHarness = async (options) => {
    const h = await make(options)
    open.push(h)
    return h
  }
  test.after(async () => {
    for (const h of open) {
      await h.cache.close()
      await h.peer?.close()
    }
    await after()
  })

  test('createCache is exported', () => {
    assert.type(createCache, 'function')
  })

  test('get :: miss is undefined, or the default', async () => {
    const { cache } = await harness()
    assert.is(await cache.get('absent'), undefined)
    assert.is(await cache.get('absent', 'fallback'), 'fallback')
  })

  test('set/get :: round-trips values of every JSON type', async () => {
    const { cache, peer } = await harness()
    const values: unknown[] = ['text', 42, -1.5, true, { a: [1, { b: 'c' }] }, ['x', null], 'ünïcødé 🚀', 'fc1|0|0|j|\n{"a"|\n', '5', '"quoted"']
    for (const [i, value] of values.entries()) {
      await cache.set(`k${i}`, value)
      assert.equal(await cache.get(`k${i}`), value)
      if (peer) assert.equal(await peer.get(`k${i}`), value)
    }
  })

  test('falsy values are hits in every tier and through every read (OEP-22)', async () => {
    const { cache, peer } = await harness()
    const falsy: unknown[] = [null, 0, '', false, [], {}]
    for (const [i, value] of falsy.entries()) {
      await cache.set(`f${i}`, value)
      assert.equal(await cache.get(`f${i}`, 'MISS'), value)
      let computed = 0
      assert.equal(await cache.getOrSet(`f${i}`, () => ++computed), value)
      assert.is(computed, 0, `getOrSet recomputed a stored ${JSON.stringify(value)}`)
      if (peer) {
        assert.equal(await peer.get(`f${i}`, 'MISS'), value)
        assert.equal(await peer.getOrSet(`f${i}`, () => ++computed), value)
        assert.is(computed, 0)
      }
    }
    const many = await cache.getMany(falsy.map((_, i) => `f${i}`))
    assert.equal([...many.values()], falsy)
    if (peer) assert.equal([...(await peer.getMany(falsy.map((_, i) => `f${i}`))).values()], falsy)
  })

  test('getOrSet :: computes once, then serves the stored value', async () => {
    const { cache } = await harness()
    let calls = 0
    assert.is(await cache.getOrSet('g', () => ++calls), 1)
    assert.is(await cache.getOrSet('g', () => ++calls), 1)
    assert.is(calls, 1)
  })

  test('getOrSet :: concurrent misses run compute once (single-flight)', async () => {
    const { cache } = await harness()
    let calls = 0
    let release: (v: string) => void = () => {}
    const gate = new Promise<string>((resolve) => (release = resolve))
    const readers = Array.from({ length: 20 }, () => cache.getOrSet('sf', () => (calls++, gate)))
    release('done')
    assert.equal(await Promise.all(readers), Array(20).fill('done'))
    assert.is(calls, 1)
  })

  test('getOrSet :: an error reaches every waiter and is never cached', async () => {
    const { cache } = await harness()
    let calls = 0
    const fail = async () => {
      calls++
      await Promise.resolve()
      throw new Error('upstream down')
    }
    const results = await Promise.allSettled([cache.getOrSet('err', fail), cache.getOrSet('err', fail)])
    assert.equal(
      results.map((r) => (r.status === 'rejected' ? (r.reason as Error).message : 'ok')),
      ['upstream down', 'upstream down'],
    )
    assert.is(calls, 1)
    assert.is(await cache.getOrSet('err', () => 'recovered'), 'recovered')
    assert.is(calls, 1)
  })

  test('getOrSet :: force recomputes and writes through', async () => {
    const { cache, peer } = await harness()
    await cache.getOrSet('fr', () => 'old')
    assert.is(await cache.getOrSet('fr', () => 'new', { force: true }), 'new')
    assert.is(await cache.get('fr'), 'new')
    if (peer) assert.is(await peer.get('fr'), 'new')
  })

  test('TTL :: expires by the injected clock; null never expires; 0 does not store', async () => {
    const { cache, clock } = await harness()
    await cache.set('short', 'v', 10)
    await cache.set('forever', 'v', null)
    await cache.set('zero', 'v', 0)
    assert.is(await cache.get('zero'), undefined)
    clock.now += 9_999
    assert.is(await cache.get('short'), 'v')
    clock.now += 1
    assert.is(await cache.get('short'), undefined)
    clock.now += 10 * 365 * 24 * 3600 * 1000
    assert.is(await cache.get('forever'), 'v')
    let calls = 0
    assert.is(await cache.getOrSet('nostore', () => ++calls, { ttl: 0 }), 1)
    assert.is(await cache.getOrSet('nostore', () => ++calls, { ttl: -5 }), 2)
  })

  test('TTL :: the default applies, and set with ttl 0 removes what was there', async () => {
    const { cache, clock } = await harness({ ttl: 60 })
    await cache.set('d', 1)
    clock.now += 59_000
    assert.is(await cache.get('d'), 1)
    clock.now += 1_000
    assert.is(await cache.get('d'), undefined)
    await cache.set('gone', 1, 100)
    await cache.set('gone', 2, 0)
    assert.is(await cache.get('gone'), undefined)
  })

  test('add :: stores only when absent', async () => {
    const { cache, clock } = await harness()
    assert.is(await cache.add('a', 1, 10), true)
    assert.is(await cache.add('a', 2, 10), false)
    assert.is(await cache.get('a'), 1)
    clock.now += 10_000
    if (name === 'memory') assert.is(await cache.add('a', 3, 10), true)
  })

  test('incr/decr :: atomic counters keep their expiry; Django errors', async () => {
    const { cache, clock } = await harness()
    await cache.set('n', 5, 100)
    assert.is(await cache.incr('n'), 6)
    assert.is(await cache.incr('n', 10), 16)
    assert.is(await cache.decr('n', 20), -4)
    assert.is(await cache.get('n'), -4)
    try {
      await cache.incr('missing')
      assert.unreachable('incr of a missing key must throw')
    } catch (err) {
      assert.instance(err, KeyNotFoundError)
      assert.is((err as Error).message, 'fragcache: cannot increment "missing": no value is stored under it (add() it first)')
    }
    await cache.set('word', '5') // a string that looks like a number is still a string
    try {
      await cache.incr('word')
      assert.unreachable('incr of a string must throw')
    } catch (err) {
      assert.instance(err, NotAnIntegerError)
      assert.is((err as FragcacheError).code, 'FRAGCACHE_NOT_AN_INTEGER')
    }
    try {
      await cache.incr('n', 1.5)
      assert.unreachable()
    } catch (err) {
      assert.is((err as Error).message, 'fragcache: incr("n"): by must be an integer; got 1.5')
    }
    clock.now += 100_000
    assert.is(await cache.get('n'), undefined, 'incr kept the original expiry')
  })

  test('touch :: gives a new expiry, true only when a value was there', async () => {
    const { cache, clock, peer } = await harness()
    await cache.set('t', 'v', 10)
    clock.now += 9_000
    assert.is(await cache.touch('t', 60), true)
    clock.now += 30_000
    assert.is(await cache.get('t'), 'v')
    if (peer) assert.is(await peer.get('t'), 'v')
    assert.is(await cache.touch('nothing', 60), false)
  })

  test('delete/deleteMany :: remove from every tier', async () => {
    const { cache, peer } = await harness()
    await cache.setMany({ a: 1, b: 2, c: 3 })
    assert.is(await cache.delete('a'), true)
    assert.is(await cache.delete('a'), false)
    assert.is(await cache.deleteMany(['b', 'c', 'zz']), 2)
    assert.equal(await cache.getMany(['a', 'b', 'c']), new Map())
    if (peer) assert.equal(await peer.getMany(['a', 'b', 'c']), new Map())
  })

  test('getMany/setMany :: maps of hits only, entries or objects in', async () => {
    const { cache } = await harness()
    await cache.setMany([
      ['x', 1],
      ['y', 'two'],
    ])
    await cache.setMany({ z: false }, 30)
    assert.equal(await cache.getMany(['x', 'y', 'z', 'none']), new Map<string, unknown>([['x', 1], ['y', 'two'], ['z', false]]))
  })

  test('setMany :: checks every value before storing any', async () => {
    const { cache } = await harness()
    try {
      await cache.setMany({ good: 1, bad: () => 1 })
      assert.unreachable()
    } catch (err) {
      assert.instance(err, InvalidArgumentError)
      assert.match((err as Error).message, /fragcache: the value for "[^"]+:bad" is not JSON-serializable: a function has no JSON form/)
    }
    assert.is(await cache.get('good'), undefined)
  })

  test('values :: a caller cannot change what the next caller gets', async () => {
    const { cache } = await harness()
    const original = { list: [1, 2], nested: { n: 1 } }
    await cache.set('obj', original)
    original.list.push(3) // the caller keeps ownership of what it passed in
    const first = await cache.get<{ list: number[]; nested: { n: number } }>('obj')
    assert.equal(first, { list: [1, 2], nested: { n: 1 } })
    assert.throws(() => first!.list.push(4), TypeError)
    assert.throws(() => {
      first!.nested.n = 2
    }, TypeError)
    assert.equal(await cache.get('obj'), { list: [1, 2], nested: { n: 1 } })
    const computed = await cache.getOrSet('obj2', () => ({ a: [1] }))
    assert.ok(Object.isFrozen(computed.a), 'a computed value comes back frozen too')
  })

  test('bad input :: clear errors before anything reaches a tier', async () => {
    const { cache } = await harness()
    const cases: [() => Promise<unknown>, RegExp][] = [
      [() => cache.set('u', undefined), /^fragcache: cannot store undefined under "[^"]+:u"; store null to cache "nothing"$/],
      [() => cache.set('d', { when: new Date(0) }), /not JSON-serializable at property "when": an object \(Date\) would not come back/],
      [() => cache.set('nan', Number.NaN), /not JSON-serializable: NaN has no JSON form/],
      [() => cache.set('big', 10n), /not JSON-serializable: 10 has no JSON form/],
      [() => cache.set('m', new Map()), /an object \(Map\) would not come back as the same thing/],
      [() => cache.set('ttl', 1, '10' as unknown as number), /^fragcache: set: ttl must be a number of seconds or null; got "10"$/],
      [() => cache.set('ttl', 1, Number.POSITIVE_INFINITY), /^fragcache: set: ttl must be a number of seconds or null; got Infinity$/],
      [() => cache.get(''), /^fragcache: a key must be a non-empty string; got ""$/],
      [() => cache.set(7 as unknown as string, 1), /^fragcache: a key must be a non-empty string; got 7$/],
      [() => cache.getOrSet('c', 'value' as unknown as () => string), /^fragcache: getOrSet\("c"\) needs a function/],
      [() => cache.getOrSet('u2', () => undefined), /returned undefined; return null to cache "nothing"$/],
      [() => cache.getOrSet('dep', () => 1, { deps: ['has space'] }), /a tag must be a non-empty string of at most 200 characters without whitespace; got "has space"/],
    ]
    for (const [call, message] of cases) {
      try {
        await call()
        assert.unreachable(`expected ${message}`)
      } catch (err) {
        assert.instance(err, InvalidArgumentError)
        assert.match((err as Error).message, message)
      }
    }
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    try {
      await cache.set('cyc', cyclic)
      assert.unreachable()
    } catch (err) {
      assert.match((err as Error).message, /is not JSON-serializable: Converting circular structure to JSON/)
    }
  })

  test('request scope :: repeated reads cost one tier lookup', async () => {
    const { cache } = await harness()
    await cache.set('r', 'v')
    const before = cache.stats()
    await runInRequestScope(async () => {
      for (let i = 0; i < 5; i++) assert.is(await cache.get('r'), 'v')
    })
    const after = cache.stats()
    assert.is(after.l1.hits - before.l1.hits, 1)
    assert.is(after.request.hits - before.request.hits, 4)
  })

  test('request scope :: forceRefresh recomputes each key once and writes through', async () => {
    const { cache, peer } = await harness()
    await cache.set('page', 'stale')
    let calls = 0
    const value = await runInRequestScope(
      async () => {
        const a = await cache.getOrSet('page', () => `fresh${++calls}`)
        const b = await cache.getOrSet('page', () => `fresh${++calls}`)
        return [a, b]
      },
      { forceRefresh: true },
    )
    assert.equal(value, ['fresh1', 'fresh1'])
    assert.is(calls, 1)
    assert.is(await cache.get('page'), 'fresh1')
    if (peer) assert.is(await peer.get('page'), 'fresh1')
  })

  test('early refresh :: a hot entry near expiry is recomputed in the background', async () => {
    let random = 0.5
    const { cache, clock, perf } = await harness({ random: () => random, earlyRefresh: 1 })
    let calls = 0
    const slow = async () => {
      calls++
      await Promise.resolve()
      perf.now += 5 // a compute that takes 5 ms
      return `v${calls}`
    }
    assert.is(await cache.getOrSet('hot', slow, { ttl: 10 }), 'v1')
    await cache.flush() // its write (and, with Redis, its lock's release) has landed
    clock.now += 5_000
    assert.is(await cache.getOrSet('hot', slow, { ttl: 10 }), 'v1', 'far from expiry: no refresh')
    assert.is(calls, 1)
    clock.now += 4_999
    random = 1e-300 // -ln(random) is huge: the refresh is due now
    assert.is(await cache.getOrSet('hot', slow, { ttl: 10 }), 'v1', 'the stale-but-live value is served at once')
    random = 0.5
    await cache.flush()
    assert.is(calls, 2)
    assert.is(await cache.get('hot'), 'v2')
    assert.is(cache.stats().earlyRefreshes, 1)
  })

  test('getOrSet :: store decides whether a computed value is kept; a refused one comes back as computed', async () => {
    const { cache } = await harness()
    const secret = { private: true, at: new Date(0) } // not even JSON-safe: it is never stored, so never checked
    assert.is(await cache.getOrSetByKey(cache.keys.build('c', 'p'), () => secret, { store: () => false }), secret)
    assert.is(await cache.get('p'), undefined)
    assert.is(cache.stats().computeErrors, 0)
    assert.is(await cache.getOrSet('q', () => 'public', { store: (v) => v === 'public' }), 'public')
    assert.is(await cache.get('q'), 'public')
  })

  test('getOrSet :: earlyRefresh false never recomputes in the background', async () => {
    const { cache, clock, perf } = await harness({ random: () => 1e-300 })
    let calls = 0
    const slow = async () => {
      calls++
      await Promise.resolve()
      perf.now += 2
      return calls
    }
    await cache.getOrSet('no-early', slow, { ttl: 10, earlyRefresh: false })
    clock.now += 9_000
    assert.is(await cache.getOrSet('no-early', slow, { ttl: 10, earlyRefresh: false }), 1)
    await cache.flush()
    assert.is(calls, 1)
    assert.is(cache.stats().earlyRefreshes, 0)
    assert.is(cache.now(), clock.now, 'now() reads the injected clock')
  })

  test('clock :: every operation judges expiry by the injected clock, whatever the tier', async () => {
    const { cache, clock, peer } = await harness()
    await cache.set('n', 5, 10)
    await cache.set('t', 'x', 10)
    clock.now += 10_000 // past both expiries by the cache's clock; Redis (real time) still holds them
    for (const reader of peer ? [cache, peer] : [cache]) {
      assert.is(await reader.get('n'), undefined, 'get: missing')
      assert.equal(await reader.getMany(['n', 't']), new Map())
    }
    await cache.incr('n').then(
      () => assert.unreachable('incr of an expired value'),
      (error: Error) => assert.instance(error, KeyNotFoundError),
    )
    assert.is(await cache.touch('t', 60), false, 'touch does not bring it back')
    assert.is(await cache.get('t'), undefined)
    assert.is(await cache.add('n', 1, 60), true, 'add: there is nothing there')
    assert.is(await cache.get('n'), 1)
    if (peer) assert.is(await peer.get('n'), 1)
  })

  test('clear :: removes this prefix only', async () => {
    const { cache, peer } = await harness()
    await cache.set('c1', 1)
    await cache.clear()
    assert.is(await cache.get('c1'), undefined)
    if (peer) assert.is(await peer.get('c1'), undefined)
  })

  test('options :: validated with exact messages', () => {
    const bad: [CacheOptions, string][] = [
      [{ tll: 5 } as unknown as CacheOptions, 'fragcache: unknown option "tll"; known options are prefix, version, ttl, l1, redis, redisTimeoutMs, connectTimeoutMs, redisBreaker, busDownTrustMs, busHeartbeatMs, ackTimeoutMs, grace, softTimeoutMs, lock, privateReads, earlyRefresh, clock, perf, random, logger'],
      [{ ttl: 'x' as unknown as number }, 'fragcache: options: ttl must be a number of seconds or null; got "x"'],
      [{ redisTimeoutMs: 0 }, 'fragcache: redisTimeoutMs must be a positive number; got 0'],
      [{ l1: { max: 1.5 } }, 'fragcache: l1.max must be a positive integer; got 1.5'],
      [{ prefix: 'a b' }, 'fragcache: prefix must be 1 to 64 characters of letters, digits, "_", "." or "-"; got "a b"'],
      [{ redis: 42 as unknown as string }, 'fragcache: redis must be a redis:// URL, a list of Redis Cluster seed URLs or an ioredis Redis or Cluster instance; got 42'],
      [{ redis: [] }, 'fragcache: redis: a list of Cluster seed URLs must not be empty'],
      [{ redis: ['redis://127.0.0.1:7000', 7001 as unknown as string] }, 'fragcache: redis: seed 1 must be a redis:// or rediss:// URL with a host (not a string); got 7001'],
      [{ redis: ['127.0.0.1 7000'] }, 'fragcache: redis: seed 0 must be a redis:// or rediss:// URL with a host (not a URL); got "127.0.0.1 7000"'],
      [{ redis: ['http://h:7000'] }, 'fragcache: redis: seed 0 must be a redis:// or rediss:// URL with a host (scheme http:); got "http://h:7000"'],
      [{ redis: ['redis://h:7000/2'] }, 'fragcache: redis: seed 0 names database 2; a Redis Cluster has only database 0; got "redis://h:7000/2"'],
      [{ redis: ['redis://h:7000', 'rediss://h:7001'] }, 'fragcache: redis: seed 1 (rediss://h:7001) differs from seed 0 in its scheme or credentials; every node of a Cluster is opened the same way'],
    ]
    for (const [options, message] of bad) {
      try {
        createCache(options)
        assert.unreachable(message)
      } catch (err) {
        assert.instance(err, InvalidArgumentError)
        assert.is((err as Error).message, message)
      }
    }
  })

  test('L1 :: bounded by entry count and by bytes, least recently used first', async () => {
    const byCount = await harness({ l1: { max: 3 } })
    for (const key of ['a', 'b', 'c']) await byCount.cache.set(key, key)
    await byCount.cache.get('a') // a is now the most recently used
    await byCount.cache.set('d', 'd')
    assert.is(byCount.cache.stats().l1.entries, 3)
    const before = byCount.cache.stats().l1.hits
    assert.is(await byCount.cache.get('a'), 'a')
    assert.is(byCount.cache.stats().l1.hits - before, 1, 'a stayed in L1')
    const hitsBeforeB = byCount.cache.stats().l1.hits
    await byCount.cache.get('b')
    assert.is(byCount.cache.stats().l1.hits, hitsBeforeB, 'b was evicted from L1 (it may still be in Redis)')

    const bySize = await harness({ l1: { maxBytes: 10_000 } })
    for (let i = 0; i < 10; i++) await bySize.cache.set(`big${i}`, 'x'.repeat(2_000))
    const { entries, bytes } = bySize.cache.stats().l1
    assert.ok(bytes <= 10_000, `${bytes} bytes held`)
    assert.ok(entries < 10 && entries >= 4, `${entries} entries held`)
  })

  test('stats :: hits and misses per tier, computes', async () => {
    const { cache } = await harness()
    await cache.getOrSet('s', () => 1)
    await cache.getOrSet('s', () => 1)
    const stats = cache.stats()
    assert.is(stats.computes, 1)
    assert.is(stats.l1.hits, 1)
    assert.ok(stats.l1.misses >= 1)
    assert.is(stats.l1.entries, 1)
    assert.ok(stats.l1.bytes > 0)
  })

  test.run()
}

contract(
  'memory',
  async (options) => {
    const clock = { now: 1_700_000_000_000 }
    const perf = { now: 0 }
    return { cache: createCache({ clock: () => clock.now, perf: { now: () => perf.now }, logger: quietLogger, ...options }), clock, perf }
  },
  async () => {},
)

for (const topology of TOPOLOGIES) {
  const redis = await startRedis(topology)
  contract(
    `redis :: ${topology}`,
    async (options) => {
      const clock = { now: 1_700_000_000_000 }
      const perf = { now: 0 }
      const common = {
        prefix: `t${++prefixes}`,
        ...patientRedis, // outages are tested elsewhere
        clock: () => clock.now,
        perf: { now: () => perf.now },
        logger: quietLogger,
        ...options,
      }
      const cache = createCache({ redis: redis.cacheRedisOption(), ...common })
      // The peer plays another process: same Redis and prefix, its own (empty) L1. On a Cluster it opens its own
      // client from the seed URLs, so both ways of giving a Cluster are under the contract.
      const peer = createCache({ redis: topology === 'cluster' ? redis.urls : redis.cacheRedisOption(), ...common })
      await Promise.all([cache.ready(), peer.ready()])
      return { cache, clock, perf, peer }
    },
    () => redis.stop(),
  )
}
