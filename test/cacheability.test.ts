import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { type CacheOptions, PrivateReadError, type TieredCache, createCache, markPrivate, runInRequestScope } from '../src/index.ts'
import { RedisServer, patientRedis } from './support/redis-server.ts'

const quiet = { warn: () => {}, error: () => {} }
const server = await RedisServer.start()
const open: TieredCache[] = []
let prefixes = 0

interface Made {
  cache: TieredCache
  clock: { now: number }
  /** Another process's cache on the same Redis (an empty L1), when there is Redis. */
  peer: TieredCache | undefined
}

const makers: [string, (options?: CacheOptions) => Promise<Made>][] = [
  ['memory', async (options = {}) => {
    const clock = { now: 1_700_000_000_000 }
    return { cache: createCache({ clock: () => clock.now, logger: quiet, ...options }), clock, peer: undefined }
  }],
  ['redis', async (options = {}) => {
    const clock = { now: 1_700_000_000_000 }
    const common = { prefix: `cb${++prefixes}`, redis: server.url, ...patientRedis, clock: () => clock.now, logger: quiet, ...options }
    const cache = createCache(common)
    const peer = createCache(common)
    open.push(cache, peer)
    await Promise.all([cache.ready(), peer.ready()])
    return { cache, clock, peer }
  }],
]

const USERS = { alice: { id: 'alice', name: 'Alice' }, bob: { id: 'bob', name: 'Bob' } } as const
type UserId = keyof typeof USERS

/** A request of `user` (null: a guest), with the user context declared and the user marked private. */
function asVisitor<T>(user: UserId | null, fn: (visitor: { name: string } | null) => Promise<T>): Promise<T> {
  const visitor = user === null ? null : markPrivate('user', { ...USERS[user] })
  return runInRequestScope(() => fn(visitor), { contexts: { user: () => user } })
}

for (const [name, make] of makers) {
  const test = suite(`cacheability :: ${name}`)

  test('expiry bubbles: an entry never outlives what it contains', async () => {
    const { cache, clock, peer } = await make()
    let inner = 0
    let outer = 0
    const page = (reader: TieredCache) =>
      reader.getOrSet('page', async () => `page ${++outer} [${await reader.getOrSet('weather', () => `weather ${++inner}`, { ttl: 60 })}]`, { ttl: 3600 })
    assert.is(await page(cache), 'page 1 [weather 1]')
    clock.now += 30_000
    assert.is(await page(cache), 'page 1 [weather 1]', 'both fresh')
    clock.now += 31_000 // 61 s: the weather expired, so did the page that shows it
    assert.is(await page(cache), 'page 2 [weather 2]')
    if (peer) {
      await cache.flush()
      assert.is(await page(peer), 'page 2 [weather 2]', 'stored with the shorter expiry in Redis too')
    }
  })

  test('variation bubbles: a shared entry around a per-user one is kept per user; Bob never sees Alice, a guest neither', async () => {
    const { cache, peer } = await make()
    let outer = 0
    let inner = 0
    const sidebar = (reader: TieredCache, visitor: { name: string } | null) =>
      reader.getOrSet('sidebar', async () => {
        outer += 1
        const greeting = await reader.getOrSet('greet', () => (inner++, `Hello ${visitor?.name ?? 'guest'}`), { vary: 'user' })
        return `<aside>${greeting}</aside>`
      })
    assert.is(await asVisitor('alice', (v) => sidebar(cache, v)), '<aside>Hello Alice</aside>')
    assert.is(await asVisitor('bob', (v) => sidebar(cache, v)), '<aside>Hello Bob</aside>')
    assert.is(await asVisitor(null, (v) => sidebar(cache, v)), '<aside>Hello guest</aside>')
    assert.is(await asVisitor('alice', (v) => sidebar(cache, v)), '<aside>Hello Alice</aside>')
    assert.equal([outer, inner], [3, 3], "Alice's second visit is a hit of her own variation")
    if (peer) {
      await cache.flush()
      assert.is(await asVisitor('bob', (v) => sidebar(peer, v)), '<aside>Hello Bob</aside>')
      assert.equal([outer, inner], [3, 3], 'another process follows the redirect to the same variations')
    }
  })

  test('variation: visitors arriving together share no compute that turns out to vary by them', async () => {
    const { cache } = await make()
    let outer = 0
    const sidebar = (visitor: { name: string } | null) =>
      cache.getOrSet('together', async () => {
        outer += 1
        await new Promise((r) => setTimeout(r, 5))
        return `<aside>${await cache.getOrSet('greet', () => `Hello ${visitor?.name ?? 'guest'}`, { vary: 'user' })}</aside>`
      })
    const served = await Promise.all([
      asVisitor('alice', sidebar),
      asVisitor('bob', sidebar),
      asVisitor('alice', sidebar),
      asVisitor(null, sidebar),
      asVisitor('bob', sidebar),
    ])
    assert.equal(served, ['<aside>Hello Alice</aside>', '<aside>Hello Bob</aside>', '<aside>Hello Alice</aside>', '<aside>Hello guest</aside>', '<aside>Hello Bob</aside>'])
    assert.ok(outer <= 3, `one compute per visitor at most (${outer})`)
  })

  test('private reads: an error naming what was read (development), not stored (bypass), or one entry per user (vary)', async () => {
    const errors = (await make({ privateReads: 'error' })).cache
    await asVisitor('alice', (v) => errors.getOrSet('menu', () => `Menu of ${v?.name}`)).then(
      () => assert.unreachable('a shared entry read the signed-in user'),
      (error: Error) => {
        assert.instance(error, PrivateReadError)
        assert.is(
          error.message,
          `fragcache: "${errors.keys.build('c', 'menu')}" read user.name, private to the "user" context, while it was computed for every visitor; vary it by that context (vary: ['user'], or vary="user" on a cache tag), or read the value outside the cached part`,
        )
      },
    )
    assert.is(await asVisitor('alice', (v) => errors.getOrSet('menu-ok', () => `Menu of ${v?.name}`, { vary: 'user' })), 'Menu of Alice', 'declared: fine')

    const bypass = (await make({ privateReads: 'bypass' })).cache
    let computes = 0
    const menu = (v: { name: string } | null) => bypass.getOrSet('menu', () => `Menu of ${v?.name} ${++computes}`)
    assert.is(await asVisitor('alice', menu), 'Menu of Alice 1')
    assert.is(await asVisitor('bob', menu), 'Menu of Bob 2', 'not stored, so never shared')

    const vary = (await make({ privateReads: 'vary' })).cache
    computes = 0
    const menu2 = (v: { name: string } | null) => vary.getOrSet('menu', () => `Menu of ${v?.name} ${++computes}`)
    assert.is(await asVisitor('alice', menu2), 'Menu of Alice 1')
    assert.is(await asVisitor('bob', menu2), 'Menu of Bob 2')
    assert.is(await asVisitor('alice', menu2), 'Menu of Alice 1', 'stored per user')
  })

  test.after(async () => {
    if (name !== 'redis') return
    for (const cache of open) await cache.close()
    await server.stop()
  })
  test.run()
}
