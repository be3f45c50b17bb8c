import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { type TieredCache, createCache } from '../src/index.ts'
import { type CacheProcess, startCacheProcess } from './support/cache-process.ts'
import { eventually, patientRedis } from './support/redis-server.ts'
import { TOPOLOGIES, type TestRedis, startRedis } from './support/redis-topology.ts'

const quiet = { warn: () => {}, error: () => {} }
const open: TieredCache[] = []
let prefixes = 0

/** Runs `test/support/<script>` in a process of its own; resolves with its exit code. */
function runScript(script: string, args: string[]): Promise<number | null> {
  const child = fork(fileURLToPath(new URL(`./support/${script}`, import.meta.url)), args, { execArgv: ['--import', 'tsx'], stdio: 'inherit' })
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)))
}

for (const topology of TOPOLOGIES) busSuites(await startRedis(topology))

function busSuites(redis: TestRedis): void {
  const topology = redis.topology
  /** What a child process is given: the URL, or a Cluster's seed URLs. */
  const target = topology === 'cluster' ? redis.urls : (redis.urls[0] as string)

  async function make(prefix: string): Promise<TieredCache> {
    const cache = createCache({ prefix, redis: redis.cacheRedisOption(), ...patientRedis, logger: quiet })
    open.push(cache)
    await cache.ready()
    return cache
  }

  /** Freezes the node that holds `key` (the server, or its master), as a stuck Redis; returns how to let it run again. */
  async function freeze(key: string): Promise<() => void> {
    if (redis.server !== undefined) {
      const server = redis.server
      server.pause()
      return () => server.resume()
    }
    const cluster = redis.cluster as NonNullable<TestRedis['cluster']>
    const master = await cluster.masterForKey(key)
    await cluster.pause(master)
    return () => cluster.resume(master)
  }

  /** Closes every pub/sub connection (CLIENT KILL TYPE pubsub on the server, or on every node). */
  async function killPubSub(): Promise<void> {
    const clients = redis.cluster === undefined ? [redis.rawClient()] : (await redis.cluster.currentMasters()).map((node) => redis.cluster?.nodeClient(node))
    for (const client of clients) {
      try {
        await client?.client('KILL', 'TYPE', 'pubsub')
      } finally {
        client?.disconnect()
      }
    }
  }

  const bus = suite(`Invalidation bus :: ${topology}`)
  bus.after(async () => {
    for (const cache of open.splice(0)) await cache.close()
  })

  bus('a short-lived job that bumps, deletes and invalidates a path, then closes and exits, loses none of it', async () => {
    const prefix = `job${++prefixes}`
    const web = await make(prefix)
    let renders = 0
    const article = () => web.getOrSet('article:1:body', () => `body ${++renders}`, { deps: ['article:1'] })
    const page = () => web.getOrSet('page', () => `page ${++renders}`, { deps: ['path:/articles/'] })
    await web.set('greeting', 'hello')
    assert.is(await article(), 'body 1')
    assert.is(await page(), 'page 2')
    assert.is(await web.get('greeting'), 'hello', 'all three in the web process L1')

    assert.is(await runScript('short-job.ts', [typeof target === 'string' ? target : target.join(','), prefix]), 0)

    // The job awaited its publishes before closing: the messages are on their way to this process already.
    await eventually(async () => (await web.get('greeting')) === undefined, 100, 'the delete to reach the web process')
    assert.is(await article(), 'body 3', 'the bump reached it')
    assert.is(await page(), 'page 4', 'the path invalidation reached it')
  })

  bus('flush() resolves once the publishes of writes have been answered; close() flushes first', async () => {
    const prefix = `flush${++prefixes}`
    const a = await make(prefix)
    const b = await make(prefix)
    await b.set('k', 'old')
    assert.is(await a.get('k'), 'old')
    await b.set('k', 'new') // its publish is not awaited by set()
    await b.flush()
    await eventually(async () => (await a.get('k')) === 'new', 100, 'the write to reach the other process')
  })

  bus.run()

  const rw = suite(`Invalidation bus :: read-your-writes and lost messages :: ${topology}`)
  const children: CacheProcess[] = []
  rw.after(async () => {
    for (const child of children) await child.close()
    for (const cache of open.splice(0)) await cache.close()
    await redis.stop()
  })

  rw('1,000 bump-then-read sequences: a read the other process starts after the bump resolves is never stale', async () => {
    const prefix = `ryw${++prefixes}`
    const writer = await make(prefix)
    const reader = await startCacheProcess(target, prefix)
    children.push(reader)
    const read = () => reader.call<string>({ op: 'versioned', key: 'article:1:body', tag: 'article:1' })
    await read()
    let stale = 0
    for (let i = 0; i < 1000; i++) {
      const bumped = await writer.versions.bump('article:1')
      if ((await read()) !== `v${bumped['article:1']}`) stale += 1
    }
    assert.is(stale, 0, `${stale} of 1,000 reads served an entry computed before the bump`)
    assert.is(writer.stats().l2.unacknowledged, 0)
  })

  rw('a bump whose reply is lost to a frozen Redis: "outcome unknown", and the other process does not keep the old entry once Redis resumes', async () => {
    const prefix = `amb${++prefixes}`
    const writer = createCache({ prefix, redis: redis.cacheRedisOption(), logger: quiet, redisTimeoutMs: 50, redisBreaker: { threshold: 100, cooldownMs: 100 } })
    open.push(writer)
    await writer.ready()
    const reader = await startCacheProcess(target, prefix)
    children.push(reader)
    const read = () => reader.call<string>({ op: 'versioned', key: 'article:2:body', tag: 'article:2' })
    const before = await read()
    const resume = await freeze(writer.keys.build('ver', 'article:2'))
    try {
      await writer.versions.bump('article:2').then(
        () => assert.unreachable('the bump had no answer'),
        (error: Error) => {
          assert.is(error.name, 'OutcomeUnknownError')
          assert.is((error as Error & { code: string }).code, 'FRAGCACHE_OUTCOME_UNKNOWN')
          assert.match(error.message, /^fragcache: versions\.bump\("article:2"\) was sent to Redis and no answer came: it may or may not have been applied/)
        },
      )
    } finally {
      resume()
    }
    // Redis applies what was queued (the bumps, then the invalidation) once it resumes.
    await eventually(async () => (await read()) !== before, 5000, 'the reader to drop the old entry')
    const after = await read()
    assert.ok(Number(after.slice(1)) > Number(before.slice(1)), `${after} is newer than ${before}`)
    for (let i = 0; i < 50; i++) assert.is(await read(), after, 'and never goes back to it')
  })

  rw('the pub/sub connection killed while a bump is published: the other process serves the old entry no longer than busDownTrustMs', async () => {
    const prefix = `kill${++prefixes}`
    const writer = createCache({ prefix, redis: redis.cacheRedisOption(), ...patientRedis, logger: quiet, ackTimeoutMs: 200 })
    open.push(writer)
    await writer.ready()
    const reader = await startCacheProcess(target, prefix, { controlledClock: true, busDownTrustMs: 1000 })
    children.push(reader)
    const read = () => reader.call<string>({ op: 'versioned', key: 'article:3:body', tag: 'article:3' })
    const before = await read()
    await killPubSub()
    const bumped = await writer.versions.bump('article:3')
    // Whatever the reader still believes, a second past the trusted time it must not serve the old entry.
    await reader.call({ op: 'advance', ms: 1001 })
    assert.is(await read(), `v${bumped['article:3']}`)
    assert.not.equal(before, `v${bumped['article:3']}`)
  })

  rw.run()
}
