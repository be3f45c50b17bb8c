import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { type CacheProcess, startCacheProcess } from './support/cache-process.ts'
import { RedisServer } from './support/redis-server.ts'

const server = await RedisServer.start()
const children: (CacheProcess & { kill(): Promise<void> })[] = []
let prefixes = 0

const lock = suite('lock :: across processes')
lock.after(async () => {
  for (const child of children) await child.close()
  await server.stop()
})

async function processes(count: number, prefix: string, options = {}) {
  const started = await Promise.all(Array.from({ length: count }, () => startCacheProcess(server.url, prefix, options)))
  children.push(...started)
  return started
}

lock('4 processes, 500 concurrent getOrSet of one cold key, a 200 ms compute: one compute, one value for everyone', async () => {
  const prefix = `lk${++prefixes}`
  const workers = await processes(4, prefix)
  const raw = server.client()
  const computes: number[] = []
  try {
    for (let trial = 1; trial <= 20; trial++) {
      const key = `cold:${trial}`
      const counter = `${prefix}:computes:${trial}`
      const served = await Promise.all(
        workers.map((worker) => worker.call<string[]>({ op: 'burst', key, count: 125, computeMs: 200, counter })),
      )
      const n = Number(await raw.get(counter))
      computes.push(n)
      if (n === 1) assert.equal([...new Set(served.flat())].length, 1, `trial ${trial}: one compute, so one value for all 500 callers`)
    }
  } finally {
    raw.disconnect()
  }
  const once = computes.filter((n) => n === 1).length
  assert.ok(once >= 19, `exactly one compute in ${once} of 20 trials (computes per trial: ${computes.join(', ')})`)
  assert.ok(Math.max(...computes) <= 2, `never more than 2 computes (computes per trial: ${computes.join(', ')})`)
})

lock('the lock holder killed mid-compute: another process computes once its lock expires', async () => {
  const prefix = `lk${++prefixes}`
  const [holder, waiter] = await processes(2, prefix, { lock: { ttlMs: 500, waitMs: 30_000 } })
  const counter = `${prefix}:computes`
  await holder!.call({ op: 'hang', key: 'orphan', counter })
  const waiting = waiter!.call<string[]>({ op: 'burst', key: 'orphan', count: 5, computeMs: 10, counter })
  await holder!.kill()
  const values = await waiting
  const raw = server.client()
  try {
    assert.is(Number(await raw.get(counter)), 2, 'the dead holder started one compute, the waiter did the other')
  } finally {
    raw.disconnect()
  }
  assert.equal(values, [`value:${waiter!.pid}:2`], 'every caller in the waiting process got its one compute')
})

lock.run()
