import { existsSync } from 'node:fs'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { SLOT_COUNT, keyInSlot, slotOf } from '../support/cluster-slots.ts'
import { RedisCluster } from '../support/redis-cluster.ts'
import { TOPOLOGIES } from '../support/redis-topology.ts'

/** Every slot's key, written once and read back after each failover. */
const everySlot = Array.from({ length: SLOT_COUNT }, (_, slot) => keyInSlot(slot))

async function readAll(client: ReturnType<RedisCluster['client']>): Promise<(string | null)[]> {
  return Promise.all(everySlot.map((key) => client.get(key)))
}

if (TOPOLOGIES.includes('cluster')) {
  const slots = suite('cluster-slots')

  slots('slotOf and keyInSlot are exported', () => {
    assert.type(slotOf, 'function')
    assert.type(keyInSlot, 'function')
  })

  slots('slotOf :: the slots Redis documents, hash tags included', () => {
    assert.is(slotOf('foo'), 12182)
    assert.is(slotOf('{user1000}.following'), slotOf('user1000'))
  })

  slots('keyInSlot :: a key for every slot, in that slot', () => {
    for (const slot of [0, 1, 5460, 5461, 10922, 10923, SLOT_COUNT - 1]) assert.is(slotOf(keyInSlot(slot)), slot)
    assert.throws(() => keyInSlot(SLOT_COUNT), /no slot 16384/)
  })

  slots.run()

  const harness = suite('RedisCluster')
  // Set by before(): uvu runs no test of the suite when before() fails.
  let cluster!: RedisCluster
  harness.before(async () => {
    const t0 = performance.now()
    cluster = await RedisCluster.start({ masters: 3, replicasPerMaster: 1 })
    console.log(`  cluster of 3 masters + 3 replicas ready in ${Math.round(performance.now() - t0)} ms`)
  })
  harness.after(async () => {
    if (cluster) await cluster.stop()
  })

  harness('RedisCluster is exported', () => {
    assert.type(RedisCluster.start, 'function')
  })

  harness('start :: 3 masters share the 16384 slots, each with a replica', async () => {
    const views = await cluster.topology()
    const masters = views.filter((v) => v.role === 'master')
    assert.is(masters.length, 3)
    assert.is(masters.flatMap((m) => m.slots).reduce((sum, [a, b]) => sum + b - a + 1, 0), SLOT_COUNT)
    for (const master of masters) assert.is(views.filter((v) => v.masterId === master.id).length, 1, `replicas of ${master.port}`)
    assert.is(cluster.nodes.length, 6)
    assert.is(cluster.seedUrls.length, 6)
  })

  harness('slotOf :: agrees with CLUSTER KEYSLOT on keys shaped as fragcache builds them', async () => {
    for (const key of ['foo', 'fragcache:1:c:top', 'site:1:frag:sidebar#Qm9x', '{site:ver}:article:42', 'ünï', keyInSlot(16000)]) {
      assert.is(await cluster.keySlot(key), slotOf(key), key)
    }
  })

  harness('keys in many slots land on all 3 masters, each on the master masterForKey names', async () => {
    const client = cluster.client()
    try {
      const keys = Array.from({ length: 300 }, (_, i) => `spread:${i}`)
      await Promise.all(keys.map((key) => client.set(key, key)))
      const holders = new Map<number, number>()
      for (const key of keys) {
        const master = await cluster.masterForKey(key)
        const node = cluster.nodeClient(master)
        try {
          assert.is(await node.exists(key), 1, `${key} on ${master.port}`)
        } finally {
          node.disconnect()
        }
        holders.set(master.port, (holders.get(master.port) ?? 0) + 1)
      }
      assert.is(holders.size, 3, `keys per master: ${JSON.stringify([...holders])}`)
    } finally {
      client.disconnect()
    }
  })

  harness('kill :: a master SIGKILLed, its replica is promoted and every slot answers again', async () => {
    const client = cluster.client()
    try {
      await Promise.all(everySlot.map((key) => client.set(key, key)))
      await cluster.waitForReplication()
      const victim = await cluster.masterForSlot(0)
      const [replica] = await cluster.replicasOf(victim)
      await cluster.kill(victim)
      const failover = await cluster.waitForFailover(victim)
      console.log(`  failover after SIGKILL of ${victim.port}: ${Math.round(failover.ms)} ms (node timeout ${cluster.nodeTimeoutMs} ms)`)
      assert.ok(failover.ms < 30_000, `${failover.ms} ms`)
      assert.is(failover.master.port, replica?.port, 'the replica of the killed master took over')
      // The client made before the kill finds the new master on its own (a MOVED, or its slot refresh).
      const deadline = performance.now() + 10_000
      let values: (string | null)[] | undefined
      while (values === undefined) {
        values = await readAll(client).catch((error: unknown) => {
          if (performance.now() > deadline) throw error
          return undefined
        })
      }
      assert.equal(values, everySlot, 'every slot answers, with what was written before the kill')
    } finally {
      client.disconnect()
    }
  })

  harness('pause :: a frozen master is failed over too; resumed, it rejoins as a replica', async () => {
    const victim = await cluster.masterForSlot(SLOT_COUNT - 1)
    await cluster.pause(victim)
    const failover = await cluster.waitForFailover(victim)
    console.log(`  failover after SIGSTOP of ${victim.port}: ${Math.round(failover.ms)} ms`)
    assert.ok(failover.ms < 30_000, `${failover.ms} ms`)
    cluster.resume(victim)
    await cluster.waitUntilHealthy()
    const views = await cluster.topology()
    assert.is(views.find((v) => v.port === victim.port)?.masterId, failover.master.id, 'the old master follows the new one')
  })

  harness.run()

  const lifecycle = suite('RedisCluster :: start and stop')

  lifecycle('stop :: no process and no file left behind, paused nodes included', async () => {
    const small = await RedisCluster.start({ masters: 3 })
    const pids = small.pids
    assert.is(pids.length, 3)
    const [first] = small.nodes
    if (first) await small.pause(first)
    await small.stop()
    assert.equal(small.pids, [])
    for (const pid of pids) assert.throws(() => process.kill(pid, 0), /ESRCH/, `process ${pid} is gone`)
    assert.not.ok(existsSync(small.directory), 'the temporary directory is removed')
  })

  lifecycle('start :: without redis-server on the PATH, a message says how to install it', async () => {
    const path = process.env.PATH
    process.env.PATH = '/nonexistent'
    try {
      await RedisCluster.start()
      assert.unreachable('should have failed')
    } catch (error) {
      assert.match((error as Error).message, /apt-get install -y redis-server/)
    } finally {
      process.env.PATH = path
    }
  })

  lifecycle('start :: fewer than 3 masters is refused', async () => {
    try {
      await RedisCluster.start({ masters: 2 })
      assert.unreachable('should have failed')
    } catch (error) {
      assert.match((error as Error).message, /at least 3 masters/)
    }
  })

  lifecycle.run()
}
