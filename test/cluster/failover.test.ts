/**
 * A Redis Cluster master SIGKILLed under load: the site keeps answering, Redis hits come back once a replica is
 * promoted, and an invalidation published right after the kill reaches every other process.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { type TieredCache, createCache } from '../../src/index.ts'
import { type CacheProcess, startCacheProcess } from '../support/cache-process.ts'
import { slotOf } from '../support/cluster-slots.ts'
import { eventually } from '../support/redis-server.ts'
import { TOPOLOGIES, type TestRedis, startRedis } from '../support/redis-topology.ts'

const quiet = { warn: () => {}, error: () => {} }

if (TOPOLOGIES.includes('cluster')) {
  const failover = suite('Cluster failover')
  let redis!: TestRedis
  const caches: TieredCache[] = []
  const peers: CacheProcess[] = []
  failover.before(async () => {
    redis = await startRedis('cluster', { cluster: { replicasPerMaster: 1 } })
  })
  failover.after(async () => {
    for (const peer of peers) await peer.close()
    for (const cache of caches) await cache.close()
    await redis?.stop()
  })

  failover('a master SIGKILLed during a load of getOrSet: no call throws, hits come back after the promotion, no invalidation published after the kill is lost', async () => {
    const prefix = 'failover'
    const cluster = redis.cluster as NonNullable<TestRedis['cluster']>
    // fragcache opens its own Cluster from the seeds, as a site would configure it.
    const options = { redisTimeoutMs: 100, redisBreaker: { threshold: 3, cooldownMs: 200 } }
    const cache = createCache({ prefix, redis: redis.urls, logger: quiet, ...options })
    caches.push(cache)
    await cache.ready()
    // The master that serves the bus channel, the version keys or both: the hardest one to lose.
    const versionKey = cache.keys.build('ver', 'article:1')
    const victim = await cluster.masterForKey(versionKey)
    // Two other processes, each holding an entry that depends on article:1.
    for (let i = 0; i < 2; i++) peers.push(await startCacheProcess(redis.urls, prefix, options))
    for (const peer of peers) assert.is(await peer.call({ op: 'versioned', key: 'body', tag: 'article:1' }), `v${(await cache.versions.get(['article:1']))['article:1']}`)

    // Keys spread over every master, a third or so on the victim's slots.
    const keys = Array.from({ length: 300 }, (_, i) => `item:${i}`)
    const onVictim = await Promise.all(keys.map(async (key) => (await cluster.masterForKey(cache.keys.build('c', key))).port === victim.port))
    const victimKeys = keys.filter((_, i) => onVictim[i])
    assert.ok(victimKeys.length > 30 && victimKeys.length < 270, `${victimKeys.length} of 300 keys on the victim`)
    for (const key of keys) await cache.set(key, `value of ${key}`)
    // A key of the victim's slots outside the load, to write after the failover.
    let probeKey = ''
    for (let i = 0; probeKey === ''; i++) if ((await cluster.masterForKey(cache.keys.build('c', `probe:${i}`))).port === victim.port) probeKey = `probe:${i}`
    await cluster.waitForReplication()

    // The load: four loops of getOrSet over every key, recording what throws and what is computed again.
    let running = true
    const thrown: unknown[] = []
    let calls = 0
    const loops = Array.from({ length: 4 }, async (_, loop) => {
      for (let i = loop; running; i = (i + 7) % keys.length) {
        const key = keys[i] as string
        try {
          const value = await cache.getOrSet(key, () => `value of ${key}`, { ttl: 600 })
          if (value !== `value of ${key}`) thrown.push(new Error(`${key}: got ${String(value)}`))
        } catch (error) {
          thrown.push(error)
        }
        calls += 1
        if (calls % 50 === 0) await new Promise((r) => setTimeout(r, 1))
      }
    })

    await new Promise((r) => setTimeout(r, 200))
    await cluster.kill(victim)
    // An invalidation 1 ms after the kill, retried as an application would when it is refused outright: it may hit
    // the dead master (bus or versions) and fail, or succeed; either way no peer may keep the old entry.
    await new Promise((r) => setTimeout(r, 1))
    let bumped: number | undefined
    const bumpStarted = performance.now()
    while (bumped === undefined) {
      try {
        bumped = (await cache.versions.bump('article:1'))['article:1']
      } catch (error) {
        if (performance.now() - bumpStarted > 30_000) throw error
        await new Promise((r) => setTimeout(r, 100))
      }
    }
    const { ms: failoverMs } = await cluster.waitForFailover(victim)
    const promotedAt = performance.now()

    // Hits from Redis again on the victim's slots: another process (an empty L1) reads what this one writes there.
    await eventually(async () => {
      await cache.set(probeKey, 'after the failover')
      return (await peers[0]?.call({ op: 'get', key: probeKey })) === 'after the failover'
    }, 10_000, 'a write to the promoted master to be read by another process')
    const hitsBackMs = performance.now() - promotedAt

    // No peer keeps the entry computed before the bump.
    for (const peer of peers) {
      let seen: unknown
      try {
        // At least the bumped version: ioredis may still carry out a bump attempt fragcache gave up on (it retries a
        // command through a failover), which only invalidates again.
        await eventually(async () => {
          seen = await peer.call({ op: 'versioned', key: 'body', tag: 'article:1' })
          return Number(String(seen).slice(1)) >= (bumped as number)
        }, 10_000, 'the bump to reach every peer')
      } catch (error) {
        throw new Error(`${(error as Error).message}: the peer still answers ${String(seen)}, older than v${bumped}; its stats ${JSON.stringify(await peer.call({ op: 'stats' }))}`)
      }
    }
    // And every peer's bus listens again (on the promoted master, for sharded pub/sub), so L1 is trusted again.
    for (const peer of peers) {
      await eventually(async () => (await peer.call<{ l2: { busConnected: boolean } }>({ op: 'stats' })).l2.busConnected, 15_000, 'the bus of every peer to listen again')
    }
    running = false
    await Promise.all(loops)
    assert.equal(thrown.slice(0, 3).map(String), [], `no getOrSet threw or answered a wrong value (${thrown.length} did)`)
    assert.ok(calls > 1000, `${calls} calls made`)
    const stats = cache.stats()
    console.log(
      `  failover ${Math.round(failoverMs)} ms after the kill; Redis hits back ${Math.round(hitsBackMs)} ms after the promotion; ` +
        `bump done ${Math.round(performance.now() - bumpStarted)} ms after the kill; ${calls} getOrSet, ${stats.l2.errors} Redis errors, ${stats.l2.outages} outage(s), slot of the version keys ${slotOf(versionKey)}`,
    )
  })

  failover.run()
}
