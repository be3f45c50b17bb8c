import { Redis } from 'ioredis'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { AtomicityError, type TieredCache, createCache } from '../../src/index.ts'
import { RedisServer, eventually, patientRedis } from '../support/redis-server.ts'

const server = await RedisServer.start()
const logged: string[] = []
const logger = { warn: (m: string) => logged.push(`warn: ${m}`), error: (m: string) => logged.push(`error: ${m}`) }
let prefixes = 0
const open: TieredCache[] = []

function make(extra: Parameters<typeof createCache>[0] = {}): TieredCache {
  const cache = createCache({
    prefix: `r${++prefixes}`,
    redis: server.url,
    ...patientRedis,
    redisBreaker: { threshold: 1, cooldownMs: 100 },
    logger,
    ...extra,
  })
  open.push(cache)
  return cache
}

/** Each suite ends with every cache closed and the server stopped; the next one restarts it. */
async function closeAll(): Promise<void> {
  for (const cache of open.splice(0)) await cache.close()
  await server.stop()
}
const clearLog = (): void => {
  logged.length = 0
}

const tier = suite('Redis tier')
tier.after(closeAll)
tier.before.each(clearLog)

tier('a hit in Redis back-fills L1 with the remaining TTL, never a fresh one', async () => {
  const clock = { now: 1_700_000_000_000 }
  const writer = make({ clock: () => clock.now })
  await writer.ready()
  await writer.set('bf', 'v', 100)
  clock.now += 90_000
  const reader = createCache({ prefix: `r${prefixes}`, redis: server.url, ...patientRedis, clock: () => clock.now, logger })
  open.push(reader)
  await reader.ready()
  assert.is(await reader.get('bf'), 'v')
  assert.is(reader.stats().l2.hits, 1)
  clock.now += 9_999
  assert.is(await reader.get('bf'), 'v')
  assert.is(reader.stats().l1.hits, 1, 'the second read came from L1')
  clock.now += 1
  assert.is(await reader.get('bf'), undefined, 'the back-filled copy expired with the original')
})

tier('Redis holds the TTL too (PX), so the key does not outlive the entry', async () => {
  const cache = make()
  await cache.ready()
  await cache.set('px', 'v', 30)
  const raw = server.client()
  const ttl = await raw.pttl(cache.keys.build('c', 'px'))
  raw.disconnect()
  assert.ok(ttl > 29_000 && ttl <= 30_000, `pttl ${ttl}`)
})

tier('clear() removes this prefix only; another prefix on the same Redis is untouched', async () => {
  const a = make({ prefix: 'site' })
  const b = make({ prefix: 'site2' })
  const aSibling = make({ prefix: 'site', version: 2 })
  await Promise.all([a.ready(), b.ready(), aSibling.ready()])
  for (let i = 0; i < 2500; i++) await a.set(`k${i}`, i) // more than one SCAN page
  await b.set('keep', 'me')
  await aSibling.set('v2', 'too')
  await a.clear()
  assert.is(await a.get('k1'), undefined)
  assert.is(await a.get('k2499'), undefined)
  // aSibling plays another process: its L1 copy goes when the bus delivers the clear.
  await eventually(async () => (await aSibling.get('v2')) === undefined, 2000, 'every version of the prefix to go')
  assert.is(await b.get('keep'), 'me')
  const raw = server.client()
  assert.equal(await raw.keys('site:*'), [])
  assert.equal(await raw.keys('site2:*'), ['site2:1:c:keep'])
  raw.disconnect()
})

tier('a value fragcache did not write is a miss, counted and logged, never an exception', async () => {
  const cache = make()
  await cache.ready()
  const raw = server.client()
  await raw.set(cache.keys.build('c', 'foreign'), 'hello from another app')
  await raw.set(cache.keys.build('c', 'broken'), 'fc2|0|0|0|j|9||\n{not json')
  // An envelope of an earlier fragcache version is a miss after an upgrade, not corruption: neither counted nor logged.
  await raw.set(cache.keys.build('c', 'older'), 'fc1|0|0|s|\nhello')
  raw.disconnect()
  assert.is(await cache.get('foreign'), undefined)
  assert.is(await cache.getOrSet('broken', () => 'recomputed'), 'recomputed')
  assert.is(await cache.get('older'), undefined)
  assert.is(cache.stats().l2.corrupt, 2)
  assert.equal(logged, [
    `error: fragcache: the value under "${cache.keys.build('c', 'foreign')}" in Redis was not written by fragcache; treated as a miss`,
    `error: fragcache: the value under "${cache.keys.build('c', 'broken')}" in Redis was not written by fragcache; treated as a miss`,
  ])
  assert.is(await cache.get('broken'), 'recomputed')
})

tier('a write in one process drops the other processes\' L1 copy (bus)', async () => {
  const a = make({ prefix: 'bus' })
  const b = make({ prefix: 'bus' })
  await Promise.all([a.ready(), b.ready()])
  await a.set('shared', 'one')
  assert.is(await b.get('shared'), 'one') // now in b's L1
  await a.set('shared', 'two')
  await eventually(async () => (await b.get('shared')) === 'two', 2000, 'b to see the new value')
  await a.delete('shared')
  await eventually(async () => (await b.get('shared')) === undefined, 2000, 'b to see the delete')
  await a.set('n', 1)
  assert.is(await b.get('n'), 1)
  await a.incr('n')
  await eventually(async () => (await b.get('n')) === 2, 2000, 'b to see the increment')
})

tier('close() leaves a client that was passed in open', async () => {
  const client = new Redis(server.port, '127.0.0.1')
  const cache = createCache({ prefix: 'own', redis: client, logger })
  await cache.ready()
  await cache.set('x', 1)
  await cache.close()
  assert.is(await client.ping(), 'PONG')
  client.disconnect()
})

tier.run()

const outage = suite('Redis outage')
outage.after(closeAll)
outage.before.each(clearLog)

outage('Redis stopped mid-test: reads miss quickly, writes do not throw, L1 keeps serving; then it recovers', async () => {
  await server.restart()
  const cache = make({ redisTimeoutMs: 50 })
  await cache.ready()
  await cache.set('before', 'kept in L1')
  await cache.set('remote-only', 'x')
  await server.stop()

  const started = performance.now()
  assert.is(await cache.get('before'), 'kept in L1')
  assert.is(await cache.get('never-set'), undefined)
  await cache.set('during', 'written to L1 only')
  assert.is(await cache.get('during'), 'written to L1 only')
  assert.is(await cache.getOrSet('computed', () => 'fallback'), 'fallback')
  assert.equal(await cache.getMany(['before', 'nope']), new Map([['before', 'kept in L1']]))
  assert.is(await cache.delete('during'), true)
  assert.is(await cache.touch('before', 60), true)
  await cache.clear()
  const elapsed = performance.now() - started
  // A generous bound that still proves nothing waited on a reconnect: each call is bounded by redisTimeoutMs.
  assert.ok(elapsed < 2000, `the outage calls took ${elapsed} ms`)
  assert.ok(cache.stats().l2.outages >= 1)
  assert.equal(logged.filter((l) => l.startsWith('warn')).length, 1, 'one warning per outage')
  assert.match(logged[0] ?? '', /^warn: fragcache: Redis is unavailable \(\w+: .+\); serving from memory until it is back$/)

  for (const call of [() => cache.add('lock', 1, 30), () => cache.incr('n'), () => cache.versions.bump('article:1')]) {
    try {
      await call()
      assert.unreachable('an atomic operation must not pretend to succeed')
    } catch (err) {
      assert.instance(err, AtomicityError)
      assert.match((err as Error).message, /needs Redis to be atomic across processes, and Redis is unavailable/)
    }
  }

  await server.restart()
  await eventually(async () => {
    await cache.set('after', 'in redis again')
    const raw = server.client()
    const stored = await raw.exists(cache.keys.build('c', 'after'))
    raw.disconnect()
    return stored === 1
  }, 10_000, 'the cache to write to Redis again')
  const fresh = createCache({ prefix: `r${prefixes}`, redis: server.url, ...patientRedis, logger })
  open.push(fresh)
  await fresh.ready()
  assert.is(await fresh.get('after'), 'in redis again', 'served from Redis after the restart')
})

outage('a frozen (slow) Redis answers nothing: every call is a miss within the timeout', async () => {
  const cache = make({ redisTimeoutMs: 30, redisBreaker: { threshold: 2, cooldownMs: 60_000 } })
  await cache.ready()
  await cache.set('warm', 'l1')
  server.pause()
  try {
    const started = performance.now()
    assert.is(await cache.get('cold'), undefined)
    assert.is(await cache.get('cold2'), undefined)
    const afterTwo = performance.now()
    // The circuit is open now: further calls do not even wait for the timeout.
    for (let i = 0; i < 50; i++) assert.is(await cache.get(`cold${i + 3}`), undefined)
    const afterMany = performance.now()
    assert.is(await cache.get('warm'), 'l1')
    await cache.set('w', 1)
    assert.ok(afterTwo - started < 1000, `two timed-out reads took ${afterTwo - started} ms`)
    assert.ok(afterMany - afterTwo < 1000, `fifty refused reads took ${afterMany - afterTwo} ms`)
    assert.is(cache.stats().l2.down, true)
  } finally {
    server.resume()
  }
})

outage.run()

const reconnect = suite('Redis bus reconnect')
reconnect.after(closeAll)

reconnect('a change made while the bus was down is seen after it reconnects', async () => {
  await server.restart()
  const a = make({ prefix: 'rb' })
  const b = make({ prefix: 'rb', busDownTrustMs: 60_000 })
  await Promise.all([a.ready(), b.ready()])
  await a.set('k', 'before')
  // b's first read may race a's bus message for that very write, and then rightly does not keep it; read until it does.
  await eventually(async () => {
    const hits = b.stats().l1.hits
    return (await b.get('k')) === 'before' && b.stats().l1.hits > hits
  }, 2000, 'b to hold k in its L1')
  const admin = server.client()
  try {
    await admin.call('ACL', 'SETUSER', 'default', '-subscribe')
    await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
    await eventually(() => !b.stats().l2.busConnected, 5000, 'b to notice its bus is down')
    await a.set('k', 'during') // b's bus misses this message
    assert.is(await b.get('k'), 'before', 'trusted for busDownTrustMs while the bus is down')
  } finally {
    await admin.call('ACL', 'SETUSER', 'default', '+subscribe')
    admin.disconnect()
  }
  await eventually(() => b.stats().l2.busConnected, 10_000, 'the bus to reconnect')
  assert.is(await b.get('k'), 'during')
})

reconnect.run()
