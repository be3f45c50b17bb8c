import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { type CacheOptions, type TieredCache, createCache } from '../src/index.ts'
import { RedisServer, patientRedis } from './support/redis-server.ts'

const quiet = { warn: () => {}, error: () => {} }
const server = await RedisServer.start()
const open: TieredCache[] = []
let prefixes = 0

/** A promise the test settles when it wants: a compute that takes as long as the test says. */
function gate<T>() {
  let open: (value: T) => void = () => {}
  let fail: (error: unknown) => void = () => {}
  const promise = new Promise<T>((resolve, reject) => ((open = resolve), (fail = reject)))
  return { promise, open, fail }
}

const makers: [string, (options: CacheOptions) => Promise<{ cache: TieredCache; clock: { now: number } }>][] = [
  ['memory', async (options) => {
    const clock = { now: 1_700_000_000_000 }
    return { cache: createCache({ clock: () => clock.now, logger: quiet, ...options }), clock }
  }],
  ['redis', async (options) => {
    const clock = { now: 1_700_000_000_000 }
    const cache = createCache({ prefix: `g${++prefixes}`, redis: server.url, ...patientRedis, clock: () => clock.now, logger: quiet, ...options })
    open.push(cache)
    await cache.ready()
    return { cache, clock }
  }],
]

for (const [name, make] of makers) {
  const test = suite(`grace :: ${name}`)

  test('a failing recompute serves the stale value within grace, and throws after it', async () => {
    const { cache, clock } = await make({ grace: 60 })
    let fail = false
    let calls = 0
    const read = () => cache.getOrSet('weather', () => {
      calls++
      if (fail) throw new Error('upstream down')
      return `sunny ${calls}`
    }, { ttl: 10 })
    assert.is(await read(), 'sunny 1')
    clock.now += 10_000 // expired, within grace
    fail = true
    assert.is(await read(), 'sunny 1', 'the stale value, since the recompute failed')
    assert.is(calls, 2)
    assert.equal([cache.stats().staleServes, cache.stats().staleOnError], [1, 1])
    clock.now += 60_000 // past grace
    await read().then(
      () => assert.unreachable('past grace the error must reach the caller'),
      (error: Error) => assert.is(error.message, 'upstream down'),
    )
    fail = false
    assert.is(await read(), 'sunny 4')
  })

  test('a bumped dep is never served as stale, grace or not', async () => {
    const { cache, clock } = await make({ grace: 60 })
    let fail = false
    const read = () => cache.getOrSet('article', () => {
      if (fail) throw new Error('database down')
      return 'old title'
    }, { ttl: 10, deps: ['article:1'] })
    assert.is(await read(), 'old title')
    clock.now += 10_000
    await cache.versions.bump('article:1')
    fail = true
    await read().then(
      () => assert.unreachable('the stale value depends on a bumped version'),
      (error: Error) => assert.is(error.message, 'database down'),
    )
    assert.is(cache.stats().staleServes, 0)
  })

  test('a recompute slower than softTimeoutMs serves the stale value now, and stores the fresh one when it lands', async () => {
    const { cache, clock } = await make({ grace: 60, softTimeoutMs: 20 })
    assert.is(await cache.getOrSet('slow', () => 'v1', { ttl: 10 }), 'v1')
    clock.now += 10_000
    const compute = gate<string>()
    let finished = false
    // Resolves while the compute is still running: the answer did not wait for it.
    assert.is(await cache.getOrSet('slow', () => compute.promise.finally(() => (finished = true)), { ttl: 10 }), 'v1')
    assert.is(finished, false)
    compute.open('v2')
    await cache.flush()
    assert.is(await cache.getOrSet('slow', () => 'v3', { ttl: 10 }), 'v2', 'the fresh value, stored when it landed')
  })

  test('while one caller recomputes a stale entry, every other caller is served the stale value at once', async () => {
    const { cache, clock } = await make({ grace: 60 })
    assert.is(await cache.getOrSet('hot', () => 'v1', { ttl: 10 }), 'v1')
    clock.now += 10_000
    const compute = gate<string>()
    let calls = 0
    const recompute = () => (calls++, compute.promise)
    const first = cache.getOrSet('hot', recompute, { ttl: 10 })
    const others = await Promise.all(Array.from({ length: 10 }, () => cache.getOrSet('hot', recompute, { ttl: 10 })))
    assert.equal(others, Array(10).fill('v1'))
    compute.open('v2')
    assert.is(await first, 'v2', 'the caller that recomputed gets the fresh value')
    assert.is(calls, 1)
  })

  test('without grace an expired entry is gone: the caller waits for the recompute, and its error', async () => {
    const { cache, clock } = await make({})
    assert.is(await cache.getOrSet('plain', () => 'v1', { ttl: 10 }), 'v1')
    clock.now += 10_000
    await cache.getOrSet('plain', () => Promise.reject(new Error('boom')), { ttl: 10 }).then(
      () => assert.unreachable('no stale value to fall back on'),
      (error: Error) => assert.is(error.message, 'boom'),
    )
  })

  test('options :: grace, softTimeoutMs and lock are checked', async () => {
    const bad: [CacheOptions, string][] = [
      [{ grace: -1 }, 'fragcache: options: grace must be a number of seconds of at least 0; got -1'],
      [{ softTimeoutMs: Number.NaN }, 'fragcache: softTimeoutMs must be a number of at least 0; got NaN'],
      [{ lock: { ttlMs: 0 } }, 'fragcache: options: lock.ttlMs must be a number of milliseconds of at least 1; got 0'],
      [{ lock: { wait: 1 } as never }, 'fragcache: options: unknown lock option "wait"; known options are ttlMs, waitMs'],
      [{ lock: true as never }, 'fragcache: options: lock must be false or { ttlMs, waitMs }; got true'],
    ]
    for (const [options, message] of bad) {
      try {
        createCache(options)
        assert.unreachable(`should have thrown: ${message}`)
      } catch (error) {
        assert.is((error as Error).message, message)
      }
    }
    const { cache } = await make({})
    await cache.getOrSet('k', () => 1, { grace: -5 }).then(
      () => assert.unreachable('a bad grace must be refused'),
      (error: Error) => assert.is(error.message, 'fragcache: getOrSet: grace must be a number of seconds of at least 0; got -5'),
    )
  })

  test.after(async () => {
    if (name !== 'redis') return
    for (const cache of open) await cache.close()
    await server.stop()
  })
  test.run()
}
