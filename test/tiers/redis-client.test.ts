import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { type TieredCache, createCache } from '../../src/index.ts'
import { RedisServer } from '../support/redis-server.ts'

const server = await RedisServer.start()
const open: TieredCache[] = []
let prefixes = 0
const logged: string[] = []
const logger = { warn: (m: string) => logged.push(`warn: ${m}`), error: (m: string) => logged.push(`error: ${m}`) }

/** A cache with fragcache's default Redis timeout (50 ms) and breaker: nothing patient about it. */
function make(options: Parameters<typeof createCache>[0] = {}): TieredCache {
  const cache = createCache({ prefix: `rc${++prefixes}`, redis: server.url, logger, ...options })
  open.push(cache)
  return cache
}

/** Keeps the event loop busy for `ms`, as a long synchronous render does. */
function block(ms: number): void {
  const until = performance.now() + ms
  while (performance.now() < until);
}

const client = suite('Redis connection')
client.after(async () => {
  for (const cache of open) await cache.close()
  await server.stop()
})

client('a busy process does not declare a healthy Redis down: reads followed by an 80 ms block are all hits', async () => {
  const prefix = `busy${++prefixes}`
  const writer = make({ prefix })
  await writer.ready()
  const keys = Array.from({ length: 20 }, (_, i) => `busy:${i}`)
  await writer.setMany(Object.fromEntries(keys.map((k) => [k, `value of ${k}`])), 3600)
  // An L1 of one entry: every read below goes to Redis.
  const reader = make({ prefix, l1: { max: 1 } })
  await reader.ready()
  const values: unknown[] = []
  for (const key of keys) {
    const pending = reader.get(key) // sent, then the process is busy while Redis answers
    block(80)
    values.push(await pending)
  }
  assert.equal(values, keys.map((k) => `value of ${k}`))
  const { l2 } = reader.stats()
  assert.equal({ hits: l2.hits, timeouts: l2.timeouts, errors: l2.errors, outages: l2.outages, down: l2.down }, {
    hits: 20,
    timeouts: 0,
    errors: 0,
    outages: 0,
    down: false,
  })
})

client('a frozen Redis still times out while the process is busy', async () => {
  const cache = make({ redisBreaker: { threshold: 100, cooldownMs: 60_000 } })
  await cache.ready()
  server.pause()
  try {
    const pending = cache.get('frozen')
    block(80)
    assert.is(await pending, undefined)
    assert.is(cache.stats().l2.timeouts, 1)
  } finally {
    server.resume()
  }
})

client('a cache used at once after createCache (no ready()): set, add and versions.bump reach Redis', async () => {
  const prefix = `start${++prefixes}`
  const cache = make({ prefix })
  await cache.set('greeting', 'hello')
  assert.is(await cache.add('once', 1, 60), true)
  const bumped = await cache.versions.bump('article:1')
  const raw = server.client()
  try {
    assert.is(await raw.exists(cache.keys.build('c', 'greeting'), cache.keys.build('c', 'once')), 2)
    assert.is(Number(await raw.get(cache.keys.build('ver', 'article:1'))), bumped['article:1'])
  } finally {
    raw.disconnect()
  }
  assert.is(cache.stats().l2.errors, 0)
})

client('an error Redis answers with is a bug to log, not an outage: the breaker stays closed', async () => {
  const cache = make({ redisBreaker: { threshold: 2, cooldownMs: 60_000 } })
  await cache.ready()
  const raw = server.client()
  await raw.hset(cache.keys.build('c', 'a-hash'), 'field', 'value') // GET on a hash: WRONGTYPE
  raw.disconnect()
  logged.length = 0
  for (let i = 0; i < 5; i++) assert.is(await cache.get('a-hash'), undefined)
  await cache.set('other', 'written to Redis all the same')
  const { l2 } = cache.stats()
  assert.equal({ replyErrors: l2.replyErrors, errors: l2.errors, outages: l2.outages, down: l2.down }, { replyErrors: 5, errors: 0, outages: 0, down: false })
  assert.match(logged[0] ?? '', /^error: fragcache: Redis refused get: WRONGTYPE Operation against a key holding the wrong kind of value \(a bug or a misconfiguration, not an outage\)$/)
})

client.run()
