/**
 * `npx tsx bench/cluster-probe.ts` — what of fragcache's public API works on a Redis Cluster today.
 *
 * Starts a private Cluster (3 masters, loopback ports, never the shared 6379) and runs one check per public
 * behaviour, each on two fresh caches of its own prefix (`cache`, and `peer` playing another process with an empty
 * L1), so a failure cannot leak into the next check through a breaker or an L1. A check passes when the behaviour
 * is right AND no Redis call failed on the way: fragcache turns a failed call into a miss, so "the value came back"
 * alone would hide that it was never stored. Every rejected Redis call is recorded (through a proxy on the client
 * handed to fragcache) and the first is printed with the FAIL.
 *
 * The checks run three times: on a single Redis (the baseline: a check failing there is not about the Cluster), on
 * the Cluster with the ioredis options the test switch gives a cache (`cacheClusterOptions`, auto-pipelining on),
 * and on the Cluster with ioredis's defaults (`new Cluster(seeds)`), as a user trying it would.
 *
 * Then it times a 5-tag version read on a cold process (a new cache: no version known in memory; connections
 * already up) against the Cluster and against a single Redis, through fragcache and as raw scripts (what a fix
 * could send instead), and prints a markdown table.
 *
 * Last, failover as the issue describes it: a master frozen (SIGSTOP) under a client, and the node carrying a
 * peer's bus subscription killed (SIGKILL) 1 ms before another process bumps a tag the peer holds.
 *
 * Environment: PROBE_SAMPLES (default 101), PROBE_BUS_TRIALS (default 6).
 */
import type { Server } from 'node:http'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import express from 'express'
import { Cluster, type ClusterOptions, Redis } from 'ioredis'
import { type TieredCache, createCache } from '../src/index.ts'
import { cachePage, invalidatePath, requestScope } from '../src/express/index.ts'
import { ownerOfSlot, slotOf } from '../test/support/cluster-slots.ts'
import { callWithHost } from '../test/support/http.ts'
import { type ClusterNode, RedisCluster } from '../test/support/redis-cluster.ts'
import { RedisServer } from '../test/support/redis-server.ts'
import { cacheClusterOptions } from '../test/support/redis-topology.ts'
import { median, percentile } from './support/measure.ts'
import { formatMs, markdownTable } from './support/report.ts'

const SAMPLES = Number(process.env.PROBE_SAMPLES ?? 101)
const BUS_TRIALS = Number(process.env.PROBE_BUS_TRIALS ?? 6)
/** Timeouts are not what this probe looks at: a busy machine must not turn a slow answer into a failure. */
const REDIS_TIMEOUT_MS = 1000
const TAGS_3 = ['article:1', 'author:2', 'category:3']
const TAGS_5 = ['article:1', 'author:2', 'category:3', 'tag:4', 'site']

/** What one check gets: two caches on one prefix, the raw client, and what failed underneath. */
interface Probe {
  cache: TieredCache
  peer: TieredCache
  raw: Redis | Cluster
  /** Every Redis call of either cache that was rejected, as `operation: message`. */
  failures: string[]
  /** What fragcache logged (outage warnings, corrupt values). */
  logged: string[]
}

interface Check {
  name: string
  /** Reply errors are expected on the way (the breaker checks provoke them). */
  expectsRedisErrors?: boolean
  run(probe: Probe): Promise<void>
}

function expect(condition: boolean, message: string): void {
  if (!condition) throw new Error(message)
}

const checks: Check[] = [
  {
    name: 'ready() resolves and the bus is connected',
    run: async ({ cache }) => expect(cache.stats().l2.busConnected, 'stats().l2.busConnected is false'),
  },
  {
    name: 'set, then get in the same process',
    run: async ({ cache }) => {
      await cache.set('a', 'one')
      expect((await cache.get('a')) === 'one', 'get did not return the value')
    },
  },
  {
    name: 'set, then get in another process (from Redis)',
    run: async ({ cache, peer }) => {
      await cache.set('a', { n: 1 })
      const got = await peer.get<{ n: number }>('a')
      expect(got?.n === 1, `peer got ${JSON.stringify(got)}`)
      expect(peer.stats().l2.hits === 1, 'not a Redis hit')
    },
  },
  {
    name: 'get of a missing key returns the default',
    run: async ({ peer }) => expect((await peer.get('absent', 'dflt')) === 'dflt', 'no default'),
  },
  {
    name: 'add stores once (SET NX), across processes',
    run: async ({ cache, peer }) => {
      expect((await cache.add('a', 1)) === true, 'first add returned false')
      expect((await peer.add('a', 2)) === false, 'second add (other process) returned true')
      expect((await peer.get('a')) === 1, 'the first value was not kept')
    },
  },
  {
    name: 'delete removes it for another process',
    run: async ({ cache, peer, raw }) => {
      await cache.set('a', 1)
      expect((await cache.delete('a')) === true, 'delete returned false')
      expect((await peer.get('a')) === undefined, 'peer still reads it')
      expect((await raw.exists(cache.keys.build('c', 'a'))) === 0, 'still in Redis')
    },
  },
  {
    name: 'getOrSet, no deps: stored, another process does not recompute',
    run: async ({ cache, peer }) => {
      let computes = 0
      await cache.getOrSet('g', () => ++computes)
      expect((await peer.getOrSet('g', () => ++computes)) === 1 && computes === 1, `computed ${computes} times`)
    },
  },
  {
    name: 'getOrSet, 1 dep: stored, another process does not recompute',
    run: async ({ cache, peer }) => {
      let computes = 0
      await cache.getOrSet('g', () => ++computes, { deps: ['article:1'] })
      await peer.getOrSet('g', () => ++computes, { deps: ['article:1'] })
      expect(computes === 1, `computed ${computes} times`)
    },
  },
  {
    name: 'getOrSet, 1 dep: a bump makes it recompute',
    run: async ({ cache, peer }) => {
      let computes = 0
      await cache.getOrSet('g', () => ++computes, { deps: ['article:1'] })
      await cache.versions.bump('article:1')
      const value = await peer.getOrSet('g', () => ++computes, { deps: ['article:1'] })
      expect(value === 2 && computes === 2, `value ${value}, computed ${computes} times`)
    },
  },
  {
    name: 'getOrSet, 3 deps in 3 slots: stored, another process does not recompute',
    run: async ({ cache, peer }) => {
      let computes = 0
      await cache.getOrSet('g', () => ++computes, { deps: TAGS_3 })
      await peer.getOrSet('g', () => ++computes, { deps: TAGS_3 })
      expect(computes === 1, `computed ${computes} times`)
    },
  },
  {
    name: 'getOrSet, 3 deps: a bump of one makes it recompute',
    run: async ({ cache, peer }) => {
      let computes = 0
      await cache.getOrSet('g', () => ++computes, { deps: TAGS_3 })
      await cache.versions.bump('author:2')
      const value = await peer.getOrSet('g', () => ++computes, { deps: TAGS_3 })
      expect(value === 2, `value ${value} after the bump, computed ${computes} times`)
    },
  },
  {
    name: 'nested getOrSet: the outer entry records the inner deps',
    run: async ({ cache, peer }) => {
      let outer = 0
      const compute = (c: TieredCache) => () =>
        c.getOrSet('inner', () => 'in', { deps: ['article:1'] }).then((inner) => `${inner}/${++outer}`)
      await cache.getOrSet('outer', compute(cache))
      expect((await peer.getOrSet('outer', compute(peer))) === 'in/1', 'the outer entry was not reused')
      await cache.versions.bump('article:1')
      const after = await cache.getOrSet('outer', compute(cache))
      expect(after === 'in/2', `after bumping the inner dep the outer read ${after}`)
      // The peer learns of the bump over the bus: its L1 copy goes when the message lands.
      await eventually(async () => (await peer.getOrSet('outer', compute(peer))) === 'in/2', 'the peer to read the new outer value')
    },
  },
  {
    name: 'versions.get of 1 tag',
    run: async ({ cache }) => {
      const versions = await cache.versions.get(['article:1'])
      expect(typeof versions['article:1'] === 'number', JSON.stringify(versions))
    },
  },
  {
    name: 'versions.get of 5 tags in 5 slots',
    run: async ({ cache }) => {
      const versions = await cache.versions.get(TAGS_5)
      expect(Object.keys(versions).length === 5, JSON.stringify(versions))
    },
  },
  {
    name: 'versions.bump of 1 tag: another process reads the new version',
    run: async ({ cache, peer }) => {
      const before = (await peer.versions.get(['article:1']))['article:1'] ?? 0
      const bumped = (await cache.versions.bump('article:1'))['article:1'] ?? 0
      expect(bumped > before, `bumped to ${bumped}, was ${before}`)
      await eventually(async () => (await peer.versions.get(['article:1']))['article:1'] === bumped, 'the peer to read the bumped version')
    },
  },
  {
    name: 'versions.bump of 3 tags in 3 slots',
    run: async ({ cache }) => {
      const bumped = await cache.versions.bump(...TAGS_3)
      expect(Object.keys(bumped).length === 3, JSON.stringify(bumped))
    },
  },
  {
    name: 'getMany across slots, from another process',
    run: async ({ cache, peer }) => {
      for (const key of ['m1', 'm2', 'm3', 'm4']) await cache.set(key, key)
      const got = await peer.getMany(['m1', 'm2', 'm3', 'm4', 'missing'])
      expect(got.size === 4 && got.get('m3') === 'm3', `got ${JSON.stringify([...got])}`)
    },
  },
  {
    name: 'setMany across slots, read by another process',
    run: async ({ cache, peer }) => {
      await cache.setMany({ s1: 1, s2: 2, s3: 3, s4: 4 })
      const got = await Promise.all(['s1', 's2', 's3', 's4'].map((key) => peer.get(key)))
      expect(got.join() === '1,2,3,4', `peer got ${JSON.stringify(got)}`)
    },
  },
  {
    name: 'deleteMany across slots',
    run: async ({ cache, peer, raw }) => {
      for (const key of ['d1', 'd2', 'd3', 'd4']) await cache.set(key, key)
      const removed = await cache.deleteMany(['d1', 'd2', 'd3', 'd4'])
      expect(removed === 4, `deleteMany returned ${removed}`)
      expect((await peer.get('d2')) === undefined, 'peer still reads d2')
      const left = await Promise.all(['d1', 'd2', 'd3', 'd4'].map((key) => raw.exists(cache.keys.build('c', key))))
      expect(left.every((n) => n === 0), `still in Redis: ${JSON.stringify(left)}`)
    },
  },
  {
    name: 'incr, seen by another process',
    run: async ({ cache, peer }) => {
      await cache.set('n', 5)
      expect((await cache.incr('n', 2)) === 7, 'incr did not return 7')
      expect((await peer.get('n')) === 7, 'peer did not read 7')
    },
  },
  {
    name: 'decr',
    run: async ({ cache }) => {
      await cache.set('n', 5)
      expect((await cache.decr('n')) === 4, 'decr did not return 4')
    },
  },
  {
    name: 'touch sets a new TTL in Redis',
    run: async ({ cache, raw }) => {
      await cache.set('t', 'v', 10)
      expect((await cache.touch('t', 1000)) === true, 'touch returned false')
      const pttl = await raw.pttl(cache.keys.build('c', 't'))
      expect(pttl > 10_000, `pttl ${pttl}`)
    },
  },
  {
    name: 'clear() removes this prefix on every master, and only it',
    run: async ({ cache, peer, raw }) => {
      for (let i = 0; i < 30; i++) await cache.set(`c${i}`, i)
      await raw.set('other-prefix:keep', '1')
      expect((await cache.clear()) === true, 'clear returned false')
      const left = await Promise.all(Array.from({ length: 30 }, (_, i) => raw.exists(cache.keys.build('c', `c${i}`))))
      expect(left.every((n) => n === 0), `${left.filter((n) => n === 1).length} of 30 keys left`)
      expect((await peer.get('c7')) === undefined, 'peer still reads c7')
      expect((await raw.get('other-prefix:keep')) === '1', 'another prefix was cleared')
    },
  },
  {
    name: 'bus: a set in one process drops the other L1 copy',
    run: async ({ cache, peer }) => {
      await cache.set('b', 'v1')
      expect((await peer.get('b')) === 'v1', 'peer did not read v1')
      await cache.set('b', 'v2')
      await eventually(async () => (await peer.get('b')) === 'v2', 'the peer to read v2')
    },
  },
  {
    name: 'bus: a bump in one process drops the version the other holds',
    run: async ({ cache, peer }) => {
      const held = await peer.versions.get(['article:1'])
      const bumped = await cache.versions.bump('article:1')
      await eventually(() => peer.versions.check(held) !== true, 'the peer to stop trusting its version')
      expect((await peer.versions.get(['article:1']))['article:1'] === bumped['article:1'], 'peer reads another version')
    },
  },
  {
    name: 'breaker: CROSSSLOT replies (3 × versions.get of 3 tags) do not open it',
    expectsRedisErrors: true,
    run: async ({ cache, peer }) => {
      for (let i = 0; i < 3; i++) await cache.versions.get(TAGS_3).catch(() => undefined)
      const { l2 } = cache.stats()
      expect(!l2.down && l2.outages === 0, `down: ${l2.down}, outages: ${l2.outages}, errors: ${l2.errors}, replyErrors: ${l2.replyErrors}`)
      await cache.set('after', 1)
      expect((await peer.get('after')) === 1, 'a plain set/get after them did not reach Redis')
    },
  },
  {
    name: 'breaker: WRONGTYPE replies (3 × get of a hash) do not open it',
    expectsRedisErrors: true,
    run: async ({ cache, peer, raw }) => {
      await raw.hset(cache.keys.build('c', 'h'), 'field', 'value')
      for (let i = 0; i < 3; i++) await cache.get('h')
      const { l2 } = cache.stats()
      expect(!l2.down && l2.outages === 0, `down: ${l2.down}, outages: ${l2.outages}, errors: ${l2.errors}, replyErrors: ${l2.replyErrors}`)
      await cache.set('after', 1)
      expect((await peer.get('after')) === 1, 'a plain set/get after them did not reach Redis')
    },
  },
  {
    name: 'cachePage /articles/1: MISS, HIT, then HIT from Redis in another process',
    run: async ({ cache, peer }) => {
      const apps = await Promise.all([cache, peer].map((c) => site(c)))
      try {
        const [first, second] = [await fetchPage(apps[0], '/articles/1'), await fetchPage(apps[0], '/articles/1')]
        expect(first.cache === 'MISS' && second.cache === 'HIT', `X-Cache ${first.cache}, then ${second.cache}`)
        // Behind one address, as a load balancer sends it: the host is part of a page's key.
        const third = await fetchPage(apps[1], '/articles/1', new URL((apps[0] as Site).url).host)
        expect(third.cache === 'HIT' && third.body === first.body, `other process: X-Cache ${third.cache}`)
      } finally {
        for (const app of apps) await app.close()
      }
    },
  },
  {
    name: 'invalidatePath of two prefixes: both pages render again',
    run: async ({ cache }) => {
      const app = await site(cache)
      try {
        for (const path of ['/articles/1', '/authors/2']) await fetchPage(app, path)
        const cached = await Promise.all(['/articles/1', '/authors/2'].map((path) => fetchPage(app, path)))
        expect(cached.every((r) => r.cache === 'HIT'), `before: X-Cache ${cached.map((r) => r.cache).join(', ')}`)
        await invalidatePath(cache, ['/articles/', '/authors/'])
        const after = await Promise.all(['/articles/1', '/authors/2'].map((path) => fetchPage(app, path)))
        expect(after.every((r) => r.cache === 'MISS'), `after: X-Cache ${after.map((r) => r.cache).join(', ')}`)
      } finally {
        await app.close()
      }
    },
  },
]

// The probe itself --------------------------------------------------------------------------------------------

interface Outcome {
  name: string
  passed: boolean
  detail: string
}

/** Runs every check on fresh caches over `makeClient()` clients; prints PASS/FAIL lines as it goes. */
async function runChecks(label: string, makeClient: () => Redis | Cluster, raw: Redis | Cluster): Promise<Outcome[]> {
  console.log(`\n### Checks: ${label}\n`)
  const outcomes: Outcome[] = []
  for (const [n, check] of checks.entries()) {
    const failures: string[] = []
    const logged: string[] = []
    const client = recording(makeClient(), failures)
    client.on('error', () => {})
    const logger = { warn: (m: string) => logged.push(m), error: (m: string) => logged.push(m) }
    const prefix = `probe-${label.replace(/\W+/g, '')}-${n}`
    const cache = createCache({ redis: client, prefix, redisTimeoutMs: REDIS_TIMEOUT_MS, logger })
    const peer = createCache({ redis: client, prefix, redisTimeoutMs: REDIS_TIMEOUT_MS, logger })
    let error: unknown
    try {
      await Promise.all([cache.ready(), peer.ready()])
      await check.run({ cache, peer, raw, failures, logged })
    } catch (thrown) {
      error = thrown
    }
    // Reply errors are counted apart from failures (timeouts, connections): both are calls that did not work.
    const redisErrors = [cache, peer].reduce((sum, c) => sum + c.stats().l2.errors + c.stats().l2.replyErrors, 0)
    const passed = error === undefined && (check.expectsRedisErrors === true || redisErrors === 0)
    const detail = passed
      ? ''
      : [
          error === undefined ? `behaved, but ${redisErrors} Redis call(s) failed underneath` : describe(error),
          failures[0] === undefined ? undefined : `first Redis failure: ${failures[0]}`,
          logged[0] === undefined ? undefined : `logged: ${logged[0]}`,
        ]
          .filter((part) => part !== undefined)
          .join(' | ')
    outcomes.push({ name: check.name, passed, detail })
    console.log(`${passed ? 'PASS' : 'FAIL'}  ${String(n + 1).padStart(2)}. ${check.name}${passed ? '' : `\n          ${detail}`}`)
    await cache.close()
    await peer.close()
    client.disconnect()
  }
  const passed = outcomes.filter((o) => o.passed).length
  console.log(`\n${label}: ${passed} of ${outcomes.length} checks pass`)
  return outcomes
}

/**
 * The client handed to fragcache, with every rejected call recorded: fragcache turns failures into misses, and the
 * probe must say which call failed and why. Pipelines (setMany) and per-node clients (clear) are followed too.
 */
function recording<T extends object>(target: T, failures: string[], where = ''): T {
  return new Proxy(target, {
    get(object, property, receiver) {
      const value: unknown = Reflect.get(object, property, receiver)
      if (typeof value !== 'function' || typeof property !== 'string') return value
      return (...args: unknown[]) => {
        const result: unknown = (value as (...a: unknown[]) => unknown).apply(object, args)
        const name = `${where}${property}`
        if (result instanceof Promise) {
          result.then(
            (reply: unknown) => {
              // A pipeline resolves with [error, reply] pairs: its failures are in there.
              if (property === 'exec' && Array.isArray(reply)) {
                const failed = (reply as [Error | null, unknown][]).find(([e]) => e)
                if (failed?.[0]) failures.push(`${name}: ${failed[0].message}`)
              }
            },
            // NOSCRIPT is the expected first answer to EVALSHA: fragcache sends the script then.
            (e: unknown) => describe(e).includes('NOSCRIPT') || failures.push(`${name}: ${describe(e)}`),
          )
        } else if (property === 'pipeline' || property === 'multi') {
          return recording(result as object, failures, `${name}.`)
        } else if (property === 'nodes' && Array.isArray(result)) {
          return result.map((node: object) => recording(node, failures, 'node.'))
        }
        return result
      }
    },
  })
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  const cause = (error as { cause?: unknown }).cause
  return `${error.name}: ${error.message}${cause instanceof Error ? ` (cause: ${cause.message})` : ''}`
}

async function eventually(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 2000): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

interface Site {
  url: string
  close(): Promise<void>
}

/** A tiny site: `/articles/:id` and `/authors/:id`, each page cached whole; the body counts renders. */
async function site(cache: TieredCache): Promise<Site> {
  const app = express()
  let renders = 0
  app.use(requestScope(cache))
  app.get(['/articles/:id', '/authors/:id'], cachePage(cache, { ttl: 300 }), (req, res) => {
    res.send(`<h1>${req.path}</h1><p>render ${++renders}</p>`)
  })
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s))
  })
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

async function fetchPage(app: Site | undefined, path: string, host?: string): Promise<{ cache: string | null; body: string }> {
  if (!app) throw new Error('no app')
  if (host !== undefined) {
    const reply = await callWithHost(`${app.url}${path}`, host)
    return { cache: reply.cache ?? null, body: reply.body }
  }
  const res = await fetch(`${app.url}${path}`)
  return { cache: res.headers.get('x-cache'), body: await res.text() }
}

// Timing ------------------------------------------------------------------------------------------------------

interface Timing {
  setup: string
  outcome: string
  medianMs: number
  p90Ms: number
}

/**
 * The median time of one `read`, each sample after a fresh `prepare` (a new cache: no version known in memory, its
 * connections already up), so the read always goes to Redis as a cold process's first page would.
 */
async function timeCold<T>(setup: string, prepare: () => Promise<T>, read: (prepared: T) => Promise<unknown>, release: (prepared: T) => Promise<void>): Promise<Timing> {
  const times: number[] = []
  const outcomes = new Map<string, number>()
  for (let i = 0; i < SAMPLES; i++) {
    const prepared = await prepare()
    const started = performance.now()
    let outcome = 'ok'
    try {
      await read(prepared)
    } catch (error) {
      outcome = `fails: ${(error as Error).name}`
    }
    times.push(performance.now() - started)
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
    await release(prepared)
  }
  return {
    setup,
    outcome: [...outcomes].map(([o, count]) => (count === SAMPLES ? o : `${o} (${count}×)`)).join(', '),
    medianMs: median(times),
    p90Ms: percentile(times, 90),
  }
}

/** A new cache on `redis`, ready. */
async function freshCache(redis: string | Cluster): Promise<TieredCache> {
  const cache = createCache({ redis, prefix: 'timing', redisTimeoutMs: REDIS_TIMEOUT_MS, logger: { warn: () => {}, error: () => {} } })
  await cache.ready()
  return cache
}

/** fragcache's version-read script (src/versions.ts), copied: the raw rows time what a fix could send instead. */
const READ = `local out = {}
for i, key in ipairs(KEYS) do
  local v = redis.call('GET', key)
  if not v then redis.call('SET', key, ARGV[1], 'NX', 'PX', ARGV[2]); v = redis.call('GET', key) end
  out[i] = tonumber(v)
end
return out`
const VERSION_TTL_MS = 30 * 24 * 3600 * 1000

async function timeVersions(cluster: RedisCluster, single: RedisServer): Promise<Timing[]> {
  const shared = new Cluster(cluster.seeds, cacheClusterOptions)
  const singleRaw = new Redis(single.port, '127.0.0.1', { enableAutoPipelining: true })
  for (const client of [shared, singleRaw]) client.on('error', () => {})
  await Promise.all([shared.ping(), singleRaw.ping()].map((p) => p.catch(() => undefined)))
  const closeCache = (cache: TieredCache) => cache.close()
  const nothing = async () => {}
  const perTagKeys = TAGS_5.map((tag) => `timing:1:ver:${tag}`)
  const oneSlotKeys = TAGS_5.map((tag) => `{timing:ver}:${tag}`)
  const rows = [
    await timeCold('single Redis · fragcache versions.get, 5 tags', () => freshCache(single.url), (c) => c.versions.get(TAGS_5), closeCache),
    await timeCold('Cluster · fragcache versions.get, 5 tags in 5 slots', () => freshCache(shared), (c) => c.versions.get(TAGS_5), closeCache),
    await timeCold('single Redis · raw: one script, 5 keys', nothing, () => singleRaw.eval(READ, 5, ...perTagKeys, Date.now(), VERSION_TTL_MS), nothing),
    await timeCold('Cluster · raw: one script, 5 keys in one slot ({prefix:ver} tag)', nothing, () =>
      shared.eval(READ, 5, ...oneSlotKeys, Date.now(), VERSION_TTL_MS), nothing),
    await timeCold('Cluster · raw: 5 one-key scripts at once (split per slot)', nothing, () =>
      Promise.all(perTagKeys.map((key) => shared.eval(READ, 1, key, Date.now(), VERSION_TTL_MS))), nothing),
  ]
  shared.disconnect()
  singleRaw.disconnect()
  return rows
}

// Failover ----------------------------------------------------------------------------------------------------

/**
 * A master frozen (SIGSTOP), as the issue's "13 s": how long until a client with `options` stores a key of the
 * frozen master's slots again. Each attempt is a SET bounded at 200 ms; the frozen node never answers, so only a
 * slot refresh (periodic, or on some other error) sends the client to the promoted replica.
 */
async function frozenMaster(cluster: RedisCluster, options: ClusterOptions): Promise<string> {
  const client = new Cluster(cluster.seeds, options)
  client.on('error', () => {})
  // Without the offline queue, a command sent before 'ready' is refused, not queued.
  await new Promise((resolve) => client.once('ready', resolve))
  const victim = await cluster.masterForSlot(slotOf('frozen'))
  await cluster.pause(victim)
  const paused = performance.now()
  let failoverMs = Number.NaN
  const failover = cluster.waitForFailover(victim).then((f) => (failoverMs = f.ms))
  let storedAfter = Number.NaN
  for (let n = 0; performance.now() - paused < 30_000; n++) {
    const stored = await Promise.race([
      client.set('frozen', String(n)).then(() => true, () => false),
      new Promise<false>((resolve) => setTimeout(() => resolve(false), 200)),
    ])
    if (stored) {
      storedAfter = performance.now() - paused
      break
    }
  }
  await failover.catch(() => undefined)
  cluster.resume(victim)
  await cluster.waitUntilHealthy()
  client.disconnect()
  return `failover ${Math.round(failoverMs)} ms; writes land again after ${Number.isNaN(storedAfter) ? '> 30 s' : `${Math.round(storedAfter)} ms`}`
}

/** What one trial of {@link busAfterKill} saw. */
interface BusTrial {
  role: string
  bumped: boolean
  /** ms after the kill when the peer stopped trusting its old version; undefined if it still did after 3 s. */
  trustedForMs: number | undefined
  busSeenDown: boolean
}

/**
 * The issue's lost invalidation: a peer holds a version; the node its bus subscriber sits on is SIGKILLed and, 1 ms
 * later, another process bumps the tag. Does the peer stop trusting the old version, and does its bus ever report
 * the gap (stats().l2.busConnected)? ioredis picks the subscriber's node at random, master or replica.
 */
async function busAfterKill(cluster: RedisCluster, options: ClusterOptions): Promise<BusTrial | string> {
  const peerClient = new Cluster(cluster.seeds, { ...options, redisOptions: { ...options.redisOptions, connectionName: 'probe-peer' } })
  const publisherClient = new Cluster(cluster.seeds, options)
  for (const client of [peerClient, publisherClient]) client.on('error', () => {})
  const quiet = { warn: () => {}, error: () => {} }
  const peer = createCache({ redis: peerClient, prefix: 'busprobe', redisTimeoutMs: REDIS_TIMEOUT_MS, logger: quiet })
  const publisher = createCache({ redis: publisherClient, prefix: 'busprobe', redisTimeoutMs: REDIS_TIMEOUT_MS, logger: quiet })
  try {
    await Promise.all([peer.ready(), publisher.ready()])
    let host: ClusterNode | undefined
    for (const node of cluster.nodes) {
      const admin = cluster.nodeClient(node)
      const clients = String(await admin.call('CLIENT', 'LIST').catch(() => ''))
      admin.disconnect()
      if (clients.includes('name=ioredis-cluster(subscriber):probe-peer')) host = node
    }
    if (!host) return 'could not find the peer bus subscriber'
    const views = await cluster.topology()
    // A tag whose version key is not on the node about to die, so the bump itself succeeds.
    const tag = (() => {
      for (let i = 0; ; i++) {
        const owner = ownerOfSlot(views, slotOf(publisher.keys.build('ver', `t${i}`)))
        if (owner && owner.id !== host.id) return `t${i}`
      }
    })()
    const held = await peer.versions.get([tag])
    const role = views.find((v) => v.id === host.id)?.role ?? '?'
    await cluster.kill(host)
    const killed = performance.now()
    await new Promise((resolve) => setTimeout(resolve, 1))
    const bumped = await publisher.versions.bump(tag).then(() => true, () => false)
    let trustedForMs: number | undefined
    let busSeenDown = false
    while (performance.now() - killed < 3000) {
      if (!peer.stats().l2.busConnected) busSeenDown = true
      if (peer.versions.check(held) !== true) {
        trustedForMs = performance.now() - killed
        break
      }
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    if (role === 'master') await cluster.waitForFailover(host).catch(() => undefined)
    await cluster.restart(host)
    await cluster.waitUntilHealthy()
    return { role, bumped, trustedForMs, busSeenDown }
  } finally {
    await peer.close()
    await publisher.close()
    peerClient.disconnect()
    publisherClient.disconnect()
  }
}

/** {@link busAfterKill} `trials` times, summed up in one line. */
async function busAfterKills(cluster: RedisCluster, options: ClusterOptions, trials: number): Promise<string> {
  const seen: BusTrial[] = []
  for (let i = 0; i < trials; i++) {
    const trial = await busAfterKill(cluster, options)
    if (typeof trial === 'string') return trial
    seen.push(trial)
  }
  const on = (role: string) => seen.filter((t) => t.role === role).length
  const lost = seen.filter((t) => t.bumped && t.trustedForMs === undefined)
  const dropped = seen.flatMap((t) => (t.trustedForMs === undefined ? [] : [Math.round(t.trustedForMs)]))
  return [
    `${trials} kills (subscriber on a master ${on('master')}×, on a replica ${on('replica')}×)`,
    `bump lost (old version still trusted 3 s later) ${lost.length}×${lost.length > 0 ? ` (on a ${lost.map((t) => t.role).join(', ')})` : ''}`,
    `delivered ${dropped.length}×${dropped.length > 0 ? ` after ${dropped.join(', ')} ms` : ''}`,
    `bump refused ${seen.filter((t) => !t.bumped).length}×`,
    `busConnected went false ${seen.filter((t) => t.busSeenDown).length}×`,
  ].join('; ')
}

// Main --------------------------------------------------------------------------------------------------------

const started = performance.now()
const cluster = await RedisCluster.start({ masters: 3, replicasPerMaster: 1 })
const single = await RedisServer.start()
try {
  const { version: ioredisVersion } = createRequire(import.meta.url)('ioredis/package.json') as { version: string }
  const info = single.client()
  const redisVersion = String(await info.info('server')).match(/redis_version:(\S+)/)?.[1] ?? '?'
  info.disconnect()
  console.log(`# fragcache on a Redis Cluster — probe\n`)
  console.log(`Redis ${redisVersion}, Cluster of 3 masters + 3 replicas (ports ${cluster.seeds.map((s) => s.port).join(', ')}), ioredis ${ioredisVersion}, Node ${process.version}`)

  // The same options fragcache gives the client it opens for a URL.
  const singleOptions = { enableOfflineQueue: false, enableAutoPipelining: true, maxRetriesPerRequest: 0 }
  const singleRaw = single.client()
  const baseline = await runChecks('single Redis (baseline)', () => new Redis(single.port, '127.0.0.1', singleOptions), singleRaw)
  singleRaw.disconnect()
  const raw = cluster.client()
  const withOptions = await runChecks('Cluster with cacheClusterOptions', () => new Cluster(cluster.seeds, cacheClusterOptions), raw)
  const withDefaults = await runChecks('Cluster with ioredis defaults', () => new Cluster(cluster.seeds), raw)
  raw.disconnect()

  const mark = (outcome: Outcome | undefined) => (outcome?.passed ? 'PASS' : 'FAIL')
  console.log('\n### Summary\n')
  console.log(
    markdownTable(
      ['#', 'check', 'single Redis', 'Cluster, cacheClusterOptions', 'Cluster, ioredis defaults'],
      checks.map((check, i) => [String(i + 1), check.name, mark(baseline[i]), mark(withOptions[i]), mark(withDefaults[i])]),
    ),
  )
  const count = (outcomes: Outcome[]) => `${outcomes.filter((o) => o.passed).length} of ${outcomes.length}`
  console.log(
    `\nTotal: single Redis ${count(baseline)}; Cluster ${count(withOptions)} with cacheClusterOptions, ${count(withDefaults)} with ioredis defaults.`,
  )

  console.log(`\n### A cold process's 5-tag version read (${SAMPLES} samples; each fragcache sample is a new cache)\n`)
  const timings = await timeVersions(cluster, single)
  console.log(
    markdownTable(
      ['setup', 'outcome', 'median', 'p90'],
      timings.map((t) => [t.setup, t.outcome, formatMs(t.medianMs), formatMs(t.p90Ms)]),
    ),
  )

  console.log('\n### Failover (3 masters + 3 replicas, node timeout 1000 ms)\n')
  const failoverRows: string[][] = []
  for (const [label, options] of [['cacheClusterOptions', cacheClusterOptions], ['ioredis defaults', {}]] as const) {
    failoverRows.push([label, 'a master SIGSTOPped', await frozenMaster(cluster, options)])
    failoverRows.push([label, "the peer's bus node SIGKILLed, a bump 1 ms later", await busAfterKills(cluster, options, BUS_TRIALS)])
  }
  console.log(markdownTable(['client options', 'event', 'what happened'], failoverRows))
} finally {
  await cluster.stop()
  await single.stop()
  console.log(`\n(probe ran in ${((performance.now() - started) / 1000).toFixed(1)} s)`)
}
